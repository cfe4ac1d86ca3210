package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// stmtTx is a transaction that prepares each distinct query it runs more than once and
// reuses it: lib/pq spends two round trips on a query with arguments (parse, then
// execute) but one on a prepared statement, and a batch runs the same few queries for
// every op. A query's first run is not prepared: a prepared statement costs a third
// round trip to close (with the transaction), which a query run once (most of those of
// a one-op batch, and the bulk path's) never pays back. Statements close with the
// transaction.
type stmtTx struct {
	*sqlx.Tx
	stmts map[string]*sqlx.Stmt
	ran   map[string]bool // queries run once, unprepared
}

func newStmtTx(tx *sqlx.Tx) *stmtTx {
	return &stmtTx{Tx: tx, stmts: map[string]*sqlx.Stmt{}, ran: map[string]bool{}}
}

// prep returns the prepared statement of q, or nil when q runs for the first time.
func (t *stmtTx) prep(ctx context.Context, q string) (*sqlx.Stmt, error) {
	if st, ok := t.stmts[q]; ok {
		return st, nil
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

// copyIn writes n rows into cols of table with COPY FROM STDIN: one round trip to start,
// the rows streamed in 64 KiB messages, one round trip to end. row fills the values of
// row i (text, int64, or nil for NULL). A row the database refuses fails the whole
// statement, with the constraint's error.
func (t *stmtTx) copyIn(ctx context.Context, table string, cols []string, n int, row func(i int, vals []any)) error {
	st, err := t.Tx.PrepareContext(ctx, fmt.Sprintf(`COPY %s (%s) FROM STDIN`, table, strings.Join(cols, ", ")))
	if err != nil {
		return err
	}
	defer st.Close()
	vals := make([]any, len(cols))
	for i := 0; i < n; i++ {
		clear(vals)
		row(i, vals)
		if _, err := st.ExecContext(ctx, vals...); err != nil {
			return err
		}
	}
	_, err = st.ExecContext(ctx)
	return err
}
