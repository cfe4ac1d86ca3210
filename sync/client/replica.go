package client

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/jiaoliu/jiaoliu"
)

// Record is a record of the local replica as the user sees it: the server's state
// with the device's pending ops on top. Numbers in Fields are json.Number.
type Record struct {
	Entity string
	ID     string
	// Version is the server's version of the record as last pulled or acknowledged; ""
	// for a record the server has not confirmed yet.
	Version string
	// Deleted marks a tombstone (deleted here or on the server).
	Deleted bool
	Fields  map[string]any
	// Pending is the number of this record's ops waiting in the outbox.
	Pending int
}

// Synced reports whether the server holds the record as the device shows it.
func (r Record) Synced() bool { return r.Pending == 0 && r.Version != "" }

// Op is an operation of the outbox, as made once by Upsert or Delete.
type Op struct {
	Seq    int64 // position in the outbox (the order of writing)
	OpID   string
	Kind   string // jiaoliu.OpUpsert or jiaoliu.OpDelete
	Entity string
	ID     string
	HLC    string
	Fields map[string]any
	// Attempts is how many times the op was sent without an answer yet.
	Attempts int
}

// Upsert creates or patches a record locally and queues the op for the server, in one
// local transaction; it returns the op's id. Only the given fields change. Fields are
// checked like the server checks them (names, types, ranges, required fields on
// create, the entity's rules), so most mistakes are caught before the device goes
// online; a check that needs the server (scope, references) comes back as a rejection
// after the sync (see Rejections).
func (c *Client) Upsert(ctx context.Context, entity, id string, fields map[string]any) (string, error) {
	return c.write(ctx, jiaoliu.OpUpsert, entity, id, fields)
}

// Delete deletes a record locally (a tombstone) and queues the delete for the server;
// it returns the op's id. The record must be in the local replica.
func (c *Client) Delete(ctx context.Context, entity, id string) (string, error) {
	return c.write(ctx, jiaoliu.OpDelete, entity, id, nil)
}

func (c *Client) write(ctx context.Context, kind, entity, id string, fields map[string]any) (string, error) {
	if err := c.checkOpen(); err != nil {
		return "", err
	}
	if c.DeviceID() == "" {
		// The device id is the node of every HLC the device issues.
		return "", fmt.Errorf("%s %s: %w", kind, entity, ErrNotConfigured)
	}
	def := jiaoliu.Entities[entity]
	if def == nil {
		return "", fmt.Errorf("%s %s: %w", kind, entity, jiaoliu.Errorf(jiaoliu.EUNKNOWNENTITY, "unknown entity %q", entity))
	}
	if !isUUID(id) {
		return "", fmt.Errorf("%s %s %q: %w", kind, entity, id, &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid input",
			Fields: map[string]string{"id": "must be a UUID"}})
	}
	id = strings.ToLower(id)
	if kind == jiaoliu.OpUpsert && len(fields) == 0 {
		return "", fmt.Errorf("upsert %s %s: no fields to write", entity, id)
	}
	// Normalize the values through JSON, as they will travel.
	fieldsJSON, err := encodeFields(fields)
	if err != nil {
		return "", fmt.Errorf("%s %s %s: %w", kind, entity, id, err)
	}
	if len(fieldsJSON) > maxOpBytes {
		return "", fmt.Errorf("%s %s %s: the fields take %d bytes, more than %d", kind, entity, id, len(fieldsJSON), maxOpBytes)
	}
	norm, err := decodeFields(fieldsJSON)
	if err != nil {
		return "", fmt.Errorf("%s %s %s: %w", kind, entity, id, err)
	}
	opID := NewID()
	err = c.inTx(ctx, func(tx *localTx) error {
		cur, err := loadRecord(ctx, tx, entity, id)
		if err != nil {
			return err
		}
		switch kind {
		case jiaoliu.OpDelete:
			if cur == nil {
				return fmt.Errorf("delete %s %s: %w", entity, id, ErrNotFound)
			}
		case jiaoliu.OpUpsert:
			if err := checkFields(def, cur, norm); err != nil {
				return fmt.Errorf("upsert %s %s: %w", entity, id, err)
			}
		}
		stamp := c.clock.Now()
		var f any
		if kind == jiaoliu.OpUpsert {
			f = fieldsJSON
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (op_id, kind, entity, record_id, hlc, fields, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			opID, kind, entity, id, stamp, f, c.nowMs()); err != nil {
			return fmt.Errorf("queue %s %s %s: %w", kind, entity, id, err)
		}
		if err := setMeta(ctx, tx, metaHLC, stamp); err != nil {
			return err
		}
		return c.recompute(ctx, tx, entity, id)
	})
	if err != nil {
		return "", err
	}
	select {
	case c.outbox <- struct{}{}:
	default:
	}
	c.log.Debug("op queued", "op", opID, "kind", kind, "entity", entity, "id", id)
	return opID, nil
}

// maxOpBytes bounds the fields of one op, far under the server's message limit.
const maxOpBytes = 256 << 10

// checkFields runs the server's field checks on an upsert against the local view.
func checkFields(def *jiaoliu.Entity, cur *storedRecord, fields map[string]any) error {
	in, perr := def.Parse(fields)
	fe := jiaoliu.FieldErrors{}
	maps.Copy(fe, jiaoliu.ErrorFields(perr))
	var old jiaoliu.Record
	next := jiaoliu.Record{}
	if cur != nil {
		// Unparsable stored values (a newer server's fields) are left out of the check.
		old = jiaoliu.Record{}
		for name, v := range cur.fields {
			if f, ok := def.Field(name); ok {
				if pv, err := f.Parse(v); err == nil {
					old[name] = pv
				}
			}
		}
		next = old.Clone()
	}
	maps.Copy(next, in)
	if cur == nil {
		def.CheckRequired(next, fe)
		def.Defaults(next)
	}
	if def.Validate != nil {
		if err := def.Validate(old, next, fe); err != nil {
			return err
		}
	}
	return fe.Err()
}

// storedRecord is a row of the records table.
type storedRecord struct {
	entity, id  string
	hasBase     bool
	baseVersion string
	baseDeleted bool
	baseFields  map[string]any
	deleted     bool
	fields      map[string]any
	pending     int
	seen        int64
}

func loadRecord(ctx context.Context, q querier, entity, id string) (*storedRecord, error) {
	r := &storedRecord{entity: entity, id: id}
	var baseFields, fields string
	err := q.QueryRowContext(ctx, `SELECT has_base, base_version, base_deleted, base_fields, deleted, fields, pending, seen
		FROM records WHERE entity = ? AND id = ?`, entity, id).Scan(&r.hasBase, &r.baseVersion, &r.baseDeleted, &baseFields, &r.deleted, &fields, &r.pending, &r.seen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", entity, id, err)
	}
	if r.baseFields, err = decodeFields(baseFields); err != nil {
		return nil, fmt.Errorf("read %s %s: %w", entity, id, err)
	}
	if r.fields, err = decodeFields(fields); err != nil {
		return nil, fmt.Errorf("read %s %s: %w", entity, id, err)
	}
	return r, nil
}

// saveBase writes the server state of a record (creating the row if needed); the
// caller recomputes the view.
func saveBase(ctx context.Context, q querier, entity, id, version string, deleted bool, fields map[string]any, seen int64) error {
	fj, err := encodeFields(fields)
	if err != nil {
		return err
	}
	_, err = q.ExecContext(ctx, `INSERT INTO records (entity, id, has_base, base_version, base_deleted, base_fields, deleted, fields, seen)
		VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (entity, id) DO UPDATE SET has_base = 1, base_version = excluded.base_version,
			base_deleted = excluded.base_deleted, base_fields = excluded.base_fields,
			seen = max(records.seen, excluded.seen)`,
		entity, id, version, boolInt(deleted), fj, boolInt(deleted), fj, seen)
	if err != nil {
		return fmt.Errorf("store %s %s: %w", entity, id, err)
	}
	return nil
}

// recompute rebuilds the local view of a record: its base with the pending ops of the
// outbox applied in order. A record with neither base nor pending ops is removed.
func (c *Client) recompute(ctx context.Context, tx *localTx, entity, id string) error {
	cur, err := loadRecord(ctx, tx, entity, id)
	if err != nil {
		return err
	}
	ops, err := pendingOps(ctx, tx, `WHERE entity = ? AND record_id = ?`, entity, id)
	if err != nil {
		return err
	}
	if (cur == nil || !cur.hasBase) && len(ops) == 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM records WHERE entity = ? AND id = ?`, entity, id); err != nil {
			return fmt.Errorf("remove %s %s: %w", entity, id, err)
		}
		return nil
	}
	fields := map[string]any{}
	deleted := false
	if cur != nil && cur.hasBase {
		fields = maps.Clone(cur.baseFields)
		deleted = cur.baseDeleted
	}
	for _, op := range ops {
		switch op.Kind {
		case jiaoliu.OpDelete:
			deleted = true
		default:
			// An edit of a deleted record is kept in the tombstone, as on the server.
			maps.Copy(fields, op.Fields)
		}
	}
	fj, err := encodeFields(fields)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO records (entity, id, deleted, fields, pending, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (entity, id) DO UPDATE SET deleted = excluded.deleted, fields = excluded.fields, pending = excluded.pending,
			updated_at = excluded.updated_at`,
		entity, id, boolInt(deleted), fj, len(ops), c.nowMs()); err != nil {
		return fmt.Errorf("update %s %s: %w", entity, id, err)
	}
	return nil
}

// pendingOps returns the outbox ops matching where, in outbox order.
func pendingOps(ctx context.Context, q querier, where string, args ...any) ([]Op, error) {
	return pendingOpsLimit(ctx, q, where, -1, args...)
}

// pendingOpsLimit returns at most limit ops (all if limit < 0).
func pendingOpsLimit(ctx context.Context, q querier, where string, limit int, args ...any) ([]Op, error) {
	rows, err := q.QueryContext(ctx, `SELECT seq, op_id, kind, entity, record_id, hlc, coalesce(fields, ''), attempts FROM outbox `+where+
		` ORDER BY seq LIMIT `+strconv.Itoa(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("read the outbox: %w", err)
	}
	defer rows.Close()
	var ops []Op
	for rows.Next() {
		var op Op
		var fields string
		if err := rows.Scan(&op.Seq, &op.OpID, &op.Kind, &op.Entity, &op.ID, &op.HLC, &fields, &op.Attempts); err != nil {
			return nil, fmt.Errorf("read the outbox: %w", err)
		}
		if fields != "" {
			if op.Fields, err = decodeFields(fields); err != nil {
				return nil, fmt.Errorf("outbox op %s: %w", op.OpID, err)
			}
		}
		ops = append(ops, op)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the outbox: %w", err)
	}
	return ops, nil
}

// Get returns a record of the local replica, tombstones included (Deleted is set), or
// an error wrapping ErrNotFound.
func (c *Client) Get(ctx context.Context, entity, id string) (Record, error) {
	if err := c.checkOpen(); err != nil {
		return Record{}, err
	}
	r, err := loadRecord(ctx, c.db, entity, strings.ToLower(id))
	if err != nil {
		return Record{}, err
	}
	if r == nil {
		return Record{}, fmt.Errorf("%s %s: %w", entity, id, ErrNotFound)
	}
	return r.view(), nil
}

func (r *storedRecord) view() Record {
	return Record{Entity: r.entity, ID: r.id, Version: r.baseVersion, Deleted: r.deleted, Fields: r.fields, Pending: r.pending}
}

// List returns the live records of an entity in the local replica, ordered by id.
func (c *Client) List(ctx context.Context, entity string) ([]Record, error) {
	return c.records(ctx, `WHERE entity = ? AND deleted = 0`, entity)
}

// All returns every record of the local replica, tombstones included, ordered by
// entity and id.
func (c *Client) All(ctx context.Context) ([]Record, error) {
	return c.records(ctx, ``)
}

func (c *Client) records(ctx context.Context, where string, args ...any) ([]Record, error) {
	if err := c.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := c.db.QueryContext(ctx, `SELECT entity, id, base_version, deleted, fields, pending FROM records `+where+` ORDER BY entity, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		var fields string
		if err := rows.Scan(&r.Entity, &r.ID, &r.Version, &r.Deleted, &fields, &r.Pending); err != nil {
			return nil, fmt.Errorf("list records: %w", err)
		}
		if r.Fields, err = decodeFields(fields); err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.Entity, r.ID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	return out, nil
}

// FindByKey returns the live record of entity whose natural key fields (lesson:
// exchangeId, date, period; attendance: exchangeId, date) equal those in key, so that
// an app edits the day's attendance instead of creating a twin. ok is false when there
// is none, or when the entity has no natural key.
func (c *Client) FindByKey(ctx context.Context, entity string, key map[string]any) (rec Record, ok bool, err error) {
	def := jiaoliu.Entities[entity]
	if def == nil || len(def.NaturalKey) == 0 {
		return Record{}, false, nil
	}
	want := map[string]string{}
	for _, name := range def.NaturalKey {
		v, present := key[name]
		if !present || v == nil {
			return Record{}, false, nil
		}
		want[name] = valueKey(v)
	}
	recs, err := c.List(ctx, entity)
	if err != nil {
		return Record{}, false, err
	}
	for _, r := range recs {
		match := true
		for name, w := range want {
			if valueKey(r.Fields[name]) != w {
				match = false
				break
			}
		}
		if match {
			return r, true, nil
		}
	}
	return Record{}, false, nil
}

// valueKey is a comparable text of a field value (3, 3.0 and "3" differ only in
// JSON type, which natural keys do not care about).
func valueKey(v any) string {
	b, _ := json.Marshal(v)
	s := strings.Trim(string(b), `"`)
	if n, ok := v.(json.Number); ok {
		if f, err := n.Float64(); err == nil {
			return fmt.Sprintf("%g", f)
		}
	}
	switch x := v.(type) {
	case float64:
		return fmt.Sprintf("%g", x)
	case int:
		return fmt.Sprintf("%g", float64(x))
	case int64:
		return fmt.Sprintf("%g", float64(x))
	}
	return strings.ToLower(strings.TrimSpace(s))
}

// Pending returns the ops waiting in the outbox, in order.
func (c *Client) Pending(ctx context.Context) ([]Op, error) {
	if err := c.checkOpen(); err != nil {
		return nil, err
	}
	return pendingOps(ctx, c.db, ``)
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, ch := range s {
		switch i {
		case 8, 13, 18, 23:
			if ch != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", ch) {
				return false
			}
		}
	}
	return true
}

// refFields returns the names of the fields of def that refer to entity.
func refFields(def *jiaoliu.Entity, entity string) []string {
	var out []string
	for _, f := range def.Refs() {
		if f.Ref == entity {
			out = append(out, f.Name)
		}
	}
	return out
}

// refersTo reports whether an op touches the record entity/id: as its target, or
// through a reference field.
func refersTo(op Op, entity, id string) bool {
	if op.Entity == entity && op.ID == id {
		return true
	}
	def := jiaoliu.Entities[op.Entity]
	if def == nil {
		return false
	}
	for _, name := range refFields(def, entity) {
		if s, ok := op.Fields[name].(string); ok && strings.EqualFold(s, id) {
			return true
		}
	}
	return false
}

// hasNaturalKey reports whether records of entity may be merged into a twin by the
// server.
func hasNaturalKey(entity string) bool {
	def := jiaoliu.Entities[entity]
	return def != nil && len(def.NaturalKey) > 0
}
