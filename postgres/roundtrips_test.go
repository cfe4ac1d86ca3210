package postgres_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// A teacher online saves one lesson at a time, each pushed as a batch of one, and the
// sync layer authenticates every message: the statements those send to PostgreSQL are
// a round trip each, most of a single-op push's cost (BENCHMARKS.md, "Session 17").
// This counts them, so that one more does not come in unnoticed.
func TestSingleOpPushStatements(t *testing.T) {
	rec := &statementLog{}
	connector, err := pq.NewConnector(pgtest.NewDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	db := sqlx.NewDb(sql.OpenDB(countingConnector{connector, rec}), "postgres")
	t.Cleanup(func() { db.Close() })
	f := newFixtureDB(t, db)
	_, token := f.teacherDevice(t, "wangfang")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// What the sync layer does for a push: authenticate, apply, mark the device synced.
	push := func(i int) {
		t.Helper()
		actor, err := f.store.AuthenticateDevice(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		actx := jiaoliu.NewContextWithActor(ctx, actor)
		res, err := f.store.Apply(actx, jiaoliu.Batch{Ops: []jiaoliu.Op{upsert("lesson", newID(), lessonFields(f, fmt.Sprintf("2026-10-%02d", 1+i/8), 1+i%8))}})
		if err != nil || res[0].Status != jiaoliu.StatusApplied {
			t.Fatalf("push %d: %+v, %v", i, res, err)
		}
		if err := f.store.DeviceSynced(actx); err != nil {
			t.Fatal(err)
		}
		postgres.WaitWriteStatements(f.store)
	}
	// The first pushes prepare the shared statements and write last_seen_at and
	// last_sync_at.
	for i := range 3 {
		push(i)
	}
	const pushes = 5
	rec.reset()
	for i := range pushes {
		push(3 + i)
	}
	stmts := rec.take()
	// Authenticate (1); BEGIN, the record by id, the natural key's lock, the record by
	// natural key, the INSERT with its tokens, the change-log and audit rows, the result
	// with the notification, COMMIT (8); last_sync_at: nothing within the interval.
	const want = 9
	if len(stmts) != want*pushes {
		t.Errorf("%d single-op pushes sent %d statements, want %d each:\n%s", pushes, len(stmts), want, strings.Join(stmts, "\n"))
	}
}

// statementLog records the statements a pool runs: each execution of a query, and
// each transaction's BEGIN and COMMIT or ROLLBACK. Preparing is not counted: the
// write path prepares its shared statements in the background, once per connection.
type statementLog struct {
	mu    sync.Mutex
	stmts []string
}

func (l *statementLog) add(q string) {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 100 {
		q = q[:100] + "…"
	}
	l.mu.Lock()
	l.stmts = append(l.stmts, q)
	l.mu.Unlock()
}

func (l *statementLog) reset() { l.take() }

func (l *statementLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stmts
	l.stmts = nil
	return s
}

// countingConnector wraps lib/pq's connections to record their statements. (COPY,
// which needs lib/pq's own connection, does not run through it: a single-op push has
// none.)
type countingConnector struct {
	driver.Connector
	log *statementLog
}

func (c countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countingConn{conn, c.log}, nil
}

type countingConn struct {
	driver.Conn
	log *statementLog
}

func (c *countingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	return &countingStmt{st, q, c.log}, nil
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.log.add("BEGIN")
	tx, err := c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return countingTx{tx, c.log}, nil
}

func (c *countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.log.add(q)
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (c *countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.log.add(q)
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (c *countingConn) CheckNamedValue(v *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(v)
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

type countingTx struct {
	driver.Tx
	log *statementLog
}

func (t countingTx) Commit() error {
	t.log.add("COMMIT")
	return t.Tx.Commit()
}

func (t countingTx) Rollback() error {
	t.log.add("ROLLBACK")
	return t.Tx.Rollback()
}

type countingStmt struct {
	driver.Stmt
	q   string
	log *statementLog
}

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.log.add(s.q)
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.log.add(s.q)
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func (s *countingStmt) CheckNamedValue(v *driver.NamedValue) error {
	if c, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(v)
	}
	return driver.ErrSkip
}
