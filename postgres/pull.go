package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
)

// Pull reads the change log by snapshots, the way PgQ reads its event tables, rather
// than by a sequence number or by the oldest running transaction:
//
//   - Every change of a record moves its sync_log row to (txid, seq), where txid is the
//     top-level id of the writing transaction.
//   - A cursor names a PostgreSQL snapshot lo (pg_snapshot: xmin, xmax, the in-progress
//     list). The device holds every change of a transaction visible in lo.
//   - A pull runs in one REPEATABLE READ transaction whose snapshot hi is taken by its
//     first statement, and returns the rows whose txid is visible in hi and not in lo,
//     in (txid, seq) order, page by page. While paging, the cursor carries lo, hi and
//     the last (txid, seq) delivered, and every page keeps the condition "visible in hi":
//     a row changed after hi leaves the range (its new txid is not visible in hi) and is
//     delivered by the next range, so nothing in the range can move behind the cursor.
//   - When the range is exhausted the cursor becomes hi: the device holds exactly the
//     state of snapshot hi (a committed point), and more is false unless a row of the
//     range changed after hi (then the next range starts at once).
//
// Transactions that commit out of the order in which they took their ids are neither
// skipped (a transaction in progress at lo is in lo's in-progress list, so it is not
// visible in lo and its rows come in a later range) nor held back: a change is pullable
// as soon as it commits, even while an older transaction is still open. See
// docs/sync-protocol.md.

// PulledRecord is one record as a pull delivers it: its whole current state, in the
// wire form the sync server sends (JSON), encoded once as it is read.
type PulledRecord struct {
	Entity  string
	ID      string
	Version string
	Deleted bool
	// Cursor is the position right after this record, so that a caller may cut a page
	// short (to keep a message under a size limit) and continue from there.
	Cursor string
	// JSON is the record in its wire form (sync/wire.Record).
	JSON []byte
}

// Fields decodes the record's fields from its wire form, as a device reads them:
// strings, numbers as json.Number, bools, nil, lists as []any. A pull does not build
// them (a bootstrap reads 100,000 records, and the server only sends their JSON).
func (r PulledRecord) Fields() (map[string]any, error) {
	var w struct {
		Fields map[string]any `json:"fields"`
	}
	d := json.NewDecoder(bytes.NewReader(r.JSON))
	d.UseNumber()
	if err := d.Decode(&w); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", r.Entity, r.ID, err)
	}
	return w.Fields, nil
}

// Errors of the pull path, which the sync server turns into a reset.
var (
	// ErrScopeChanged means the cursor was issued for another set of scope tokens: what
	// the user may read has changed, and the device must pull from the start.
	ErrScopeChanged = errors.New("scope changed since the cursor was issued")
	// ErrInvalidCursor means the cursor is malformed or does not come from this
	// database (for example after a restore): the device must pull from the start.
	ErrInvalidCursor = errors.New("invalid cursor")
)

// DefaultPullLimit and MaxPullLimit bound the records of one pull page.
const (
	DefaultPullLimit = 500
	MaxPullLimit     = 1000
)

// snapshot is a parsed pg_snapshot: xmin:xmax:xip,...
type snapshot struct {
	xmin, xmax uint64
	xip        []uint64
}

// maxXip bounds the in-progress list a cursor may carry (PostgreSQL's is bounded by
// the number of backends).
const maxXip = 10000

func parseSnapshot(s string) (snapshot, error) {
	var snap snapshot
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return snap, ErrInvalidCursor
	}
	var err1, err2 error
	snap.xmin, err1 = strconv.ParseUint(parts[0], 10, 64)
	snap.xmax, err2 = strconv.ParseUint(parts[1], 10, 64)
	if err1 != nil || err2 != nil || snap.xmin > snap.xmax || snap.xmin == 0 {
		return snap, ErrInvalidCursor
	}
	if parts[2] != "" {
		xs := strings.Split(parts[2], ",")
		if len(xs) > maxXip {
			return snap, ErrInvalidCursor
		}
		prev := uint64(0)
		for _, x := range xs {
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil || v < snap.xmin || v >= snap.xmax || v <= prev {
				return snap, ErrInvalidCursor
			}
			snap.xip = append(snap.xip, v)
			prev = v
		}
	}
	return snap, nil
}

func (s snapshot) String() string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(s.xmin, 10))
	b.WriteByte(':')
	b.WriteString(strconv.FormatUint(s.xmax, 10))
	b.WriteByte(':')
	for i, x := range s.xip {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(x, 10))
	}
	return b.String()
}

// syncCursor is the decoded form of the opaque cursor.
type syncCursor struct {
	V     int    `json:"v"`           // format version
	Scope string `json:"s"`           // fingerprint of the reader's scope tokens
	Lo    string `json:"l,omitempty"` // changes visible in this snapshot were delivered
	Hi    string `json:"h,omitempty"` // while paging: the snapshot the range ends at
	Txid  uint64 `json:"t,omitempty"` // while paging: the last (txid, seq) delivered
	Seq   int64  `json:"q,omitempty"`

	lo, hi *snapshot
}

const cursorVersion = 1

// maxCursorLen bounds the text of a cursor before it is decoded.
const maxCursorLen = 256 << 10

func (c syncCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// pageCursors encodes the cursors of the records of one page: base with each record's
// (txid, seq). They differ only there, the last two members of the JSON, so base is
// marshalled once, and so is the base64 of its whole 3-byte groups (base64 of a
// concatenation whose first part is a multiple of 3 bytes long is the concatenation of
// the two encodings); each cursor encodes the rest with its position. The same bytes as
// encode gives (TestPageCursorsAreEncode), without a json.Marshal per record (8 % of
// the Go CPU of reading a page, in a bootstrap's profile).
type pageCursors struct {
	head string // base64 of the JSON's first len(head)/4*3 bytes
	tail []byte // the rest of base's JSON, without its closing brace
	buf  []byte // the JSON being encoded
	out  []byte // the cursor being built
}

func newPageCursors(base syncCursor) *pageCursors {
	base.Txid, base.Seq = 0, 0
	b, _ := json.Marshal(base)
	b = b[:len(b)-1]
	k := len(b) - len(b)%3
	return &pageCursors{head: base64.RawURLEncoding.EncodeToString(b[:k]), tail: b[k:]}
}

// at returns the cursor right after the record at (txid, seq).
func (p *pageCursors) at(txid uint64, seq int64) string {
	b := append(p.buf[:0], p.tail...)
	if txid != 0 {
		b = append(b, `,"t":`...)
		b = strconv.AppendUint(b, txid, 10)
	}
	if seq != 0 {
		b = append(b, `,"q":`...)
		b = strconv.AppendInt(b, seq, 10)
	}
	b = append(b, '}')
	p.buf = b
	out := append(p.out[:0], p.head...)
	out = base64.RawURLEncoding.AppendEncode(out, b)
	p.out = out
	return string(out)
}

func decodeSyncCursor(s string) (syncCursor, error) {
	var c syncCursor
	if s == "" {
		return c, nil
	}
	if len(s) > maxCursorLen {
		return c, ErrInvalidCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, ErrInvalidCursor
	}
	if err := json.Unmarshal(b, &c); err != nil || c.V != cursorVersion || c.Scope == "" {
		return c, ErrInvalidCursor
	}
	if c.Lo != "" {
		lo, err := parseSnapshot(c.Lo)
		if err != nil {
			return c, err
		}
		c.lo = &lo
	}
	if c.Hi != "" {
		hi, err := parseSnapshot(c.Hi)
		if err != nil || c.Txid == 0 {
			return c, ErrInvalidCursor
		}
		c.hi = &hi
	} else if c.Txid != 0 || c.Seq != 0 {
		return c, ErrInvalidCursor
	}
	return c, nil
}

// scopeFingerprint returns the fingerprint of a set of scope tokens that cursors carry:
// 16 hex digits of SHA-256 over the sorted tokens. The system actor's is "system".
func scopeFingerprint(tokens []string, system bool) string {
	if system {
		return "system"
	}
	toks := slices.Clone(tokens)
	slices.Sort(toks)
	toks = slices.Compact(toks)
	sum := sha256.Sum256([]byte(strings.Join(toks, " ")))
	return hex.EncodeToString(sum[:8])
}

// syncRead is the state of one read-only pull or verify transaction.
type syncRead struct {
	tx         *sqlx.Tx
	snap       snapshot // the transaction's snapshot
	wal        string   // the WAL's insert position just after snap was taken
	walFlushed bool     // whether the WAL was flushed up to wal then
	handsOut   bool     // fn hands out a cursor naming snap: readSync makes it durable
	tokens     []string // the actor's scope tokens as of snap; nil for the system actor
	system     bool
	scope      string // fingerprint of tokens
}

// scopeCond returns the condition restricting sync_log alias l to the reader's scope,
// with the tokens as argument number n.
func (r *syncRead) scopeCond(n int) (string, []any) {
	if r.system {
		return "true", nil
	}
	return fmt.Sprintf("l.scopes && $%d::text[]", n), []any{pq.Array(r.tokens)}
}

// readSync runs fn in a read-only REPEATABLE READ transaction, so that every statement
// sees the snapshot that the first one records, together with the actor's tokens as of
// that snapshot. When fn sets r.handsOut, the snapshot is made durable after the
// transaction (durableSnapshot), before a cursor naming it leaves the server.
func (s *Store) readSync(ctx context.Context, fn func(r *syncRead) error) error {
	a := jiaoliu.ActorFromContext(ctx)
	if a == nil {
		return jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to sync")
	}
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin sync read: %w", err)
	}
	defer tx.Rollback()
	r := &syncRead{tx: tx, system: a.System}
	var snap string
	if a.System {
		err = tx.QueryRowxContext(ctx, snapshotQuery).Scan(&snap, &r.wal, &r.walFlushed)
	} else {
		err = tx.QueryRowxContext(ctx, snapshotTokensQuery, string(a.Role), nullID(a.DistrictID), nullID(a.SchoolID), nullID(a.TeacherID)).
			Scan(&snap, &r.wal, &r.walFlushed, pq.Array(&r.tokens))
	}
	if err != nil {
		return fmt.Errorf("sync snapshot: %w", err)
	}
	if r.snap, err = parseSnapshot(snap); err != nil {
		return fmt.Errorf("sync snapshot %q: %w", snap, err)
	}
	if r.tokens == nil && !a.System {
		r.tokens = []string{}
	}
	r.scope = scopeFingerprint(r.tokens, a.System)
	if err := fn(r); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if r.handsOut {
		return s.durableSnapshot(ctx, r)
	}
	return nil
}

// snapshotQuery starts a sync read: its snapshot, and the WAL's insert position read
// after the snapshot was taken — past the commit or abort record of every transaction
// the snapshot sees as ended (see durableSnapshot) — and whether the WAL is flushed that
// far. snapshotTokensQuery adds the actor's scope tokens.
const (
	snapshotQuery = `SELECT pg_current_snapshot()::text, w.l::text, w.l <= pg_current_wal_flush_lsn()
		FROM (SELECT pg_current_wal_insert_lsn() AS l) w`
	snapshotTokensQuery = `SELECT pg_current_snapshot()::text, w.l::text, w.l <= pg_current_wal_flush_lsn(), actor_tokens($1, $2, $3, $4)
		FROM (SELECT pg_current_wal_insert_lsn() AS l) w`
)

// durableSnapshot makes a cursor at r's snapshot safe from a crash of PostgreSQL before
// it is handed out. A cursor says that every transaction its snapshot saw as ended was
// delivered; but the transaction ids of those that aborted (a push cut off, a client
// gone) are on disk only once the WAL is flushed past their abort record, which
// PostgreSQL does not wait for. Killed before that, PostgreSQL starts again below those
// ids and gives them to new transactions — whose changes a device holding the cursor
// would then never pull (found by the chaos suite: after "crash PostgreSQL", a change
// logged with txid 2085 missed by a device whose cursor ended at 2228). So the WAL must
// be flushed up to where it was when the snapshot was taken: mostly it already is (a
// commit flushes all before it), else one statement makes it so — setval takes a
// transaction id and writes a WAL record, so its commit, synchronous even where the
// server's default is not, flushes the WAL up to it.
func (s *Store) durableSnapshot(ctx context.Context, r *syncRead) error {
	if r.walFlushed {
		return nil
	}
	if _, err := s.exec(ctx, `SELECT set_config('synchronous_commit', 'on', true),
		CASE WHEN pg_current_wal_flush_lsn() < $1::pg_lsn THEN setval('sync_wal_flush', 1) END`, r.wal); err != nil {
		return fmt.Errorf("flush the WAL before handing out a cursor: %w", err)
	}
	return nil
}

// check validates a decoded cursor against the reader: the same scope, and snapshots
// that are not newer than the database's (a cursor from the future comes from another
// database or from before a restore).
func (r *syncRead) check(c syncCursor) error {
	if c.V == 0 {
		return nil
	}
	if c.Scope != r.scope {
		return ErrScopeChanged
	}
	for _, sn := range []*snapshot{c.lo, c.hi} {
		if sn != nil && sn.xmax > r.snap.xmax {
			return ErrInvalidCursor
		}
	}
	return nil
}

// Pull returns the next page of changes after cursor ("" for the beginning) that the
// actor of ctx may read, at most limit records (DefaultPullLimit if limit <= 0, at most
// MaxPullLimit), each with its whole current state. It returns the cursor to continue
// from and whether more changes are waiting. Following cursors until more is false
// yields every change, and the device then holds exactly the records the actor could
// read at one snapshot of the database. Returns ErrScopeChanged if what the actor may
// read changed since the cursor was issued, ErrInvalidCursor for a cursor that is not
// from this database, and UNAUTHENTICATED without an actor.
func (s *Store) Pull(ctx context.Context, cursor string, limit int) (records []PulledRecord, next string, more bool, err error) {
	switch {
	case limit <= 0:
		limit = DefaultPullLimit
	case limit > MaxPullLimit:
		limit = MaxPullLimit
	}
	cur, err := decodeSyncCursor(cursor)
	if err != nil {
		return nil, "", false, err
	}
	err = s.readSync(ctx, func(r *syncRead) error {
		if err := r.check(cur); err != nil {
			return err
		}
		// The next cursor holds this read's snapshot, unless the page is within a range
		// (it holds the range's, made durable when the range began).
		r.handsOut = cur.hi == nil
		records, next, more, err = r.pull(ctx, cur, limit)
		return err
	})
	if err != nil {
		return nil, "", false, fmt.Errorf("pull: %w", err)
	}
	return records, next, more, nil
}

type logRow struct {
	Entity string `db:"entity"`
	ID     string `db:"id"`
	Txid   uint64 `db:"txid"`
	Seq    int64  `db:"seq"`
}

func (r *syncRead) pull(ctx context.Context, cur syncCursor, limit int) ([]PulledRecord, string, bool, error) {
	// The range ends at the cursor's hi while paging, else at this transaction's snapshot.
	hi, continuing := r.snap, cur.hi != nil
	if continuing {
		hi = *cur.hi
	}
	where, args := r.rangeCond(cur.lo, cur.hi)
	if continuing {
		args = append(args, strconv.FormatUint(cur.Txid, 10), cur.Seq)
		where = append(where, fmt.Sprintf("(l.txid, l.seq) > ($%d::xid8, $%d::bigint)", len(args)-1, len(args)))
	}
	args = append(args, limit+1)
	q := fmt.Sprintf(`SELECT l.entity, l.id::text, l.txid::text::cstring, l.seq FROM sync_log l
		WHERE %s ORDER BY l.txid, l.seq LIMIT $%d`, strings.Join(where, " AND "), len(args))
	rows, err := r.readLog(ctx, q, args, limit+1)
	if err != nil {
		return nil, "", false, err
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	records, err := r.load(ctx, rows)
	if err != nil {
		return nil, "", false, err
	}
	cursors := newPageCursors(syncCursor{V: cursorVersion, Scope: r.scope, Lo: snapString(cur.lo), Hi: hi.String()})
	for i, row := range rows {
		records[i].Cursor = cursors.at(row.Txid, row.Seq)
	}
	if more {
		return records, records[len(records)-1].Cursor, true, nil
	}
	// The range is exhausted: the device now holds snapshot hi. When the range was
	// opened by an earlier page, rows of it changed since hi were left for the next range.
	next := syncCursor{V: cursorVersion, Scope: r.scope, Lo: hi.String()}
	if continuing {
		moved, err := r.changedSince(ctx, hi)
		if err != nil {
			return nil, "", false, err
		}
		more = moved
	}
	if len(records) > 0 {
		records[len(records)-1].Cursor = next.encode()
	}
	return records, next.encode(), more, nil
}

// readLog reads the change-log rows of query q (entity, id, txid as text, seq), with
// Scan rather than sqlx's reflection (17 % of the Go CPU of reading a page).
func (r *syncRead) readLog(ctx context.Context, q string, args []any, capacity int) ([]logRow, error) {
	rs, err := r.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read change log: %w", err)
	}
	defer rs.Close()
	rows := make([]logRow, 0, capacity)
	var txid sql.RawBytes
	for rs.Next() {
		var row logRow
		if err := rs.Scan(&row.Entity, &row.ID, &txid, &row.Seq); err != nil {
			return nil, fmt.Errorf("read change log: %w", err)
		}
		if row.Txid, err = strconv.ParseUint(string(txid), 10, 64); err != nil {
			return nil, fmt.Errorf("read change log: txid %q: %w", txid, err)
		}
		rows = append(rows, row)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read change log: %w", err)
	}
	return rows, nil
}

func snapString(s *snapshot) string {
	if s == nil {
		return ""
	}
	return s.String()
}

// rangeCond returns the conditions selecting the log rows in scope that are not
// visible in lo (when set) and are visible in hi (when set).
func (r *syncRead) rangeCond(lo, hi *snapshot) ([]string, []any) {
	cond, args := r.scopeCond(1)
	where := []string{cond}
	if lo != nil {
		args = append(args, lo.String())
		n := len(args)
		where = append(where, fmt.Sprintf("l.txid >= pg_snapshot_xmin($%d::pg_snapshot) AND NOT pg_visible_in_snapshot(l.txid, $%d::pg_snapshot)", n, n))
	}
	if hi != nil {
		args = append(args, hi.String())
		n := len(args)
		where = append(where, fmt.Sprintf("l.txid < pg_snapshot_xmax($%d::pg_snapshot) AND pg_visible_in_snapshot(l.txid, $%d::pg_snapshot)", n, n))
	}
	return where, args
}

// changedSince reports whether a record in scope changed in a transaction not visible
// in snap.
func (r *syncRead) changedSince(ctx context.Context, snap snapshot) (bool, error) {
	where, args := r.rangeCond(&snap, nil)
	var found bool
	if err := r.tx.GetContext(ctx, &found, `SELECT EXISTS (SELECT 1 FROM sync_log l WHERE `+strings.Join(where, " AND ")+`)`, args...); err != nil {
		return false, fmt.Errorf("look for newer changes: %w", err)
	}
	return found, nil
}

// jsonChunk is the size of the buffers a page's records' JSON is written into, and
// minChunkRoom the room a buffer must have left to take the next record (a lesson's
// JSON is 400–600 bytes; a longer one grows the buffer, as append does).
const (
	jsonChunk    = 64 << 10
	minChunkRoom = 2 << 10
)

// load reads the current state of the records of rows, entity by entity, keeping the
// order of rows.
func (r *syncRead) load(ctx context.Context, rows []logRow) ([]PulledRecord, error) {
	byEntity := map[string][]string{}
	for _, row := range rows {
		byEntity[row.Entity] = append(byEntity[row.Entity], row.ID)
	}
	type key struct{ entity, id string }
	state := make(map[key]PulledRecord, len(rows))
	var chunk []byte
	for name, ids := range byEntity {
		def := jiaoliu.Entities[name]
		if def == nil {
			return nil, fmt.Errorf("change log names unknown entity %q", name)
		}
		rs, err := r.tx.QueryContext(ctx, recordTextQuery(def), pq.Array(ids))
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", name, err)
		}
		// Every column is scanned as the bytes the driver read (recordTextQuery), into
		// the same destinations for every row; a row's JSON is written before the next
		// row is scanned over them.
		var (
			id, version sql.RawBytes
			deleted     bool
			raw         = make([]sql.RawBytes, len(def.Fields))
			dest        = make([]any, 0, 3+len(raw))
		)
		dest = append(dest, &id, &version, &deleted)
		for i := range raw {
			dest = append(dest, &raw[i])
		}
		for rs.Next() {
			if err := rs.Scan(dest...); err != nil {
				rs.Close()
				return nil, fmt.Errorf("load %s: %w", name, err)
			}
			rec := PulledRecord{Entity: name, ID: string(id), Version: string(version), Deleted: deleted}
			// The records' JSON is written one after another into chunks shared by the
			// page (one allocation for many records instead of one or two each); each
			// record keeps its own bytes, capped so that nothing appends over them.
			if cap(chunk)-len(chunk) < minChunkRoom {
				chunk = make([]byte, 0, jsonChunk)
			}
			start := len(chunk)
			if chunk, err = appendRawRecordJSON(chunk, def, rec.ID, rec.Version, rec.Deleted, raw); err != nil {
				rs.Close()
				return nil, fmt.Errorf("load %s: %w", name, err)
			}
			rec.JSON = chunk[start:len(chunk):len(chunk)]
			state[key{name, rec.ID}] = rec
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", name, err)
		}
	}
	out := make([]PulledRecord, 0, len(rows))
	for _, row := range rows {
		rec, ok := state[key{row.Entity, row.ID}]
		if !ok {
			return nil, fmt.Errorf("change log names %s %s, which has no row", row.Entity, row.ID)
		}
		out = append(out, rec)
	}
	return out, nil
}

// Pending reports whether the device holding cursor has changes to pull: a record in
// the actor's scope changed after the cursor's snapshot, or the cursor is in the middle
// of a range, or it is empty. Returns ErrScopeChanged and ErrInvalidCursor like Pull.
func (s *Store) Pending(ctx context.Context, cursor string) (bool, error) {
	cur, err := decodeSyncCursor(cursor)
	if err != nil {
		return false, err
	}
	if cur.V == 0 || cur.hi != nil || cur.lo == nil {
		return true, nil
	}
	var pending bool
	err = s.readSync(ctx, func(r *syncRead) error {
		if err := r.check(cur); err != nil {
			return err
		}
		pending, err = r.changedSince(ctx, *cur.lo)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("pending changes: %w", err)
	}
	return pending, nil
}

// Verify returns the number of live records the actor of ctx may read and the
// protocol's checksum over them (the XOR of the first 8 bytes of SHA-256 of
// entity/id/version, as 16 lowercase hex digits), as of the returned cursor: a device
// that pulled up to that cursor holds exactly these records. When deviceCursor (the
// device's own cursor, may be "") ends a range and no record in scope changed after
// it, the returned cursor is deviceCursor itself, so the device can compare at once;
// otherwise it is a cursor at the snapshot the figures were computed in, and a device
// holding another cursor must pull before comparing. An invalid or out-of-scope
// deviceCursor is not an error: it only makes the figures not comparable.
func (s *Store) Verify(ctx context.Context, deviceCursor string) (cursor string, count int, checksum string, err error) {
	dc, derr := decodeSyncCursor(deviceCursor)
	err = s.readSync(ctx, func(r *syncRead) error {
		cursor = syncCursor{V: cursorVersion, Scope: r.scope, Lo: r.snap.String()}.encode()
		if derr == nil && dc.V != 0 && dc.lo != nil && dc.hi == nil && r.check(dc) == nil {
			changed, err := r.changedSince(ctx, *dc.lo)
			if err != nil {
				return err
			}
			if !changed {
				cursor = deviceCursor
			}
		}
		r.handsOut = cursor != deviceCursor
		var sum uint64
		count, sum, err = r.checksum(ctx)
		checksum = fmt.Sprintf("%016x", sum)
		return err
	})
	if err != nil {
		return "", 0, "", fmt.Errorf("verify: %w", err)
	}
	return cursor, count, checksum, nil
}

// checksum counts and hashes the live records in scope, in one statement.
func (r *syncRead) checksum(ctx context.Context) (int, uint64, error) {
	cond, args := r.scopeCond(1)
	parts := make([]string, 0, len(jiaoliu.EntityOrder))
	for _, name := range jiaoliu.EntityOrder {
		def := jiaoliu.Entities[name]
		parts = append(parts, fmt.Sprintf(`SELECT ('x' || left(encode(sha256(convert_to('%s/' || t.id::text || '/' || t.version::text, 'UTF8')), 'hex'), 16))::bit(64)::bigint AS h
			FROM %s t JOIN sync_log l ON l.entity = '%s' AND l.id = t.id WHERE NOT t.deleted AND %s`, name, def.Table, name, cond))
	}
	q := `SELECT count(*), coalesce(bit_xor(h), 0) FROM (` + strings.Join(parts, "\nUNION ALL\n") + `) x`
	var n, x int64
	if err := r.tx.QueryRowxContext(ctx, q, args...).Scan(&n, &x); err != nil {
		return 0, 0, fmt.Errorf("checksum: %w", err)
	}
	return int(n), uint64(x), nil
}

// Reject stores an op that never reached Apply (for example one the sync server could
// not convert from an older schema version) as a rejection with code and message, like
// Apply stores its own rejections, and remembers the result under the op's id, so a
// resend is answered the same. An opId seen before returns its first result with
// Duplicate set, and stores nothing.
func (s *Store) Reject(ctx context.Context, op jiaoliu.Op, code, message string) (jiaoliu.OpResult, error) {
	actor := jiaoliu.ActorFromContext(ctx)
	if actor == nil {
		return jiaoliu.OpResult{}, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to make changes")
	}
	op = withoutNUL([]jiaoliu.Op{op})[0]
	message = strings.ReplaceAll(message, "\x00", "\uFFFD")
	res := jiaoliu.OpResult{OpID: op.OpID, ID: op.ID, Status: jiaoliu.StatusRejected, Code: code, Message: message}
	tx, end, err := s.beginWrite(ctx)
	if err != nil {
		return res, fmt.Errorf("reject: begin: %w", err)
	}
	defer end()
	if op.OpID != "" {
		var raw []byte
		err := tx.GetContext(ctx, &raw, `SELECT result FROM sync_ops WHERE op_id = $1`, op.OpID)
		if err == nil {
			var first jiaoliu.OpResult
			if err := json.Unmarshal(raw, &first); err != nil {
				return res, fmt.Errorf("reject: decode stored result: %w", err)
			}
			first.Duplicate = true
			return first, nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return res, fmt.Errorf("reject: look up op: %w", err)
		}
	}
	raw, err := json.Marshal(op)
	if err != nil {
		return res, fmt.Errorf("reject: encode op: %w", err)
	}
	scopes := []string{}
	if isUUID(op.ID) && jiaoliu.Entities[op.Entity] != nil {
		if err := tx.GetContext(ctx, pq.Array(&scopes), `SELECT coalesce((SELECT scopes FROM sync_log WHERE entity = $1 AND id = $2), '{}')`, op.Entity, op.ID); err != nil {
			return res, fmt.Errorf("reject: rejection scope: %w", err)
		}
	}
	for prefix, id := range map[string]string{"t:": actor.TeacherID, "s:": actor.SchoolID, "d:": actor.DistrictID} {
		if id != "" {
			scopes = append(scopes, prefix+id)
		}
	}
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	if _, err := tx.ExecContext(ctx, `INSERT INTO sync_rejections (op_id, device_id, user_id, entity, record_id, op, code, message, fields, scopes)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '{}', $9)`,
		op.OpID, nullID(actor.DeviceID), nullID(actor.UserID), op.Entity, op.ID, raw, code, message, pq.Array(scopes)); err != nil {
		return res, fmt.Errorf("reject: store rejection: %w", err)
	}
	if op.OpID != "" {
		w := &writer{store: s, tx: tx, actor: actor}
		if err := w.remember(ctx, op, res); err != nil {
			return res, fmt.Errorf("reject: %w", err)
		}
		if _, err := w.flushRemembered(ctx, ""); err != nil {
			return res, fmt.Errorf("reject: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("reject: commit: %w", err)
	}
	return res, nil
}

// DeviceSynced records that the device of the actor of ctx has just synced
// (devices.last_sync_at), at most once every SyncMarkInterval per device: the time an
// administrator reads is that of a sync less than that long ago, and a device pushing
// one op at a time does not pay a write and its commit (a WAL flush) per push — an
// UPDATE that matches no row writes nothing. Within the interval after this Store wrote
// it, it sends nothing at all (a round trip per push saved). It does nothing for actors
// without a device, and while the devices table does not exist.
func (s *Store) DeviceSynced(ctx context.Context) error {
	a := jiaoliu.ActorFromContext(ctx)
	if a == nil || a.DeviceID == "" {
		return nil
	}
	now := time.Now()
	if at, ok := s.synced.Load(a.DeviceID); ok && now.Sub(at.(time.Time)) < SyncMarkInterval {
		return nil
	}
	n, err := s.updateDevice(ctx, `UPDATE devices SET last_sync_at = now()
		WHERE id = $1 AND (last_sync_at IS NULL OR last_sync_at <= now() - make_interval(secs => $2))`, SyncMarkInterval.Seconds())
	if n > 0 {
		// Only a write of its own: last_sync_at written by another server a while ago
		// would otherwise lag up to twice the interval.
		s.synced.Store(a.DeviceID, now)
	}
	return err
}

// SyncMarkInterval is how long a device's last_sync_at may lag its latest sync.
var SyncMarkInterval = 30 * time.Second

// DeviceVerified records that the device of the actor of ctx has just verified its
// replica (devices.last_verify_at) and whether it matched (last_verify_ok; nil when the
// device's figures could not be compared). Like DeviceSynced it does nothing without a
// device or a devices table.
func (s *Store) DeviceVerified(ctx context.Context, ok *bool) error {
	_, err := s.updateDevice(ctx, `UPDATE devices SET last_verify_at = now(), last_verify_ok = $2 WHERE id = $1`, ok)
	return err
}

// updateDevice runs q with the actor's device id as $1 and args after it, prepared, and
// returns how many rows it changed.
func (s *Store) updateDevice(ctx context.Context, q string, args ...any) (int64, error) {
	a := jiaoliu.ActorFromContext(ctx)
	if a == nil || a.DeviceID == "" || !isUUID(a.DeviceID) {
		return 0, nil
	}
	res, err := s.exec(ctx, q, append([]any{a.DeviceID}, args...)...)
	var pe *pq.Error
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "42703") {
		// The devices table (migration 00003) is not there yet.
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("update device %s: %w", a.DeviceID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("update device %s: %w", a.DeviceID, err)
	}
	return n, nil
}
