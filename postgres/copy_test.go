package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// TestCopyInWritesWhatItIsGiven writes rows with CopyIn, text that COPY's format must
// escape among them and more rows than one chunk holds, and reads them back.
func TestCopyInWritesWhatItIsGiven(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDB(t)
	db.MustExec(`CREATE TABLE copied (n bigint PRIMARY KEY, s text, b text, maybe text)`)
	texts := []string{"", "plain", "分数的初步认识（第1课时）", `back\slash \N \\.`, "tab\tnewline\nreturn\r", "\\.", "end\\", `{"a":"b\"c"}`, "NULL"}
	const n = 5000 // ~60 bytes a row: several chunks
	row := func(i int) (s, b string, maybe string, valid bool) {
		s = texts[i%len(texts)]
		return s, strings.Repeat("x", i%40) + s, fmt.Sprint(i), i%3 != 0
	}
	conn, tx := beginOnConn(t, db)
	if err := postgres.CopyIn(ctx, conn, "copied", []string{"n", "s", "b", "maybe"}, n, func(i int, r *postgres.CopyRow) {
		s, b, maybe, valid := row(i)
		r.Int(int64(i))
		r.Text(s)
		r.TextBytes([]byte(b))
		r.NullText(maybe, valid)
	}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT n, s, b, maybe FROM copied ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := 0
	for ; rows.Next(); got++ {
		var k int
		var s, b string
		var maybe *string
		if err := rows.Scan(&k, &s, &b, &maybe); err != nil {
			t.Fatal(err)
		}
		ws, wb, wm, valid := row(k)
		if s != ws || b != wb || (maybe != nil) != valid || valid && *maybe != wm {
			t.Fatalf("row %d: %q %q %v, want %q %q %q (%v)", k, s, b, maybe, ws, wb, wm, valid)
		}
	}
	if got != n {
		t.Fatalf("%d rows, want %d", got, n)
	}
}

// TestCopyInRefusal checks that a row the database refuses fails the COPY with the
// database's error (the write path takes a unique violation of a stored result for a
// sign to store the results one by one).
func TestCopyInRefusal(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDB(t)
	db.MustExec(`CREATE TABLE copied (n bigint PRIMARY KEY)`)
	conn, _ := beginOnConn(t, db)
	err := postgres.CopyIn(ctx, conn, "copied", []string{"n"}, 10, func(i int, r *postgres.CopyRow) { r.Int(int64(i % 7)) })
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("err=%v, want a unique violation", err)
	}
}

// beginOnConn starts a transaction on a connection of its own, as the write path's
// (CopyIn needs the connection); both end with the test.
func beginOnConn(t *testing.T, db *sqlx.DB) (*sqlx.Conn, *sqlx.Tx) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	return conn, tx
}
