package client

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver "sqlite"
)

// schemaSQL creates the local database. Everything the device must not lose lives
// here: the replica, the outbox, the results of acknowledged ops and the sync state.
//
// records holds one row per record the device knows. The base_* columns are the
// server's state as last pulled (or as an acknowledgement implied it); fields and
// deleted are the local view: the base with the pending ops of the outbox on top.
// has_base is 0 for a record the server has not confirmed yet (created offline).
// seen is the pull generation that last delivered the record, for the sweep after a
// pull from the start.
const schemaSQL = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
	entity       TEXT NOT NULL,
	id           TEXT NOT NULL,
	has_base     INTEGER NOT NULL DEFAULT 0,
	base_version TEXT NOT NULL DEFAULT '',
	base_deleted INTEGER NOT NULL DEFAULT 0,
	base_fields  TEXT NOT NULL DEFAULT '{}',
	deleted      INTEGER NOT NULL DEFAULT 0,
	fields       TEXT NOT NULL DEFAULT '{}',
	pending      INTEGER NOT NULL DEFAULT 0,
	seen         INTEGER NOT NULL DEFAULT 0,
	updated_at   INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (entity, id)
);
CREATE TABLE IF NOT EXISTS outbox (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	op_id     TEXT NOT NULL UNIQUE,
	kind      TEXT NOT NULL,
	entity    TEXT NOT NULL,
	record_id TEXT NOT NULL,
	hlc       TEXT NOT NULL,
	fields    TEXT,
	created_at INTEGER NOT NULL,
	attempts  INTEGER NOT NULL DEFAULT 0,
	sent_at   INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_record ON outbox (entity, record_id);
CREATE TABLE IF NOT EXISTS results (
	op_id        TEXT PRIMARY KEY,
	seq          INTEGER NOT NULL,
	kind         TEXT NOT NULL,
	entity       TEXT NOT NULL,
	record_id    TEXT NOT NULL,
	hlc          TEXT NOT NULL,
	fields       TEXT,
	created_at   INTEGER NOT NULL,
	status       TEXT NOT NULL,
	canonical_id TEXT NOT NULL DEFAULT '',
	version      TEXT NOT NULL DEFAULT '',
	code         TEXT NOT NULL DEFAULT '',
	message      TEXT NOT NULL DEFAULT '',
	field_errors TEXT NOT NULL DEFAULT '{}',
	lost         TEXT NOT NULL DEFAULT '[]',
	duplicate    INTEGER NOT NULL DEFAULT 0,
	restamped    INTEGER NOT NULL DEFAULT 0,
	acked_at     INTEGER NOT NULL,
	dismissed    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS results_status ON results (status, acked_at);
`

// Keys of the meta table.
const (
	metaFormat       = "format"         // the local database format version
	metaDeviceID     = "device_id"      // the device's id (also the HLC node)
	metaToken        = "token"          // the device token
	metaServerURL    = "server_url"     // http(s)://host:port of the server
	metaCursor       = "cursor"         // the pull cursor ("" = from the start)
	metaPullGen      = "pull_gen"       // the generation of the current or last full pull
	metaFullPull     = "full_pull"      // "1" while a pull from the start has not finished
	metaHLC          = "hlc"            // the last HLC this device issued
	metaClockOffset  = "clock_offset"   // ms to add to the wall clock (from welcome.serverTime)
	metaBatchSeq     = "batch_seq"      // the last batch number
	metaLastSync     = "last_sync_at"   // unix ms of the last successful sync
	metaLastAttempt  = "last_attempt"   // unix ms of the last sync attempt
	metaLastError    = "last_error"     // the error of the last attempt, "" if it succeeded
	metaLastVerify   = "last_verify_at" // unix ms of the last comparable verify
	metaLastVerifyOK = "last_verify_ok" // "1" or "0"
)

// formatVersion is the version of the local database layout.
const formatVersion = "1"

// uriPath escapes what a file name may hold that a SQLite URI gives a meaning to (a
// '%' escape, the '?' of the query, the '#' of a fragment).
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// openDB opens (creating if needed) the SQLite database at path. Writes are durable
// when their transaction commits (WAL with synchronous=FULL), so an op is on disk
// before Upsert returns.
func openDB(ctx context.Context, path string) (*sql.DB, error) {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+uriPath.Replace(path)+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// One connection: every access is serialized, which SQLite does anyway for writes,
	// and no transaction ever waits on a lock held by another connection of ours.
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schemaSQL); err != nil {
		db.Close()
		return nil, fmt.Errorf("create the local database %s: %w", path, err)
	}
	var format string
	err = db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, metaFormat).Scan(&format)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := db.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, metaFormat, formatVersion); err != nil {
			db.Close()
			return nil, fmt.Errorf("initialize %s: %w", path, err)
		}
	case err != nil:
		db.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	case format != formatVersion:
		db.Close()
		return nil, fmt.Errorf("%s has local format %s; this program reads format %s", path, format, formatVersion)
	}
	return db, nil
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// inTx runs fn in a write transaction and commits it.
func (c *Client) inTx(ctx context.Context, fn func(tx *localTx) error) error {
	sqlTx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin local transaction: %w", err)
	}
	tx := &localTx{Tx: sqlTx}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit local transaction: %w", err)
	}
	return nil
}

// localTx is a transaction on the device database that prepares each statement once:
// SQLite parses a statement every time it is prepared, and database/sql prepares one
// for every call with arguments. Applying an ack or a pull page runs the same few
// statements for each of hundreds of records, and parsing them was a third of a sync's
// CPU (BENCHMARKS.md, session 23). The statements go with the transaction.
type localTx struct {
	*sql.Tx
	stmts map[string]*sql.Stmt
}

func (t *localTx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := t.stmts[query]; ok {
		return st, nil
	}
	st, err := t.Tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if t.stmts == nil {
		t.stmts = map[string]*sql.Stmt{}
	}
	t.stmts[query] = st
	return st, nil
}

func (t *localTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (t *localTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (t *localTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := t.stmt(ctx, query)
	if err != nil {
		return t.Tx.QueryRowContext(ctx, query, args...) // the same error, in a Row
	}
	return st.QueryRowContext(ctx, args...)
}

func getMeta(ctx context.Context, q querier, key string) (string, error) {
	var v string
	err := q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	return v, nil
}

func setMeta(ctx context.Context, q querier, key, value string) error {
	if _, err := q.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

func getMetaInt(ctx context.Context, q querier, key string) (int64, error) {
	v, err := getMeta(ctx, q, key)
	if err != nil || v == "" {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %q is not a number", key, v)
	}
	return n, nil
}

func setMetaInt(ctx context.Context, q querier, key string, v int64) error {
	return setMeta(ctx, q, key, strconv.FormatInt(v, 10))
}

// encodeFields returns the JSON text of a field map ("{}" for nil).
func encodeFields(f map[string]any) (string, error) {
	if f == nil {
		return "{}", nil
	}
	b, err := json.Marshal(f)
	if err != nil {
		return "", fmt.Errorf("encode fields: %w", err)
	}
	return string(b), nil
}

// decodeFields parses a field map, keeping numbers as json.Number so an integer stays
// an integer.
func decodeFields(s string) (map[string]any, error) {
	out := map[string]any{}
	if s == "" {
		return out, nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("decode fields: %w", err)
	}
	if out == nil {
		out = map[string]any{}
	}
	return out, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
