package postgres

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// stmtTx is a transaction that prepares each distinct query once and reuses it: lib/pq
// spends two round trips on a query with arguments (parse, then execute) but one on a
// prepared statement, and a batch runs the same few queries for every op. Statements
// close with the transaction.
type stmtTx struct {
	*sqlx.Tx
	stmts map[string]*sqlx.Stmt
}

func newStmtTx(tx *sqlx.Tx) *stmtTx { return &stmtTx{Tx: tx, stmts: map[string]*sqlx.Stmt{}} }

func (t *stmtTx) prep(ctx context.Context, q string) (*sqlx.Stmt, error) {
	if st, ok := t.stmts[q]; ok {
		return st, nil
	}
	st, err := t.Tx.PreparexContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	t.stmts[q] = st
	return st, nil
}

// GetContext runs q as a prepared statement (queries without arguments run directly).
func (t *stmtTx) GetContext(ctx context.Context, dest any, q string, args ...any) error {
	if len(args) == 0 {
		return t.Tx.GetContext(ctx, dest, q)
	}
	st, err := t.prep(ctx, q)
	if err != nil {
		return err
	}
	return st.GetContext(ctx, dest, args...)
}

// ExecContext runs q as a prepared statement (queries without arguments run directly).
func (t *stmtTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if len(args) == 0 {
		return t.Tx.ExecContext(ctx, q)
	}
	st, err := t.prep(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// QueryxContext runs q as a prepared statement.
func (t *stmtTx) QueryxContext(ctx context.Context, q string, args ...any) (*sqlx.Rows, error) {
	st, err := t.prep(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryxContext(ctx, args...)
}

// QueryRowxContext runs q as a prepared statement; a failure to prepare surfaces from
// Scan through the unprepared query.
func (t *stmtTx) QueryRowxContext(ctx context.Context, q string, args ...any) *sqlx.Row {
	st, err := t.prep(ctx, q)
	if err != nil {
		return t.Tx.QueryRowxContext(ctx, q, args...)
	}
	return st.QueryRowxContext(ctx, args...)
}

// SelectContext runs q as a prepared statement and scans every row into dest.
func (t *stmtTx) SelectContext(ctx context.Context, dest any, q string, args ...any) error {
	st, err := t.prep(ctx, q)
	if err != nil {
		return err
	}
	return st.SelectContext(ctx, dest, args...)
}
