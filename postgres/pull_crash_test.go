package postgres_test

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu/internal/pgcluster"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// TestCursorSurvivesPostgresCrash: a cursor handed out after transactions that aborted
// (pushes cut off, clients gone) still holds when PostgreSQL is killed right after. The
// ids of those transactions are on disk only once the WAL is flushed past their abort
// records; killed before, PostgreSQL gives them again to new transactions, and a device
// holding a cursor that saw them ended would never pull what those new transactions
// log. Found by the chaos suite; without the flush before a cursor is handed out, this
// test's change after the restart was not pulled (its txid below the cursor's xmax).
func TestCursorSurvivesPostgresCrash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: t.TempDir(), Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	open := func() (*sqlx.DB, *postgres.Store) {
		db, err := sqlx.Connect("postgres", c.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db, postgres.NewStore(db, hlc.NewClock("server"), nil)
	}
	db, store := open()
	if err := postgres.Migrate(ctx, db.DB); err != nil {
		t.Fatal(err)
	}
	MustApply(t, sys(), store, upsert("district", newID(), map[string]any{"name": "新密市"}))
	r := newReplica(t)
	r.sync(sys(), store, 0)

	// Transactions that take an id and abort: nothing of theirs is flushed.
	db.MustExec(`CREATE TABLE scratch (x int)`)
	for range 50 {
		tx := db.MustBegin()
		tx.MustExec(`INSERT INTO scratch VALUES (1)`)
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	}
	r.sync(sys(), store, 0) // a cursor whose snapshot saw them end
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	db, store = open()
	id := newID()
	MustApply(t, sys(), store, upsert("district", id, map[string]any{"name": "登封市"}))
	// Then as many transactions again: the database's ids pass the cursor's, and the
	// cursor is taken as valid (a cursor ahead of the database is refused: the device
	// starts again from nothing, which loses nothing).
	for range 60 {
		db.MustExec(`INSERT INTO scratch VALUES (2)`)
	}
	r.sync(sys(), store, 0)
	if _, ok := r.records["district/"+id]; !ok {
		var txid string
		_ = db.GetContext(ctx, &txid, `SELECT txid::text FROM sync_log WHERE id = $1`, id)
		t.Fatalf("a district created after the restart (txid %s) was not pulled with the cursor from before the crash", txid)
	}
}
