package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// A device pushing one lesson at a time runs the write path's queries as statements
// prepared once on the connection and reused by every later transaction (they were
// parsed and planned in every one), and a pool of a single connection still works: the
// shared statements are prepared outside the transaction that met them.
func TestWriteStatementsAreSharedAcrossTransactions(t *testing.T) {
	f := newFixture(t)
	f.db.SetMaxOpenConns(1) // every transaction and every prepare on one connection
	ctx, cancel := context.WithTimeout(sys(), time.Minute)
	defer cancel()
	const pushes = 12
	for i := range pushes {
		id := newID()
		res, err := f.store.Apply(ctx, jiaoliu.Batch{Ops: []jiaoliu.Op{upsert("lesson", id, lessonFields(f, fmt.Sprintf("2026-10-%02d", 12+i/8), 1+i%8))}})
		if err != nil || res[0].Status != jiaoliu.StatusApplied {
			t.Fatalf("push %d: %+v, %v", i, res, err)
		}
		postgres.WaitWriteStatements(f.store)
		l, err := postgres.Get[jiaoliu.Lesson](sys(), f.store, jiaoliu.LessonEntity, id)
		if err != nil || l.Period != 1+i%8 {
			t.Fatalf("push %d: lesson %+v, %v", i, l, err)
		}
	}
	// A resent batch of several ops looks its opIds up by an array: never shared (a plan
	// of that lookup made on a small table would be kept as the table grows).
	for i := range 3 {
		ops := []jiaoliu.Op{upsert("lesson", newID(), lessonFields(f, fmt.Sprintf("2026-11-%02d", 2+i), 1)),
			upsert("lesson", newID(), lessonFields(f, fmt.Sprintf("2026-11-%02d", 2+i), 2))}
		for range 2 {
			if _, err := f.store.Apply(ctx, jiaoliu.Batch{Ops: ops}); err != nil {
				t.Fatal(err)
			}
			postgres.WaitWriteStatements(f.store)
		}
	}
	var byArray int
	if err := f.db.GetContext(ctx, &byArray, `SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%FROM sync_ops WHERE op_id = ANY%'`); err != nil {
		t.Fatal(err)
	}
	if byArray != 0 {
		t.Errorf("the lookup of a batch's opIds by an array is a kept prepared statement")
	}
	// The connection's own prepared statements (pg_prepared_statements is per session:
	// with one connection, the pool's).
	var stmts []struct {
		Statement string `db:"statement"`
		Runs      int    `db:"runs"`
	}
	if err := f.db.SelectContext(ctx, &stmts, `SELECT statement, generic_plans + custom_plans AS runs FROM pg_prepared_statements
		WHERE statement LIKE 'WITH toks AS MATERIALIZED (%INSERT INTO lessons%' OR statement LIKE 'WITH logged AS (INSERT INTO sync_log%INSERT INTO audit_log%'
		OR statement LIKE 'WITH stored AS (INSERT INTO sync_ops%'`); err != nil {
		t.Fatal(err)
	}
	// Looked up in push 1, prepared after push 2: run by the 10 pushes after.
	// The lesson with its scope tokens; its change-log and audit rows; its result and
	// the batch's notification. (Its opId is not looked up: a batch is taken for new,
	// and a resend found when its result is stored.)
	for _, prefix := range []string{"WITH toks AS MATERIALIZED (SELECT exchange_child_tokens(", "WITH logged AS (INSERT INTO sync_log ", "WITH stored AS (INSERT INTO sync_ops "} {
		runs := 0
		for _, s := range stmts {
			if strings.HasPrefix(s.Statement, prefix) {
				runs += s.Runs
			}
		}
		if runs < pushes-2 {
			t.Errorf("%q… ran %d times as a kept prepared statement, want ≥ %d", prefix, runs, pushes-2)
		}
	}
}

// A device's last_sync_at is written at its first sync and then at most once every
// SyncMarkInterval, not by each of its pushes.
func TestDeviceSyncedAtMostOncePerInterval(t *testing.T) {
	f := newFixture(t)
	dev, _ := f.teacherDevice(t, "wangfang")
	ctx := jiaoliu.NewContextWithActor(context.Background(), &jiaoliu.Actor{UserID: dev.UserID, Role: jiaoliu.RoleTeacher, TeacherID: f.teacher, DeviceID: dev.ID})
	synced := func() time.Time {
		t.Helper()
		if err := f.store.DeviceSynced(ctx); err != nil {
			t.Fatal(err)
		}
		var at *time.Time
		if err := f.db.Get(&at, `SELECT last_sync_at FROM devices WHERE id = $1`, dev.ID); err != nil {
			t.Fatal(err)
		}
		if at == nil {
			t.Fatal("last_sync_at not written")
		}
		return *at
	}
	first := synced()
	time.Sleep(5 * time.Millisecond)
	if again := synced(); !again.Equal(first) {
		t.Fatalf("a second sync within %v wrote last_sync_at again: %v → %v", postgres.SyncMarkInterval, first, again)
	}
	defer func(d time.Duration) { postgres.SyncMarkInterval = d }(postgres.SyncMarkInterval)
	postgres.SyncMarkInterval = time.Millisecond
	time.Sleep(5 * time.Millisecond)
	if later := synced(); !later.After(first) {
		t.Fatalf("a sync after the interval left last_sync_at at %v", later)
	}
}
