package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// stmtTx is a transaction that runs the queries it meets again as prepared
// statements: lib/pq spends two round trips on a query with arguments (parse, then
// execute) and PostgreSQL parses and plans it every time, where a prepared statement is
// one round trip and planned once per connection.
//
// Two kinds of prepared statements serve it:
//   - the write path's shared statements (sharedStmts), prepared on the Store's pool
//     and kept across transactions: a query looked up a second time is prepared on the
//     pool (in the background), and every later transaction runs it as that statement
//     (database/sql prepares it once on each connection and keeps it there). A device
//     pushing one op at a time runs the same dozen queries in every transaction; each
//     was parsed and planned every time (the row reads' plans alone 0.25–0.3 ms each,
//     pg_stat_statements).
//   - statements of this transaction only, for a query run more than once in it that
//     is not shared (not shareable, or not yet): its first run is not prepared, as
//     a statement of the transaction costs a third round trip to close (with the
//     transaction), which a query run once never pays back.
//
// A shared statement keeps the generic plan PostgreSQL made when it was prepared, until
// an ANALYZE of one of its tables (autovacuum's, as a table grows) makes it plan again.
// Only statements whose plan is the same whatever the size of the tables may be
// shared, and the write path says which by running them through shareable(): those
// that read or write one row by a unique key, and those that scan no table (taking the
// batch's advisory locks, inserting its ops' results from arrays). Not a lookup of
// several rows by an array of keys: the batch's opIds, shared in a trial, were looked
// up by a plan made on an empty sync_ops, a sequential scan kept while the table grew to
// 20,000 rows in a benchmark's seconds.
type stmtTx struct {
	*sqlx.Tx
	conn   *sqlx.Conn // the connection the transaction runs on (for COPY)
	shared *sharedStmts
	share  bool    // this view looks queries up in shared
	shareV *stmtTx // the view shareable() returns, made on first use
	stmts  map[string]*sqlx.Stmt
	ran    map[string]bool // queries run once, unprepared
}

// beginWrite starts a write transaction on a connection of its own (CopyIn needs the
// connection). end rolls the transaction back unless it was committed, and returns
// the connection to the pool.
func (s *Store) beginWrite(ctx context.Context) (tx *stmtTx, end func(), err error) {
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return nil, nil, err
	}
	sqlTx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	tx = &stmtTx{Tx: sqlTx, conn: conn, shared: &s.writeStmts, stmts: map[string]*sqlx.Stmt{}, ran: map[string]bool{}}
	return tx, func() { sqlTx.Rollback(); conn.Close() }, nil
}

// shareable returns the transaction for statements that may run as shared statements
// (see above); it shares the statements of t.
func (t *stmtTx) shareable() *stmtTx {
	if t.share {
		return t
	}
	if t.shareV == nil {
		t.shareV = &stmtTx{Tx: t.Tx, conn: t.conn, shared: t.shared, share: true, stmts: t.stmts, ran: t.ran}
	}
	return t.shareV
}

// prep returns the prepared statement of q, or nil when q is to run unprepared.
func (t *stmtTx) prep(ctx context.Context, q string) (*sqlx.Stmt, error) {
	if st, ok := t.stmts[q]; ok {
		return st, nil
	}
	if t.share {
		if st := t.shared.lookup(q); st != nil {
			tst := t.Tx.StmtxContext(ctx, st)
			t.stmts[q] = tst
			return tst, nil
		}
	}
	if t.ran != nil && !t.ran[q] {
		t.ran[q] = true
		return nil, nil
	}
	st, err := t.Tx.PreparexContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	t.stmts[q] = st
	return st, nil
}

// maxSharedStmts bounds the write path's shared statements: its queries are built from
// the entity and the fields an op carries, some dozens of texts in practice, but an
// administrator's edits through GraphQL name any subset of a record's fields. When the
// bound is reached, the statement served longest ago is closed to make room, so a
// server running for months keeps sharing the statements in use.
var maxSharedStmts = 256

// maxSeenStmts bounds the texts remembered as seen once; the set starts over when full.
const maxSeenStmts = 4096

// sharedStmts are the write path's statements prepared on the Store's pool. A query is
// prepared the second time it is looked up (at the first, the cache would fill with
// texts built for one batch), by a goroutine of its own: preparing on the pool
// takes a connection, which a transaction holding one must not wait for (a pool whose
// every connection is a transaction waiting for another would never free one).
type sharedStmts struct {
	db *sqlx.DB

	mu      sync.Mutex
	m       map[string]*sharedStmt
	tick    uint64          // stamps the statements as they are served
	seen    map[string]bool // looked up once
	pending map[string]bool // being prepared
}

type sharedStmt struct {
	used // tick when last served (sharedStmts.tick)
	st   *sqlx.Stmt
}

// lookup returns the shared statement of q, or nil (then q may be prepared for the
// transactions after this one).
func (c *sharedStmts) lookup(q string) *sqlx.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	if e := c.m[q]; e != nil {
		e.use(c.tick)
		return e.st
	}
	switch {
	case c.pending[q] || len(c.pending) >= maxSharedStmts:
	case !c.seen[q]:
		if len(c.seen) >= maxSeenStmts {
			clear(c.seen)
		}
		if c.seen == nil {
			c.seen = map[string]bool{}
		}
		c.seen[q] = true
	default:
		delete(c.seen, q)
		if c.pending == nil {
			c.pending, c.m = map[string]bool{}, map[string]*sharedStmt{}
		}
		for len(c.m) > 0 && len(c.m)+len(c.pending) >= maxSharedStmts {
			c.evictLocked()
		}
		c.pending[q] = true
		go c.prepare(q)
	}
	return nil
}

// evictLocked closes the statement served longest ago. Transactions running it keep
// it until they end (database/sql closes a statement once its last user is done).
func (c *sharedStmts) evictLocked() {
	var oldest string
	var least uint64
	for q, e := range c.m {
		if oldest == "" || e.lastUsed() < least {
			oldest, least = q, e.lastUsed()
		}
	}
	st := c.m[oldest].st
	delete(c.m, oldest)
	go st.Close()
}

// prepare prepares q on the pool and shares it; on failure (the database away, the
// pool closed) q is forgotten and may be tried again.
func (c *sharedStmts) prepare(q string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.db.PreparexContext(ctx, q)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, q)
	if err == nil {
		c.tick++
		c.m[q] = &sharedStmt{used: used{c.tick}, st: st}
	}
}

// GetContext runs q, prepared from its second run on (queries without arguments run
// directly).
func (t *stmtTx) GetContext(ctx context.Context, dest any, q string, args ...any) error {
	if len(args) == 0 {
		return t.Tx.GetContext(ctx, dest, q)
	}
	st, err := t.prep(ctx, q)
	if err != nil {
		return err
	}
	if st == nil {
		return t.Tx.GetContext(ctx, dest, q, args...)
	}
	return st.GetContext(ctx, dest, args...)
}

// ExecContext runs q, prepared from its second run on (queries without arguments run
// directly).
func (t *stmtTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if len(args) == 0 {
		return t.Tx.ExecContext(ctx, q)
	}
	st, err := t.prep(ctx, q)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return t.Tx.ExecContext(ctx, q, args...)
	}
	return st.ExecContext(ctx, args...)
}

// QueryxContext runs q, prepared from its second run on.
func (t *stmtTx) QueryxContext(ctx context.Context, q string, args ...any) (*sqlx.Rows, error) {
	st, err := t.prep(ctx, q)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return t.Tx.QueryxContext(ctx, q, args...)
	}
	return st.QueryxContext(ctx, args...)
}

// QueryRowxContext runs q, prepared from its second run on; a failure to prepare
// surfaces from Scan through the unprepared query.
func (t *stmtTx) QueryRowxContext(ctx context.Context, q string, args ...any) *sqlx.Row {
	st, err := t.prep(ctx, q)
	if err != nil || st == nil {
		return t.Tx.QueryRowxContext(ctx, q, args...)
	}
	return st.QueryRowxContext(ctx, args...)
}

// SelectContext runs q, prepared from its second run on, and scans every row into dest.
func (t *stmtTx) SelectContext(ctx context.Context, dest any, q string, args ...any) error {
	st, err := t.prep(ctx, q)
	if err != nil {
		return err
	}
	if st == nil {
		return t.Tx.SelectContext(ctx, dest, q, args...)
	}
	return st.SelectContext(ctx, dest, args...)
}

// copyIn writes n rows into cols of table with COPY (CopyIn).
func (t *stmtTx) copyIn(ctx context.Context, table string, cols []string, n int, row func(i int, r *CopyRow)) error {
	return CopyIn(ctx, t.conn, table, cols, n, row)
}
