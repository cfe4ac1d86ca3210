package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
)

// The bulk path applies a run of consecutive ops of a device batch that all create new
// records of the entities devices write most (lessons, attendance, research activities)
// with a handful of multi-row statements instead of about eight statements per op. It
// decides nothing itself: an op it is not sure to apply exactly as the per-op path would
// (a duplicate, an existing id or natural key, a field error, a rule, a constraint of the
// database, a scope check) ends the run before it, or sends the whole run back to the
// per-op path, which then gives the same results, rejections and audit rows as always.

// bulkEntities are the entities the bulk path creates: exchange children, whose scope
// tokens depend only on their exchange and (lessons) their school
// (exchange_child_tokens, migration 00005), and which no other entity of a device batch
// refers to.
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

// bulkOp is one op of a bulk run, parsed and checked.
type bulkOp struct {
	op     jiaoliu.Op
	def    *jiaoliu.Entity
	in     jiaoliu.Record // the fields the op sets (after fillFromActor)
	rec    jiaoliu.Record // the record to insert (with defaults)
	key    int64          // advisory lock key of the natural key, if any
	hasKey bool
}

// applyBulk applies the longest bulk run at the start of ops and writes its results
// into results. It returns how many ops it applied; 0 means the per-op path must take
// the first op.
func (w *writer) applyBulk(ctx context.Context, ops []jiaoliu.Op, results []jiaoliu.OpResult) (int, error) {
	run := w.bulkRun(ops)
	if len(run) < minBulk {
		return 0, nil
	}
	n, err := w.bulkCheck(ctx, run)
	if err != nil || n < minBulk {
		return 0, err
	}
	run = run[:n]
	ok, err := w.bulkWrite(ctx, run, results)
	if err != nil || !ok {
		// The per-op path takes these ops one by one.
		w.noBulk = len(run)
		return 0, err
	}
	return len(run), nil
}

// bulkRun returns the ops at the start of ops that the bulk path may create, checked in
// memory only: nothing here has side effects.
func (w *writer) bulkRun(ops []jiaoliu.Op) []bulkOp {
	if w.noBulk > 0 {
		return nil
	}
	var run []bulkOp
	ids := map[string]bool{}
	opIDs := map[string]bool{}
	keys := map[string]bool{}
	for _, op := range ops {
		def := jiaoliu.Entities[op.Entity]
		if op.Kind != jiaoliu.OpUpsert || op.MustExist || !bulkEntities[op.Entity] || checkEnvelope(op) != nil {
			break
		}
		if _, seen := w.seen[op.OpID]; seen || opIDs[op.OpID] || ids[strings.ToLower(op.ID)] {
			break
		}
		if w.mayWriteEntity(def) != nil {
			break
		}
		in, err := def.Parse(op.Fields)
		if err != nil {
			break
		}
		w.fillFromActor(def, in)
		fe := jiaoliu.FieldErrors{}
		def.CheckRequired(in, fe)
		rec := in.Clone()
		def.Defaults(rec)
		if validate(def, nil, rec, fe) != nil {
			break
		}
		b := bulkOp{op: op, def: def, in: in, rec: rec}
		if len(def.NaturalKey) > 0 {
			h := fnv.New64a()
			h.Write([]byte(def.Name))
			var sk strings.Builder
			sk.WriteString(def.Name)
			for _, name := range def.NaturalKey {
				v, ok := in[name]
				if !ok || v == nil {
					return run // an incomplete key: the per-op path says why
				}
				fmt.Fprintf(h, "/%v", v)
				fmt.Fprintf(&sk, "/%v", v)
			}
			if keys[sk.String()] {
				break // the second op of a key merges into the first: per-op path
			}
			keys[sk.String()] = true
			b.key, b.hasKey = int64(h.Sum64()), true
		}
		ids[strings.ToLower(op.ID)], opIDs[op.OpID] = true, true
		run = append(run, b)
	}
	return run
}

// bulkCheck takes the natural-key locks of the run (in op order, as the per-op path
// does) and returns how many ops at its start create records whose id and natural key
// are both new.
func (w *writer) bulkCheck(ctx context.Context, run []bulkOp) (int, error) {
	stop := len(run)
	byEntity := map[*jiaoliu.Entity][]int{}
	var order []*jiaoliu.Entity
	for i, b := range run {
		if byEntity[b.def] == nil {
			order = append(order, b.def)
		}
		byEntity[b.def] = append(byEntity[b.def], i)
	}
	// Existing ids: the per-op path would update them.
	for _, def := range order {
		idx := byEntity[def]
		ids := make([]string, len(idx))
		for k, i := range idx {
			ids[k] = run[i].op.ID
		}
		var found []string
		if err := w.tx.SelectContext(ctx, &found, `SELECT id::text FROM `+def.Table+` WHERE id = ANY($1::uuid[])`, pq.Array(ids)); err != nil {
			return 0, fmt.Errorf("bulk: look up ids: %w", err)
		}
		for _, id := range found {
			for _, i := range idx {
				if strings.EqualFold(run[i].op.ID, id) && i < stop {
					stop = i
				}
			}
		}
	}
	if stop < minBulk {
		return stop, nil
	}
	run = run[:stop]
	var lockKeys []int64
	for _, b := range run {
		if b.hasKey {
			lockKeys = append(lockKeys, b.key)
		}
	}
	if len(lockKeys) > 0 {
		if _, err := w.tx.ExecContext(ctx, `SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) k`, pq.Array(lockKeys)); err != nil {
			return 0, fmt.Errorf("bulk: lock natural keys: %w", err)
		}
	}
	// Live records with the same natural key: the per-op path would merge into them.
	for _, def := range order {
		if len(def.NaturalKey) == 0 {
			continue
		}
		types, err := columnTypes(ctx, w.tx, def.Table)
		if err != nil {
			return 0, err
		}
		var idx []int
		for _, i := range byEntity[def] {
			if i < stop {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			continue
		}
		args := make([]any, 0, len(def.NaturalKey)+1)
		sel := make([]string, 0, len(def.NaturalKey)+1)
		conds := make([]string, 0, len(def.NaturalKey))
		for k, name := range def.NaturalKey {
			f, _ := def.Field(name)
			col := make([]sql.NullString, len(idx))
			for j, i := range idx {
				col[j] = textValue(run[i].in[name])
			}
			args = append(args, pq.Array(col))
			sel = append(sel, fmt.Sprintf("$%d::text[]", k+1))
			conds = append(conds, fmt.Sprintf("t.%s = k.c%d::%s", f.Column(), k, types[f.Column()]))
		}
		pos := make([]int64, len(idx))
		for j, i := range idx {
			pos[j] = int64(i)
		}
		args = append(args, pq.Array(pos))
		sel = append(sel, fmt.Sprintf("$%d::bigint[]", len(args)))
		cols := make([]string, len(def.NaturalKey))
		for k := range cols {
			cols[k] = fmt.Sprintf("c%d", k)
		}
		q := fmt.Sprintf(`SELECT k.n FROM unnest(%s) AS k(%s, n) JOIN %s t ON %s AND NOT t.deleted`,
			strings.Join(sel, ", "), strings.Join(cols, ", "), def.Table, strings.Join(conds, " AND "))
		var found []int64
		if err := w.tx.SelectContext(ctx, &found, q, args...); err != nil {
			return 0, fmt.Errorf("bulk: look up natural keys: %w", err)
		}
		for _, i := range found {
			if int(i) < stop {
				stop = int(i)
			}
		}
	}
	return stop, nil
}

// bulkWrite inserts the run's records, their change-log rows and audit rows in a
// savepoint. It reports false, with the savepoint rolled back, when the database
// refused a row or a scope check failed: the per-op path then applies the run.
func (w *writer) bulkWrite(ctx context.Context, run []bulkOp, results []jiaoliu.OpResult) (bool, error) {
	restamped := make([]bool, len(run))
	for i := range run {
		run[i].op, restamped[i] = w.restamp(run[i].op)
	}
	var versions []int64
	if err := w.tx.SelectContext(ctx, &versions, `SELECT nextval('change_seq') FROM generate_series(1, $1)`, len(run)); err != nil {
		return false, fmt.Errorf("bulk: versions: %w", err)
	}
	if _, err := w.tx.ExecContext(ctx, `SAVEPOINT bulk`); err != nil {
		return false, fmt.Errorf("bulk: savepoint: %w", err)
	}
	rollback := func() (bool, error) {
		if _, err := w.tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT bulk`); err != nil {
			return false, fmt.Errorf("bulk: rollback to savepoint: %w", err)
		}
		return false, nil
	}
	byEntity := map[*jiaoliu.Entity][]int{}
	var order []*jiaoliu.Entity
	for i, b := range run {
		if byEntity[b.def] == nil {
			order = append(order, b.def)
		}
		byEntity[b.def] = append(byEntity[b.def], i)
	}
	for _, def := range order {
		ok, err := w.bulkInsert(ctx, def, run, byEntity[def], versions)
		if err != nil {
			return false, err
		}
		if !ok {
			return rollback()
		}
	}
	scopes, err := w.bulkLog(ctx, run, versions)
	if err != nil {
		if domainError(err) != nil {
			return rollback()
		}
		return false, err
	}
	for i, b := range run {
		if w.mayWrite(b.def, nil, scopes[i]) != nil {
			return rollback()
		}
	}
	if err := w.bulkAudit(ctx, run, scopes); err != nil {
		return false, err
	}
	if _, err := w.tx.ExecContext(ctx, `RELEASE SAVEPOINT bulk`); err != nil {
		return false, fmt.Errorf("bulk: release savepoint: %w", err)
	}
	for i, b := range run {
		w.markChanged(scopes[i])
		res := jiaoliu.OpResult{OpID: b.op.OpID, Status: jiaoliu.StatusApplied, ID: b.op.ID,
			Version: strconv.FormatInt(versions[i], 10), Restamped: restamped[i]}
		if restamped[i] {
			res.HLC = b.op.HLC
		}
		if err := w.remember(ctx, b.op, res); err != nil {
			return false, err
		}
		results[i] = res
	}
	return true, nil
}

// bulkInsert inserts the records of one entity in one statement; false means a
// constraint refused one of them.
func (w *writer) bulkInsert(ctx context.Context, def *jiaoliu.Entity, run []bulkOp, idx []int, versions []int64) (bool, error) {
	types, err := columnTypes(ctx, w.tx, def.Table)
	if err != nil {
		return false, err
	}
	cols := []string{"id", "field_hlc", "version"}
	exprs := []string{"u.c0::uuid", "u.c1::jsonb", "u.c2::bigint"}
	for _, f := range def.Fields {
		cols = append(cols, f.Column())
		exprs = append(exprs, fmt.Sprintf("u.c%d::%s", len(exprs), types[f.Column()]))
	}
	data := make([][]sql.NullString, len(cols))
	for k := range data {
		data[k] = make([]sql.NullString, len(idx))
	}
	for j, i := range idx {
		b := run[i]
		clock := make(map[string]string, len(b.in))
		for name := range b.in {
			clock[name] = b.op.HLC
		}
		data[0][j] = sql.NullString{String: b.op.ID, Valid: true}
		data[1][j] = sql.NullString{String: clockJSON(clock), Valid: true}
		data[2][j] = sql.NullString{String: strconv.FormatInt(versions[i], 10), Valid: true}
		for k, f := range def.Fields {
			data[3+k][j] = textValue(b.rec[f.Name])
		}
	}
	args := make([]any, len(cols))
	params := make([]string, len(cols))
	names := make([]string, len(cols))
	for k := range cols {
		args[k] = pq.Array(data[k])
		params[k] = fmt.Sprintf("$%d::text[]", k+1)
		names[k] = fmt.Sprintf("c%d", k)
	}
	q := fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM unnest(%s) AS u(%s)`, def.Table, strings.Join(cols, ", "),
		strings.Join(exprs, ", "), strings.Join(params, ", "), strings.Join(names, ", "))
	if _, err := w.tx.ExecContext(ctx, q, args...); err != nil {
		if domainError(constraintError(def, err)) != nil {
			return false, nil
		}
		return false, fmt.Errorf("bulk: insert %s: %w", def.Name, err)
	}
	return true, nil
}

// bulkLog writes the run's change-log rows, computing the scope tokens once per
// distinct (exchange, school), and returns each op's tokens.
func (w *writer) bulkLog(ctx context.Context, run []bulkOp, versions []int64) ([][]string, error) {
	entities := make([]string, len(run))
	ids := make([]string, len(run))
	seqs := make([]int64, len(run))
	exchanges := make([]sql.NullString, len(run))
	schools := make([]sql.NullString, len(run))
	for i, b := range run {
		entities[i], ids[i], seqs[i] = b.def.Name, b.op.ID, versions[i]
		exchanges[i] = textValue(b.rec["exchangeId"])
		schools[i] = textValue(b.rec["schoolId"]) // lessons only; NULL for the others
	}
	rows, err := w.tx.QueryxContext(ctx, `WITH u AS (
			SELECT * FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::uuid[], $5::uuid[]) WITH ORDINALITY AS u(entity, id, seq, x, s, n)),
		k AS MATERIALIZED (SELECT x, s, exchange_child_tokens(x, s) AS scopes FROM (SELECT DISTINCT x, s FROM u) d),
		ins AS (INSERT INTO sync_log (entity, id, seq, deleted, scopes)
			SELECT u.entity, u.id, u.seq, false, k.scopes FROM u JOIN k ON k.x = u.x AND k.s IS NOT DISTINCT FROM u.s
			ON CONFLICT (entity, id) DO UPDATE SET seq = excluded.seq, txid = pg_current_xact_id(), deleted = excluded.deleted, scopes = excluded.scopes
			RETURNING entity, id, scopes)
		SELECT u.n, ins.scopes FROM ins JOIN u ON u.entity = ins.entity AND u.id = ins.id`,
		pq.Array(entities), pq.Array(ids), pq.Array(seqs), pq.Array(exchanges), pq.Array(schools))
	if err != nil {
		return nil, fmt.Errorf("bulk: change log: %w", err)
	}
	defer rows.Close()
	out := make([][]string, len(run))
	got := 0
	for rows.Next() {
		var n int64
		var scopes []string
		if err := rows.Scan(&n, pq.Array(&scopes)); err != nil {
			return nil, fmt.Errorf("bulk: change log: %w", err)
		}
		out[n-1] = scopes
		got++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bulk: change log: %w", err)
	}
	if got != len(run) {
		return nil, fmt.Errorf("bulk: change log: %d rows for %d ops", got, len(run))
	}
	return out, nil
}

// bulkAudit writes the run's audit rows (action CREATE, the fields the op set) in one
// statement.
func (w *writer) bulkAudit(ctx context.Context, run []bulkOp, scopes [][]string) error {
	entities := make([]string, len(run))
	ids := make([]string, len(run))
	opIDs := make([]string, len(run))
	changes := make([]string, len(run))
	scopeLits := make([]string, len(run))
	for i, b := range run {
		ch := make(map[string]any, len(b.in))
		for name, v := range b.in {
			ch[name] = map[string]any{"new": v}
		}
		raw, err := json.Marshal(ch)
		if err != nil {
			return fmt.Errorf("encode audit: %w", err)
		}
		lit, err := pq.Array(scopes[i]).Value()
		if err != nil {
			return fmt.Errorf("encode audit: %w", err)
		}
		entities[i], ids[i], opIDs[i], changes[i], scopeLits[i] = b.def.Name, b.op.ID, b.op.OpID, string(raw), lit.(string)
	}
	a := w.actor
	_, err := w.tx.ExecContext(ctx, `INSERT INTO audit_log (user_id, username, device_id, session_id, entity, record_id, op_id, action, changes, scopes)
		SELECT $1, $2, $3, $4, u.entity, u.id, u.op_id, 'CREATE', u.changes::jsonb, u.scopes::text[]
		FROM unnest($5::text[], $6::uuid[], $7::text[], $8::text[], $9::text[]) WITH ORDINALITY AS u(entity, id, op_id, changes, scopes, n)
		ORDER BY u.n`,
		nullID(a.UserID), a.Username, nullID(a.DeviceID), a.SessionID,
		pq.Array(entities), pq.Array(ids), pq.Array(opIDs), pq.Array(changes), pq.Array(scopeLits))
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// textValue is v in PostgreSQL's text form, as lib/pq sends a parameter.
func textValue(v any) sql.NullString {
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
