package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
)

// The bulk path applies a run of consecutive ops of a device batch on the entities
// devices write most (lessons, attendance, research activities): creates, edits,
// deletes and natural-key merges, with a handful of multi-row statements instead of
// about eight statements per op. It decides the ops in memory from the records
// lockBatch locked (and that the transaction holds until it commits), with the per-op
// path's rules (jiaoliu.Merge, the entity's validation, the scope checks before and
// after), and writes the outcome: COPY of the new records, one UPDATE of the changed
// ones, one change-log upsert, COPY of the audit rows, the lost fields as conflicts.
//
// It is never the only one to decide: an op it is not sure to apply exactly as the
// per-op path would (a duplicate, a field error, a rule, a record outside the actor's
// scope, a record or natural key the per-op path wrote earlier in the batch) ends the
// run before it, and a run the database refuses (a constraint, a trigger) is rolled
// back to its savepoint and given whole to the per-op path, which then gives the
// results, rejections and audit rows it always gave. TestBulkPathIsThePerOpPath and
// TestBulkEditsAreThePerOpPath compare both paths on the same batches.

// bulkEntities are the entities the bulk path writes: exchange children, whose scope
// tokens depend only on their exchange and (lessons) their school
// (exchange_child_tokens, migration 00005), and whose writes change no other record's
// scope.
var bulkEntities = map[string]bool{"lesson": true, "attendance": true, "researchActivity": true}

// minBulk is the shortest run worth the bulk path's fixed statements. The environment
// variable JIAOLIU_NO_BULK=1 turns the bulk path off (every op takes the per-op path),
// to measure before and after (BENCHMARKS.md) or to rule it out when chasing a bug.
var minBulk = func() int {
	if os.Getenv("JIAOLIU_NO_BULK") != "" {
		return 1 << 30
	}
	return 4
}()

// bulkOp is one op of a bulk run, decided.
type bulkOp struct {
	op        jiaoliu.Op // after restamp
	restamped bool
	def       *jiaoliu.Entity
	id        string         // the record written (lower case): the op's, or the live twin's of a merge
	in        jiaoliu.Record // the fields the op sets (creates: with fillFromActor)
	cur       *current       // the record before the op; nil for a create
	rec       jiaoliu.Record // the record after the op (creates: with defaults)
	clock     map[string]string
	deleted   bool
	mask      uint64 // updates: the fields (bit i for def.Fields[i]) the op sets
	write     bool   // the record changes: a new version, a change-log row
	lost      []string
	changes   map[string]any // an update's audit changes (a create's are its fields, new)
	audit     bool           // the op has an audit row
	action    string
	res       jiaoliu.OpResult // without Version
	version   int64
	scope     scopeTokens // of a record written: its exchange's and school's (bulkScopes)
}

// bulkApplied and bulkRefused count the ops the bulk path applied and the ops of runs
// the database refused (tests read them).
var bulkApplied, bulkRefused atomic.Int64

// childScope names the inputs of exchange_child_tokens.
type childScope struct{ exchange, school string }

// applyBulk applies the longest bulk run of ops from position start and writes its
// results into results. It returns how many ops it applied; 0 means the per-op path
// must take the op at start.
func (w *writer) applyBulk(ctx context.Context, ops []jiaoliu.Op, start int, results []jiaoliu.OpResult) (int, error) {
	if minBulk > len(ops)-start || w.noBulk > 0 || !w.bulkOK {
		return 0, nil
	}
	if len(w.rows) > 0 {
		// Edits of stored records check the actor's read scope (lockBatch read it when it
		// found records; records the bulk path created since need it too).
		if err := w.tokens(ctx); err != nil {
			return 0, err
		}
	}
	run := w.bulkRun(ops, start)
	if len(run) >= minBulk {
		var err error
		if run, err = w.bulkScopes(ctx, run); err != nil {
			return 0, err
		}
	}
	if len(run) < minBulk {
		// The per-op path takes these ops (planning them again would decide the same).
		w.noBulk = len(run)
		return 0, nil
	}
	ok, err := w.bulkWrite(ctx, run, results)
	if err != nil || !ok {
		if err == nil {
			bulkRefused.Add(int64(len(run)))
		}
		w.noBulk = len(run)
		return 0, err
	}
	bulkApplied.Add(int64(len(run)))
	return len(run), nil
}

// bulkRun decides the ops from position start that the bulk path may apply, in memory:
// nothing here writes (restamp moves the server's clock, as the per-op path would).
func (w *writer) bulkRun(ops []jiaoliu.Op, start int) []bulkOp {
	run := make([]bulkOp, 0, len(ops)-start)
	opIDs := make(map[string]bool, len(ops)-start)     // of the run
	taken := make(map[string]bool, 2*(len(ops)-start)) // records (entity/id) and natural keys the run writes
	for i := start; i < len(ops); i++ {
		b, ok := w.bulkPlan(ops[i], w.parse(ops, i), opIDs, taken)
		if !ok {
			break
		}
		opIDs[ops[i].OpID] = true
		run = append(run, b)
	}
	return run
}

// bulkPlan decides one op as the per-op path would, or reports false when the op must
// take the per-op path (which then says why, if it is rejected).
func (w *writer) bulkPlan(op jiaoliu.Op, p *opInfo, opIDs, taken map[string]bool) (bulkOp, bool) {
	def := jiaoliu.Entities[op.Entity]
	if !bulkEntities[op.Entity] || !p.valid || (op.Kind == jiaoliu.OpUpsert && !p.parseOK) {
		return bulkOp{}, false
	}
	if _, seen := w.seen[op.OpID]; seen || opIDs[op.OpID] || w.mayWriteEntity(def) != nil {
		return bulkOp{}, false
	}
	b := bulkOp{def: def, id: strings.ToLower(op.ID)}
	rk := def.Name + "/" + b.id
	if taken[rk] || w.stale[rk] {
		return bulkOp{}, false
	}
	in := p.in // nil for a delete
	cur := w.rows[rk]
	key, hasKey := "", false
	merged := false
	if cur == nil {
		if op.Kind == jiaoliu.OpDelete || op.MustExist {
			return bulkOp{}, false // not found
		}
		if len(def.NaturalKey) > 0 {
			if key, hasKey = naturalKey(def, in); !hasKey || taken[key] || w.stale[key] {
				return bulkOp{}, false // an incomplete key, or one the batch wrote before
			}
			if twin := w.live[key]; twin != "" {
				tk := def.Name + "/" + twin
				if cur = w.rows[tk]; cur == nil || taken[tk] || w.stale[tk] {
					return bulkOp{}, false
				}
				b.id, merged = twin, true
			}
		}
	}
	if cur != nil && !w.canRead(cur.scopes) {
		return bulkOp{}, false // not found, or a twin outside the scope: forbidden
	}
	b.op, b.restamped = w.restamp(op)
	b.res = jiaoliu.OpResult{OpID: op.OpID, Status: jiaoliu.StatusApplied, ID: op.ID, Restamped: b.restamped}
	if b.restamped {
		b.res.HLC = b.op.HLC
	}
	if merged {
		b.res.Status, b.res.CanonicalID, b.res.ID = jiaoliu.StatusMerged, b.id, b.id
	}
	if cur == nil {
		if !w.planCreate(&b, in) {
			return bulkOp{}, false
		}
	} else if !w.planUpdate(&b, cur, in, merged, taken) {
		return bulkOp{}, false
	}
	taken[rk] = true
	if merged {
		taken[def.Name+"/"+b.id] = true // the twin it merged into
	}
	if hasKey {
		taken[key] = true
	}
	return b, true
}

// planCreate decides a create as create does.
func (w *writer) planCreate(b *bulkOp, in jiaoliu.Record) bool {
	w.fillFromActor(b.def, in)
	fe := jiaoliu.FieldErrors{}
	b.def.CheckRequired(in, fe)
	rec := in.Clone()
	b.def.Defaults(rec)
	if validate(b.def, nil, rec, fe) != nil {
		return false
	}
	b.clock = make(map[string]string, len(in))
	for name := range in {
		b.clock[name] = b.op.HLC
	}
	b.in, b.rec, b.write, b.audit, b.action = in, rec, true, true, "CREATE"
	return true
}

// planUpdate decides an edit, a delete or a merge into cur as update does.
func (w *writer) planUpdate(b *bulkOp, cur *current, in jiaoliu.Record, merged bool, taken map[string]bool) bool {
	def := b.def
	b.cur, b.in = cur, in
	b.clock = make(map[string]string, len(cur.clock)+len(in))
	for k, v := range cur.clock {
		b.clock[k] = v
	}
	b.deleted = cur.deleted
	var set jiaoliu.Record
	if b.op.Kind == jiaoliu.OpDelete {
		b.deleted, set = true, jiaoliu.Record{}
	} else {
		set, b.lost = jiaoliu.Merge(cur.rec, b.clock, in, b.op.HLC)
	}
	rec := cur.rec.Clone()
	for k, v := range set {
		rec[k] = v
	}
	if w.mayWrite(def, cur.scopes, nil) != nil {
		return false
	}
	b.write = len(set) > 0 || b.deleted != cur.deleted
	if b.write && validate(def, cur.rec, rec, jiaoliu.FieldErrors{}) != nil {
		return false
	}
	b.rec, b.res.Lost = rec, b.lost
	if !b.write {
		b.res.Version = strconv.FormatInt(cur.version, 10)
		return true
	}
	if len(def.NaturalKey) > 0 && !b.deleted {
		// An edit that moves the record onto a natural key another live record holds
		// fails on the unique index: the per-op path says so.
		old, _ := naturalKey(def, cur.rec)
		if k, ok := naturalKey(def, rec); ok && k != old {
			if w.live[k] != "" || taken[k] || w.stale[k] {
				return false
			}
			taken[k] = true
		}
	}
	b.changes = map[string]any{}
	for i, f := range def.Fields {
		v, ok := set[f.Name]
		if !ok {
			continue
		}
		b.mask |= 1 << i
		if !jiaoliu.FieldValueEqual(cur.rec[f.Name], v) {
			b.changes[f.Name] = map[string]any{"old": cur.rec[f.Name], "new": v}
		}
	}
	if b.deleted != cur.deleted {
		b.changes["deleted"] = map[string]any{"old": cur.deleted, "new": b.deleted}
	}
	b.audit = len(b.changes) > 0
	switch {
	case b.op.Kind == jiaoliu.OpDelete:
		b.action = "DELETE"
	case merged:
		b.action = "MERGE"
	default:
		b.action = "UPDATE"
	}
	return true
}

// bulkScopes sets the scope tokens of the run's changed records, computing those of
// each (exchange, school) once per batch, and cuts the run before the first record
// that would leave the actor's write scope (the per-op path rejects it).
func (w *writer) bulkScopes(ctx context.Context, run []bulkOp) ([]bulkOp, error) {
	if w.childScopes == nil {
		w.childScopes = map[childScope]scopeTokens{}
	}
	var missing []childScope
	for i := range run {
		if !run[i].write {
			continue
		}
		k := childScope{run[i].rec.String("exchangeId"), run[i].rec.String("schoolId")}
		if _, ok := w.childScopes[k]; !ok && !slices.Contains(missing, k) {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		xs := make([]sql.NullString, len(missing))
		ss := make([]sql.NullString, len(missing))
		for i, k := range missing {
			xs[i] = sql.NullString{String: k.exchange, Valid: k.exchange != ""}
			ss[i] = sql.NullString{String: k.school, Valid: k.school != ""}
		}
		rows, err := w.tx.Tx.QueryxContext(ctx, `SELECT u.n, exchange_child_tokens(u.x, u.s)
			FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS u(x, s, n)`, pq.Array(xs), pq.Array(ss))
		if err != nil {
			return nil, fmt.Errorf("bulk: scopes: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var n int
			var toks []string
			if err := rows.Scan(&n, pq.Array(&toks)); err != nil {
				return nil, fmt.Errorf("bulk: scopes: %w", err)
			}
			w.childScopes[missing[n-1]] = scopeTokens{toks, arrayLiteral(toks), arrayLiteral(DistrictTokens(toks))}
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("bulk: scopes: %w", err)
		}
	}
	for i := range run {
		b := &run[i]
		if !b.write {
			continue
		}
		b.scope = w.childScopes[childScope{b.rec.String("exchangeId"), b.rec.String("schoolId")}]
		if w.mayWrite(b.def, nil, b.scope.tokens) != nil {
			return run[:i], nil
		}
	}
	return run, nil
}

// scopeTokens are scope tokens and their text[] literal, and the literal of their
// district tokens (a record's district_scopes).
type scopeTokens struct {
	tokens    []string
	literal   string
	districts string
}

// DistrictTokens returns the district tokens among toks, in their order: what
// district_tokens (migration 00018) returns for toks sorted as the database sorts them,
// which scope tokens are.
func DistrictTokens(toks []string) []string {
	var ds []string
	for _, t := range toks {
		if strings.HasPrefix(t, "d:") {
			ds = append(ds, t)
		}
	}
	return ds
}

// bulkWrite writes the run in a savepoint. It reports false, with the savepoint
// rolled back, when the database refused a row: the per-op path then applies the run.
func (w *writer) bulkWrite(ctx context.Context, run []bulkOp, results []jiaoliu.OpResult) (bool, error) {
	n := 0
	for _, b := range run {
		if b.write {
			n++
		}
	}
	if n > 0 {
		var versions []int64
		if err := w.tx.Tx.SelectContext(ctx, &versions, `SELECT nextval('change_seq') FROM generate_series(1, $1)`, n); err != nil {
			return false, fmt.Errorf("bulk: versions: %w", err)
		}
		k := 0
		for i := range run {
			if run[i].write {
				run[i].version, k = versions[k], k+1
			}
		}
	}
	if _, err := w.tx.Tx.ExecContext(ctx, `SAVEPOINT bulk`); err != nil {
		return false, fmt.Errorf("bulk: savepoint: %w", err)
	}
	refused := func(err error) (bool, error) {
		if !refusal(err) {
			return false, err
		}
		// Released too, so that the per-op path's savepoints do not nest in it.
		if _, rerr := w.tx.Tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT bulk; RELEASE SAVEPOINT bulk`); rerr != nil {
			return false, fmt.Errorf("bulk: rollback to savepoint: %w", rerr)
		}
		return false, nil
	}
	var order []*jiaoliu.Entity
	for _, b := range run {
		if !slices.Contains(order, b.def) {
			order = append(order, b.def)
		}
	}
	for _, def := range order {
		if err := w.bulkInsert(ctx, def, run); err != nil {
			return refused(err)
		}
		if err := w.bulkUpdate(ctx, def, run); err != nil {
			return refused(err)
		}
	}
	if err := w.bulkLog(ctx, run); err != nil {
		return refused(err)
	}
	if err := w.bulkAudit(ctx, run); err != nil {
		return refused(err)
	}
	if err := w.bulkConflicts(ctx, run); err != nil {
		return refused(err)
	}
	if _, err := w.tx.Tx.ExecContext(ctx, `RELEASE SAVEPOINT bulk`); err != nil {
		return false, fmt.Errorf("bulk: release savepoint: %w", err)
	}
	for i := range run {
		b := &run[i]
		res := b.res
		if b.write {
			res.Version = strconv.FormatInt(b.version, 10)
			w.markChanged(b.scope.tokens)
			if b.cur != nil {
				if k, ok := naturalKey(b.def, b.cur.rec); ok && w.live[k] == b.id {
					delete(w.live, k)
				}
			}
			b.rec["id"] = b.id
			w.cache(b.def, &current{rec: b.rec, clock: b.clock, deleted: b.deleted, version: b.version, scopes: b.scope.tokens})
		}
		if err := w.remember(ctx, b.op, res); err != nil {
			return false, err
		}
		results[i] = res
	}
	return true, nil
}

// refusal reports whether err is the database refusing a row (a constraint, a
// trigger, a value it cannot take) rather than failing.
func refusal(err error) bool {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return false
	}
	class := pe.Code.Class()
	return class == "22" || class == "23" || pe.Code == "P0001"
}

// bulkInsert writes the run's new records of def with COPY.
func (w *writer) bulkInsert(ctx context.Context, def *jiaoliu.Entity, run []bulkOp) error {
	var idx []int
	for i, b := range run {
		if b.def == def && b.cur == nil {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	// The records carry their district_scopes (copied from the change log's scopes by a
	// trigger, migration 00018, which then finds nothing to change).
	cols := make([]string, 0, len(def.Fields)+4)
	cols = append(cols, "id", "field_hlc", "version", "district_scopes")
	for _, f := range def.Fields {
		cols = append(cols, f.Column())
	}
	var buf []byte
	if err := w.tx.copyIn(ctx, def.Table, cols, len(idx), func(j int, r *CopyRow) {
		b := &run[idx[j]]
		buf = appendClock(buf[:0], b.clock)
		r.Text(b.op.ID)
		r.TextBytes(buf)
		r.Int(b.version)
		r.Text(b.scope.districts)
		for _, f := range def.Fields {
			t := textValue(b.rec[f.Name])
			r.NullText(t.String, t.Valid)
		}
	}); err != nil {
		return fmt.Errorf("bulk: insert %s: %w", def.Name, err)
	}
	return nil
}

// bulkUpdate writes the run's changed records of def in one UPDATE: each row takes the
// fields its op set (mask), a new version, its clock and its deleted flag.
func (w *writer) bulkUpdate(ctx context.Context, def *jiaoliu.Entity, run []bulkOp) error {
	var idx []int
	for i, b := range run {
		if b.def == def && b.cur != nil && b.write {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	types, err := columnTypes(ctx, w.tx, def.Table)
	if err != nil {
		return err
	}
	ids := make([]string, len(idx))
	clocks := make([]string, len(idx))
	versions := make([]int64, len(idx))
	deleted := make([]bool, len(idx))
	masks := make([]int64, len(idx))
	districts := make([]string, len(idx))
	cols := make([][]sql.NullString, len(def.Fields))
	for k := range cols {
		cols[k] = make([]sql.NullString, len(idx))
	}
	for j, i := range idx {
		b := &run[i]
		ids[j], clocks[j], versions[j], deleted[j], masks[j] = b.id, string(appendClock(nil, b.clock)), b.version, b.deleted, int64(b.mask)
		districts[j] = b.scope.districts
		for k, f := range def.Fields {
			if b.mask&(1<<k) != 0 {
				cols[k][j] = textValue(b.rec[f.Name])
			}
		}
	}
	args := []any{pq.Array(ids), textArray(clocks), pq.Array(versions), pq.Array(deleted), pq.Array(masks), textArray(districts)}
	params := []string{"$1::uuid[]", "$2::text[]", "$3::bigint[]", "$4::bool[]", "$5::bigint[]", "$6::text[]"}
	names := []string{"id", "clock", "version", "deleted", "mask", "districts"}
	assign := []string{"version = u.version", "updated_at = now()", "field_hlc = u.clock::jsonb", "deleted = u.deleted",
		"district_scopes = u.districts::text[]"}
	for k, f := range def.Fields {
		args = append(args, nullTextArray(cols[k]))
		params = append(params, fmt.Sprintf("$%d::text[]", len(args)))
		names = append(names, fmt.Sprintf("c%d", k))
		assign = append(assign, fmt.Sprintf("%s = CASE WHEN u.mask & %d <> 0 THEN u.c%d::%s ELSE t.%s END",
			f.Column(), uint64(1)<<k, k, types[f.Column()], f.Column()))
	}
	q := fmt.Sprintf(`UPDATE %s t SET %s FROM unnest(%s) AS u(%s) WHERE t.id = u.id`, def.Table,
		strings.Join(assign, ", "), strings.Join(params, ", "), strings.Join(names, ", "))
	res, err := w.tx.Tx.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("bulk: update %s: %w", def.Name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(len(idx)) {
		return fmt.Errorf("bulk: update %s: %d of %d rows (%v)", def.Name, n, len(idx), err)
	}
	return nil
}

// bulkLog moves the run's changed records to the end of the change log with their
// scope tokens: new records with COPY (a change-log row of a record that does not exist
// yet would be refused, and the per-op path would take the run), the others with an
// upsert.
func (w *writer) bulkLog(ctx context.Context, run []bulkOp) error {
	var created []int
	var entities, ids, scopes []string
	var seqs []int64
	var deleted []bool
	for i, b := range run {
		switch {
		case !b.write:
		case b.cur == nil:
			created = append(created, i)
		default:
			entities, ids, seqs, deleted = append(entities, b.def.Name), append(ids, b.id), append(seqs, b.version), append(deleted, b.deleted)
			scopes = append(scopes, b.scope.literal)
		}
	}
	if len(created) > 0 {
		if err := w.tx.copyIn(ctx, "sync_log", []string{"entity", "id", "seq", "scopes"}, len(created), func(j int, r *CopyRow) {
			b := &run[created[j]]
			r.Text(b.def.Name)
			r.Text(b.id)
			r.Int(b.version)
			r.Text(b.scope.literal)
		}); err != nil {
			return fmt.Errorf("bulk: change log: %w", err)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := w.tx.Tx.ExecContext(ctx, `INSERT INTO sync_log (entity, id, seq, deleted, scopes)
		SELECT u.entity, u.id, u.seq, u.deleted, u.scopes::text[] FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::bool[], $5::text[]) AS u(entity, id, seq, deleted, scopes)
		ON CONFLICT (entity, id) DO UPDATE SET seq = excluded.seq, txid = pg_current_xact_id(), deleted = excluded.deleted, scopes = excluded.scopes`,
		textArray(entities), pq.Array(ids), pq.Array(seqs), pq.Array(deleted), textArray(scopes)); err != nil {
		return fmt.Errorf("bulk: change log: %w", err)
	}
	return nil
}

// bulkAudit writes the run's audit rows, in op order, with COPY.
func (w *writer) bulkAudit(ctx context.Context, run []bulkOp) error {
	var idx []int
	for i, b := range run {
		if b.audit {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	a := w.actor
	var buf []byte
	var encErr error
	err := w.tx.copyIn(ctx, "audit_log", []string{"user_id", "username", "device_id", "session_id", "entity", "record_id", "op_id", "action", "changes", "scopes"},
		len(idx), func(j int, r *CopyRow) {
			b := &run[idx[j]]
			var err error
			if b.cur == nil {
				buf, err = appendCreated(buf[:0], b.in)
			} else {
				buf, err = appendChanges(buf[:0], b.changes)
			}
			if err != nil && encErr == nil {
				encErr = err
			}
			r.ID(a.UserID)
			r.Text(a.Username)
			r.ID(a.DeviceID)
			r.Text(a.SessionID)
			r.Text(b.def.Name)
			r.Text(b.id)
			r.Text(b.op.OpID)
			r.Text(b.action)
			r.TextBytes(buf)
			r.Text(b.scope.literal)
		})
	if encErr != nil {
		return fmt.Errorf("encode audit: %w", encErr)
	}
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// bulkConflicts stores the run's lost field values that differ from the kept ones, as
// conflict does.
func (w *writer) bulkConflicts(ctx context.Context, run []bulkOp) error {
	var entities, ids, fields, kept, keptHLC, lost, opIDs, lostHLC []string
	for _, b := range run {
		for _, name := range b.lost {
			k, err := json.Marshal(b.cur.rec[name])
			if err != nil {
				return fmt.Errorf("record conflict: %w", err)
			}
			l, err := json.Marshal(b.in[name])
			if err != nil {
				return fmt.Errorf("record conflict: %w", err)
			}
			entities, ids, fields = append(entities, b.def.Name), append(ids, b.id), append(fields, name)
			kept, keptHLC, lost = append(kept, string(k)), append(keptHLC, b.cur.clock[name]), append(lost, string(l))
			lostHLC, opIDs = append(lostHLC, b.op.HLC), append(opIDs, b.op.OpID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := w.tx.Tx.ExecContext(ctx, `INSERT INTO sync_conflicts (entity, record_id, field, kept_value, kept_hlc, lost_value, lost_hlc, lost_op_id, lost_device_id, lost_user_id)
		SELECT u.entity, u.id, u.field, u.kept::jsonb, u.kept_hlc, u.lost::jsonb, u.lost_hlc, u.op_id, $9, $10
		FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) WITH ORDINALITY
			AS u(entity, id, field, kept, kept_hlc, lost, lost_hlc, op_id, n)
		ORDER BY u.n`,
		textArray(entities), pq.Array(ids), textArray(fields), textArray(kept), textArray(keptHLC), textArray(lost), textArray(lostHLC), textArray(opIDs),
		nullID(w.actor.DeviceID), nullID(w.actor.UserID))
	if err != nil {
		return fmt.Errorf("record conflict: %w", err)
	}
	return nil
}

// textValue is v in PostgreSQL's text form, as lib/pq sends a parameter.
func textValue(v any) sql.NullString {
	switch x := v.(type) {
	case nil:
		return sql.NullString{}
	case string:
		return sql.NullString{String: x, Valid: true}
	case int64:
		return sql.NullString{String: strconv.FormatInt(x, 10), Valid: true}
	case jiaoliu.Date:
		if x.IsZero() {
			return sql.NullString{}
		}
		return sql.NullString{String: x.String(), Valid: true}
	}
	dv, err := driver.DefaultParameterConverter.ConvertValue(v)
	if err != nil || dv == nil {
		return sql.NullString{}
	}
	switch x := dv.(type) {
	case string:
		return sql.NullString{String: x, Valid: true}
	case []byte:
		return sql.NullString{String: string(x), Valid: true}
	case int64:
		return sql.NullString{String: strconv.FormatInt(x, 10), Valid: true}
	case float64:
		return sql.NullString{String: strconv.FormatFloat(x, 'f', -1, 64), Valid: true}
	case bool:
		return sql.NullString{String: strconv.FormatBool(x), Valid: true}
	case time.Time:
		return sql.NullString{String: x.Format(time.RFC3339Nano), Valid: true}
	}
	return sql.NullString{String: fmt.Sprint(dv), Valid: true}
}

// arrayLiteral is a text[] literal of ss, as pq.Array would send it.
func arrayLiteral(ss []string) string {
	b := make([]byte, 0, 16*len(ss)+2)
	b = append(b, '{')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendQuotedElem(b, s)
	}
	return string(append(b, '}'))
}

// textArray is a text[] parameter of ss (no NULLs), built without reflection.
func textArray(ss []string) string { return arrayLiteral(ss) }

// nullTextArray is a text[] parameter with NULLs where ns is not valid.
func nullTextArray(ns []sql.NullString) string {
	b := make([]byte, 0, 16*len(ns)+2)
	b = append(b, '{')
	for i, s := range ns {
		if i > 0 {
			b = append(b, ',')
		}
		if !s.Valid {
			b = append(b, "NULL"...)
			continue
		}
		b = appendQuotedElem(b, s.String)
	}
	return string(append(b, '}'))
}

func appendQuotedElem(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// appendChanges appends an audit row's changes ({"field": {"new": …, "old": …}}) as
// JSON, as json.Marshal writes them (keys sorted).
func appendChanges(b []byte, changes map[string]any) ([]byte, error) {
	return appendObject(b, changes, func(b []byte, ch any) ([]byte, error) {
		m, _ := ch.(map[string]any)
		return appendObject(b, m, appendJSONValue, "new", "old")
	})
}

// appendCreated appends a create's audit changes, {"field": {"new": …}} for each field
// the op set, as JSON, without building the maps appendChanges takes.
func appendCreated(b []byte, in jiaoliu.Record) ([]byte, error) {
	return appendObject(b, in, func(b []byte, v any) ([]byte, error) {
		b, err := appendJSONValue(append(b, `{"new":`...), v)
		return append(b, '}'), err
	})
}

// appendObject appends m as a JSON object, each value by value: all of m's keys, or
// only keys (in that order) when given.
func appendObject[V any](b []byte, m map[string]V, value func([]byte, V) ([]byte, error), keys ...string) ([]byte, error) {
	b = append(b, '{')
	first := true
	field := func(k string, v V) error {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(appendJSONString(b, k), ':')
		var err error
		b, err = value(b, v)
		return err
	}
	if keys == nil {
		// Sorted, as json.Marshal writes a map: the per-op path's audit rows are
		// json.Marshal's, and the column keeps the text as it is written.
		var fixed [32]string
		sorted := fixed[:0]
		for k := range m {
			sorted = append(sorted, k)
		}
		slices.Sort(sorted)
		keys = sorted
	}
	for _, k := range keys {
		if v, ok := m[k]; ok {
			if err := field(k, v); err != nil {
				return nil, err
			}
		}
	}
	return append(b, '}'), nil
}

// appendJSONValue appends v as json.Marshal encodes it.
func appendJSONValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, x), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case jiaoliu.Date:
		if x.IsZero() {
			return append(b, "null"...), nil
		}
		return appendJSONString(b, x.String()), nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, raw...), nil
}

// columnTypes returns the SQL types of a table's columns, read once per process (the
// migrations of this package define them).
func columnTypes(ctx context.Context, tx *stmtTx, table string) (map[string]string, error) {
	if t, ok := colTypes.Load(table); ok {
		return t.(map[string]string), nil
	}
	rows, err := tx.Tx.QueryxContext(ctx, `SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, table)
	if err != nil {
		return nil, fmt.Errorf("column types of %s: %w", table, err)
	}
	defer rows.Close()
	types := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("column types of %s: %w", table, err)
		}
		types[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("column types of %s: %w", table, err)
	}
	colTypes.Store(table, types)
	return types, nil
}

var colTypes sync.Map // table name → column name → SQL type
