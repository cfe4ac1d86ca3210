package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// MaxClockAhead is how far ahead of the server's clock an op's HLC may be before the
// server re-stamps it with its own (the protocol's 5 minutes).
const MaxClockAhead = 5 * time.Minute

// adminOnlyEntities are written by district admins only: the district's own structure
// and policy.
var adminOnlyEntities = map[string]bool{"district": true, "zone": true, "schoolGroup": true, "school": true, "policy": true}

// Apply implements jiaoliu.Writer: the one write path of the product. Each op is merged
// field by field under last-writer-wins by HLC, validated by the entity's rules,
// authorized against the actor's scope, written with a new version, moved to the end
// of the change log, and audited, all in one transaction. A rejected op of a device
// batch is stored whole in sync_rejections and never stops the other ops.
//
// The transaction takes its locks before it applies any op, in one order that every
// batch follows (lockBatch), so batches over the same records queue instead of
// deadlocking. When PostgreSQL still aborts it for a deadlock or a serialization
// failure, Apply runs the batch again, up to maxApplyAttempts times with a random
// pause, before it returns the error: nothing of an aborted attempt was committed.
func (s *Store) Apply(ctx context.Context, batch jiaoliu.Batch) ([]jiaoliu.OpResult, error) {
	actor := jiaoliu.ActorFromContext(ctx)
	if actor == nil {
		return nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to make changes")
	}
	if !actor.System && actor.Role == jiaoliu.RoleAuditor {
		return nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "auditors cannot change records")
	}
	batch.Ops = withoutNUL(batch.Ops)
	select {
	case s.writeSlots <- struct{}{}:
		defer func() { <-s.writeSlots }()
	case <-ctx.Done():
		return nil, fmt.Errorf("apply: %w", ctx.Err())
	}
	assumeNew := !batch.Atomic
	for attempt := 1; ; attempt++ {
		results, err := s.applyOnce(ctx, actor, batch, attempt, assumeNew)
		if err != nil && assumeNew && !retryable(err) && ctx.Err() == nil {
			// An op of the batch was seen before (errSeenBefore), or applying such an
			// op again failed (a record it creates exists: a unique violation, as when
			// a resend runs beside the first application): nothing was committed; run
			// the batch as a resend is run, its opIds looked up first.
			switch {
			case errors.Is(err, errRejectedAlone):
			case errors.Is(err, errSeenBefore) || uniqueViolation(err):
				seenRetries.Add(1)
			default:
				s.log.Warn("apply: a batch taken for new failed; running it again with its opIds looked up", logKeyErr, err, logKeyOps, len(batch.Ops))
				seenRetries.Add(1)
			}
			assumeNew = false
			results, err = s.applyOnce(ctx, actor, batch, attempt, false)
		}
		if err == nil || !retryable(err) {
			return results, err
		}
		applyRetries.Add(1)
		if attempt == maxApplyAttempts {
			return nil, fmt.Errorf("apply: gave up after %d attempts: %w", attempt, err)
		}
		s.log.Warn("apply: transaction aborted, running the batch again", logKeyErr, err, logKeyAttempt, attempt, logKeyOps, len(batch.Ops))
		pause := time.NewTimer(retryPause(attempt))
		select {
		case <-pause.C:
		case <-ctx.Done():
			pause.Stop()
			return nil, fmt.Errorf("apply: %w (after %v)", ctx.Err(), err)
		}
	}
}

// maxApplyAttempts bounds how many times Apply runs a batch that PostgreSQL aborts for
// a deadlock or a serialization failure.
const maxApplyAttempts = 5

// Log attribute keys of the write path.
const (
	logKeyErr     = "err"
	logKeyAttempt = "attempt"
	logKeyOps     = "ops"
)

// applyRetries counts the batches Apply ran again (tests read it).
var applyRetries atomic.Int64

// A device batch is taken for new: its opIds are not looked up before it is applied
// (lockBatch's step 2, an index probe of sync_ops per opId, a table that grows by every
// op ever pushed, and for a device saving one op at a time a lock and a lookup: two of
// its transaction's round trips). Storing the results at the end probes the same index
// (its primary key) and finds an opId seen before: the transaction is then given up and
// the batch run again, its opIds locked and looked up first (seenRetries). A batch
// carries ops seen before only when it is resent (its ack was lost), so that costs a
// batch twice, rarely. Until session 17 only batches of 16 ops or more were taken for
// new.

// errSeenBefore is an attempt's error when a batch taken for new carries an opId whose
// result is stored already.
var errSeenBefore = errors.New("apply: the batch carries ops seen before")

// errRejectedAlone is an attempt's error when the only op of a batch taken for new,
// applied without a savepoint (writer.alone), is rejected: the batch runs again as a
// resend does, each op in a savepoint, and stores the rejection then. A device saving
// one op at a time saves the savepoint's round trip on every push; a rejected op, rare,
// costs a transaction more.
var errRejectedAlone = errors.New("apply: the batch's only op is rejected")

// seenRetries counts the batches taken for new that were run again (tests read it).
var seenRetries atomic.Int64

// applyFault, when set (by tests), is called at the start of every attempt; an error
// it returns is that attempt's.
var applyFault func(attempt int) error

// retryable reports whether err aborted the transaction for a reason that running it
// again may not meet: a deadlock (40P01) or a serialization failure (40001).
func retryable(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// uniqueViolation reports whether err is PostgreSQL's unique violation (23505).
func uniqueViolation(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "23505"
}

// retryPause is a random pause before attempt+1, growing with attempt (10 to 40 ms,
// then 20 to 80 ms …): the batches that collided start again at different times.
func retryPause(attempt int) time.Duration {
	base := time.Duration(attempt) * 10 * time.Millisecond
	return base + rand.N(3*base)
}

// applyOnce runs a batch in one transaction. assumeNew takes the batch's opIds for new
// (see errSeenBefore): it then fails with errSeenBefore if one is not.
func (s *Store) applyOnce(ctx context.Context, actor *jiaoliu.Actor, batch jiaoliu.Batch, attempt int, assumeNew bool) ([]jiaoliu.OpResult, error) {
	if applyFault != nil {
		if err := applyFault(attempt); err != nil {
			return nil, err
		}
	}
	tx, end, err := s.beginWrite(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply: begin: %w", err)
	}
	defer end()

	w := &writer{store: s, tx: tx, actor: actor, atomic: batch.Atomic, assumeNew: assumeNew,
		alone: assumeNew && !batch.Atomic && len(batch.Ops) == 1}
	if err := w.lockBatch(ctx, batch.Ops); err != nil {
		return nil, err
	}
	results := make([]jiaoliu.OpResult, len(batch.Ops))
	ops, copied := batch.Ops, false
	for i := 0; i < len(ops); i++ {
		if op, ok := w.redirect(ops[i]); ok {
			if !copied {
				ops, copied = slices.Clone(ops), true // the caller's batch stays as it was
			}
			ops[i] = op
			if w.parsed != nil {
				w.parsed[i] = opInfo{} // parsed again with the canonical references
			}
		}
		if !batch.Atomic {
			// Runs of creates and edits of the records devices write most go through the
			// bulk path (bulk.go), a few statements per run instead of several per op;
			// it hands back what it cannot apply.
			n, err := w.applyBulk(ctx, ops, i, results[i:])
			if err != nil {
				return nil, err
			}
			if n > 0 {
				w.noteMerges(ops[i:i+n], results[i:i+n])
				i += n - 1
				continue
			}
			if w.noBulk > 0 {
				w.noBulk--
			}
		}
		op := ops[i]
		res, err := w.apply(ctx, op, batch.Atomic, i == len(ops)-1)
		if err != nil {
			return nil, fmt.Errorf("apply op %s: %w", op.OpID, err)
		}
		if res.Status == jiaoliu.StatusRejected && batch.Atomic {
			return nil, w.lastErr
		}
		results[i] = res
		w.noteMerges(ops[i:i+1], results[i:i+1])
	}
	var notify string
	if len(w.changed) > 0 {
		notify = w.notifyPayload()
	}
	notified, err := w.flushRemembered(ctx, notify)
	if err != nil {
		return nil, err
	}
	if notify != "" && !notified {
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify('sync_changes', $1)`, notify); err != nil {
			return nil, fmt.Errorf("apply: notify: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("apply: commit: %w", err)
	}
	return results, nil
}

// noteMerges notes the records that ops merged into a twin (their results), so that
// the ops after them in the batch follow (redirect).
func (w *writer) noteMerges(ops []jiaoliu.Op, results []jiaoliu.OpResult) {
	for k, r := range results {
		// A duplicate's first result counts too: a resend may carry ops written since.
		if r.Status != jiaoliu.StatusMerged || r.CanonicalID == "" {
			continue
		}
		from := ops[k].Entity + "/" + strings.ToLower(ops[k].ID)
		if w.merged == nil {
			w.merged = map[string]string{}
		}
		w.merged[from] = strings.ToLower(r.CanonicalID)
	}
}

// redirect rewrites an op on a record that an earlier op of the batch merged into a
// twin, and its references to such records, to the canonical ids: a device writes a
// lesson and edits it (or records an observation of it) in one batch before it can
// know that the server merges the lesson into one another device wrote. It reports
// whether it changed op; op's Fields are copied, not changed.
func (w *writer) redirect(op jiaoliu.Op) (jiaoliu.Op, bool) {
	if len(w.merged) == 0 {
		return op, false
	}
	def := jiaoliu.Entities[op.Entity]
	if def == nil {
		return op, false
	}
	changed := false
	if to, ok := w.merged[op.Entity+"/"+strings.ToLower(op.ID)]; ok {
		op.ID, changed = to, true
	}
	var fields map[string]any
	for _, f := range def.Refs() {
		v, ok := op.Fields[f.Name].(string)
		if !ok {
			continue
		}
		if to, ok := w.merged[f.Ref+"/"+strings.ToLower(v)]; ok {
			if fields == nil {
				fields = maps.Clone(op.Fields)
			}
			fields[f.Name] = to
		}
	}
	if fields != nil {
		op.Fields, changed = fields, true
	}
	return op, changed
}

// writer applies the ops of one batch inside one transaction.
type writer struct {
	store      *Store
	tx         *stmtTx
	atomic     bool
	seen       map[string]jiaoliu.OpResult // first results of the batch's opIds
	assumeNew  bool                        // the opIds were not looked up (errSeenBefore)
	alone      bool                        // the batch's only op is applied without a savepoint (errRejectedAlone)
	remembered []remembered                // results to store in sync_ops at the end
	actor      *jiaoliu.Actor
	readTokens []string // the actor's read scope; see tokens
	tokensRead bool
	changed    map[string]bool // scope tokens of changed records, for pokes
	lastErr    error
	parseErrs  jiaoliu.FieldErrors // messages of the current op's fields that did not parse
	noBulk     int                 // ops left that the bulk path gave back to the per-op path
	merged     map[string]string   // entity/id of a record an op of the batch merged → its twin's id (redirect)

	locked map[int64]bool // advisory locks the transaction holds
	// The records lockBatch locked, as they are now, for the bulk path: by entity/id,
	// and the ids of the live ones by natural key. The bulk path keeps them up to date
	// with its own writes; a record or key the per-op path wrote is in stale instead.
	rows   map[string]*current
	live   map[string]string
	stale  map[string]bool
	bulkOK bool // the cache above may be used: off after a write that changes child scopes
	// childScopes are the scope tokens of exchange children by (exchange, school).
	childScopes map[childScope]scopeTokens
	// parsed holds, by position in the batch, what lockBatch learnt of each op, so the
	// bulk path does not check and parse it again.
	parsed []opInfo
}

// opInfo is what the write path learns of an op before applying it.
type opInfo struct {
	checked bool           // valid is set
	valid   bool           // checkEnvelope accepts the op
	parsed  bool           // in and parseOK are set
	in      jiaoliu.Record // an upsert's fields that parse
	parseOK bool           // every field of the upsert parses
}

// info checks the op at position i of ops, once per attempt.
func (w *writer) info(ops []jiaoliu.Op, i int) *opInfo {
	if w.parsed == nil {
		w.parsed = make([]opInfo, len(ops))
	}
	p := &w.parsed[i]
	if !p.checked {
		p.checked, p.valid = true, checkEnvelope(ops[i]) == nil
	}
	return p
}

// parse returns info with the fields of the op (a valid upsert) parsed, once per
// attempt. The bulk path may add to in the fields fillFromActor fills, which it fills
// the same way again.
func (w *writer) parse(ops []jiaoliu.Op, i int) *opInfo {
	p := w.info(ops, i)
	if !p.parsed {
		p.parsed = true
		if op := ops[i]; p.valid && op.Kind == jiaoliu.OpUpsert {
			var err error
			p.in, err = jiaoliu.Entities[op.Entity].Parse(op.Fields)
			p.parseOK = err == nil
		}
	}
	return p
}

// tokens loads the actor's read scope (actor_tokens) once per transaction, when an op
// first meets a stored record (canRead needs it then; a create needs none). Reading it
// late reads what reading it first would: only a teacher's tokens depend on stored
// records (the teacher's, exchanges, schools), which a teacher cannot write.
func (w *writer) tokens(ctx context.Context) error {
	if w.tokensRead || w.actor.System {
		return nil
	}
	a := w.actor
	if err := w.tx.Tx.GetContext(ctx, pq.Array(&w.readTokens), `SELECT actor_tokens($1, $2, $3, $4)`,
		string(a.Role), nullID(a.DistrictID), nullID(a.SchoolID), nullID(a.TeacherID)); err != nil {
		return fmt.Errorf("apply: actor scope: %w", err)
	}
	w.tokensRead = true
	return nil
}

// notifyPayload lists the scope tokens that changed, so the sync hub pokes only the
// devices concerned. PostgreSQL limits a payload to 8000 bytes: past that it says "*"
// (poke everyone), which is always safe.
func (w *writer) notifyPayload() string {
	toks := make([]string, 0, len(w.changed))
	for t := range w.changed {
		toks = append(toks, t)
	}
	slices.Sort(toks)
	p := strings.Join(toks, " ")
	if len(p) > 7000 {
		return "*"
	}
	return p
}

// apply applies op, the last of its batch if last.
func (w *writer) apply(ctx context.Context, op jiaoliu.Op, atomic, last bool) (jiaoliu.OpResult, error) {
	res := jiaoliu.OpResult{OpID: op.OpID, ID: op.ID}
	if err := checkEnvelope(op); err != nil {
		// Remember even a malformed op's id, so resends do not pile up rejections.
		return w.reject(ctx, op, res, err, atomic, op.OpID != "" && len(op.OpID) <= 100)
	}
	if first, ok := w.seen[op.OpID]; ok && !atomic {
		first.Duplicate = true
		return first, nil
	}
	op, res.Restamped = w.restamp(op)

	// A device batch isolates each op in a savepoint, so a rejected op leaves the
	// others; an atomic batch fails whole anyway and needs none, nor does the only op of
	// a batch taken for new (errRejectedAlone). The savepoint of the batch's last op
	// that was applied is left to the commit; a rejected op's is rolled back and
	// released at once, so that its rejection is written outside it and the ops after
	// it do not nest one savepoint deeper each (past 64 open subtransactions
	// PostgreSQL's snapshots overflow, for every session).
	savepoint := !atomic && !w.alone
	if savepoint {
		if _, err := w.tx.ExecContext(ctx, `SAVEPOINT op`); err != nil {
			return res, fmt.Errorf("savepoint: %w", err)
		}
	}
	out, err := w.write(ctx, op)
	if err != nil {
		derr := domainError(err)
		if derr != nil && w.alone {
			return res, errRejectedAlone
		}
		if savepoint {
			if _, rerr := w.tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op`); rerr != nil {
				return res, fmt.Errorf("rollback to savepoint: %w", rerr)
			}
		}
		if derr != nil {
			return w.reject(ctx, op, res, derr, atomic, true)
		}
		return res, err
	}
	if savepoint && !last {
		if _, err := w.tx.ExecContext(ctx, `RELEASE SAVEPOINT op`); err != nil {
			return res, fmt.Errorf("release savepoint: %w", err)
		}
	}
	out.OpID, out.Restamped = op.OpID, res.Restamped
	if res.Restamped {
		out.HLC = op.HLC
	}
	if err := w.remember(ctx, op, out); err != nil {
		return res, err
	}
	return out, nil
}

// withoutNUL replaces the NUL characters in the strings of ops (ids, HLCs, field
// values and names) by U+FFFD, as JSON decoding does with invalid UTF-8. PostgreSQL
// cannot store NUL in text or jsonb: an op carrying one would fail its whole batch on
// every resend, and block the device's outbox for good. It copies only ops that have one.
func withoutNUL(ops []jiaoliu.Op) []jiaoliu.Op {
	var out []jiaoliu.Op
	for i, op := range ops {
		if !opHasNUL(op) {
			if out != nil {
				out[i] = op
			}
			continue
		}
		if out == nil {
			out = make([]jiaoliu.Op, len(ops))
			copy(out, ops[:i])
		}
		fix := func(s string) string { return strings.ReplaceAll(s, "\x00", "\uFFFD") }
		op.OpID, op.Kind, op.Entity, op.ID, op.HLC = fix(op.OpID), fix(op.Kind), fix(op.Entity), fix(op.ID), fix(op.HLC)
		fields := make(map[string]any, len(op.Fields))
		for k, v := range op.Fields {
			fields[fix(k)] = mapStrings(v, fix)
		}
		if op.Fields != nil {
			op.Fields = fields
		}
		out[i] = op
	}
	if out == nil {
		return ops
	}
	return out
}

func opHasNUL(op jiaoliu.Op) bool {
	has := func(s string) bool { return strings.IndexByte(s, 0) >= 0 }
	if has(op.OpID) || has(op.Kind) || has(op.Entity) || has(op.ID) || has(op.HLC) {
		return true
	}
	found := false
	for k, v := range op.Fields {
		mapStrings(v, func(s string) string { found = found || has(s); return s })
		found = found || has(k)
	}
	return found
}

// mapStrings applies f to the strings in a decoded JSON value.
func mapStrings(v any, f func(string) string) any {
	switch v := v.(type) {
	case string:
		return f(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = mapStrings(x, f)
		}
		return out
	case []string:
		out := make([]string, len(v))
		for i, x := range v {
			out[i] = f(x)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[f(k)] = mapStrings(x, f)
		}
		return out
	}
	// GraphQL inputs carry strings as pointers and as named types (enums); they stay
	// as they are unless f changes them.
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if rv.Kind() == reflect.String {
		if s := rv.String(); f(s) != s {
			return f(s)
		}
	}
	return v
}

// checkEnvelope checks the parts of an op that every entity needs.
func checkEnvelope(op jiaoliu.Op) error {
	fe := jiaoliu.FieldErrors{}
	if op.OpID == "" || len(op.OpID) > 100 {
		fe.Add("opId", "must be a UUID")
	}
	if op.Kind != jiaoliu.OpUpsert && op.Kind != jiaoliu.OpDelete {
		fe.Add("kind", "must be upsert or delete")
	}
	if !isUUID(op.ID) {
		fe.Add("id", "must be a UUID")
	}
	if _, err := hlc.Parse(op.HLC); err != nil {
		fe.Add("hlc", err.Error())
	}
	if err := fe.Err(); err != nil {
		return err
	}
	if jiaoliu.Entities[op.Entity] == nil {
		return jiaoliu.Errorf(jiaoliu.EUNKNOWNENTITY, "unknown entity %q", op.Entity)
	}
	return nil
}

// restamp replaces an HLC too far ahead of the server's clock by a fresh server HLC,
// and otherwise moves the server's clock past the op's, so that later server edits win.
func (w *writer) restamp(op jiaoliu.Op) (jiaoliu.Op, bool) {
	clock := w.store.clock
	ts, _ := hlc.Parse(op.HLC)
	if ts.Wall > clock.WallNow()+MaxClockAhead.Milliseconds() {
		op.HLC = clock.Now()
		return op, true
	}
	clock.Update(op.HLC)
	return op, false
}

// reject turns a domain error into a rejected result. For device batches the op is
// stored whole, with its code, and remembered so a resend gets the same answer.
func (w *writer) reject(ctx context.Context, op jiaoliu.Op, res jiaoliu.OpResult, err error, atomic, remember bool) (jiaoliu.OpResult, error) {
	w.lastErr = err
	res.Status = jiaoliu.StatusRejected
	res.Code = jiaoliu.RejectCode(jiaoliu.ErrorCode(err))
	res.Message = jiaoliu.ErrorMessage(err)
	res.Fields = jiaoliu.ErrorFields(err)
	if atomic {
		return res, nil
	}
	raw, jerr := json.Marshal(op)
	if jerr != nil {
		return res, fmt.Errorf("encode rejected op: %w", jerr)
	}
	fields, _ := json.Marshal(res.Fields)
	if res.Fields == nil {
		fields = []byte("{}")
	}
	scopes, err := w.rejectionScopes(ctx, op)
	if err != nil {
		return res, err
	}
	if w.actor.TeacherID != "" {
		scopes = append(scopes, "t:"+w.actor.TeacherID)
	}
	if w.actor.SchoolID != "" {
		scopes = append(scopes, "s:"+w.actor.SchoolID)
	}
	if w.actor.DistrictID != "" {
		scopes = append(scopes, "d:"+w.actor.DistrictID)
	}
	if _, err := w.tx.ExecContext(ctx, `INSERT INTO sync_rejections (op_id, device_id, user_id, entity, record_id, op, code, message, fields, scopes)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		op.OpID, nullID(w.actor.DeviceID), nullID(w.actor.UserID), op.Entity, op.ID, raw, res.Code, res.Message, fields, pq.Array(scopes)); err != nil {
		return res, fmt.Errorf("store rejection: %w", err)
	}
	if remember && op.OpID != "" {
		if err := w.remember(ctx, op, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// rejectionScopes returns who sees a rejected op: the readers of the record it targets
// and of every record it refers to (a new lesson's exchange, an activity's pair), so
// the admins concerned see rejections of records that never came to exist.
func (w *writer) rejectionScopes(ctx context.Context, op jiaoliu.Op) ([]string, error) {
	def := jiaoliu.Entities[op.Entity]
	if def == nil || !isUUID(op.ID) {
		return []string{}, nil
	}
	entities, ids := []string{def.Name}, []string{op.ID}
	for _, f := range def.Refs() {
		if id, ok := op.Fields[f.Name].(string); ok && isUUID(id) {
			entities, ids = append(entities, f.Ref), append(ids, id)
		}
	}
	var scopes []string
	err := w.tx.GetContext(ctx, pq.Array(&scopes), `SELECT coalesce(array_agg(DISTINCT t), '{}') FROM (
			SELECT scopes FROM sync_log WHERE entity = $1 AND id = $2::uuid
			UNION ALL SELECT scope_tokens(r.e, r.i) FROM unnest($3::text[], $4::uuid[]) AS r(e, i) WHERE r.i <> $2::uuid) s,
			unnest(s.scopes) t WHERE t NOT LIKE 'w:%'`, def.Name, op.ID, pq.Array(entities), pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("rejection scope: %w", err)
	}
	return scopes, nil
}

type remembered struct {
	opID   string
	result []byte
}

// lockBatch takes the locks of a batch before any op is applied, in an order that every
// batch follows, so that concurrent batches over the same records wait for each other
// instead of deadlocking (each op used to lock its record when its turn came, so two
// batches editing the same records in different orders deadlocked: 114 times in a
// 200-fault chaos run). In order:
//
//  1. transaction advisory locks on the opIds of a device batch (a resend waits for the
//     first application to commit, then finds its result; not for a batch taken for
//     new, which the unique indexes of what it writes make wait) and on the natural
//     keys of its upserts (concurrent creates of one key merge instead of failing), all
//     in one statement, in ascending order of key;
//  2. the first results of the opIds seen before (idempotency), unless the batch is
//     taken for new (errSeenBefore: storing its results finds any seen before);
//  3. row locks on the records the ops name and on the live records holding their
//     natural keys: one statement per entity, children before parents (lockOrder), rows
//     in id order.
//
// The per-op and bulk paths take the same locks again later, for free. What no plan can
// know beforehand (a foreign key's share lock on a parent, the change-log rows of
// records whose scope a change refreshes, the unique index entry of a natural key an
// edit changes) can still close a cycle with another batch, rarely: Apply then runs the
// batch again. A batch of one op takes its locks as it goes: one op alone cannot hold
// one lock while it waits for another batch that waits for it.
func (w *writer) lockBatch(ctx context.Context, ops []jiaoliu.Op) error {
	w.locked = map[int64]bool{}
	w.seen = make(map[string]jiaoliu.OpResult, len(ops)) // the results seen before (loadSeen), then every op's (remember)
	var keys []int64
	if !w.atomic && !w.assumeNew {
		// A batch taken for new needs no lock on its opIds: a resend of it running at
		// once writes the same records and results, whose unique indexes make it wait
		// for this one and then fail, to be run again with its opIds looked up.
		for _, op := range ops {
			keys = append(keys, advisoryKey("op/"+op.OpID))
		}
	}
	type lockSet struct {
		ids  []string
		keys [][]any
	}
	sets := map[*jiaoliu.Entity]*lockSet{}
	valid := 0
	for i := range ops {
		if w.info(ops, i).valid {
			valid++
		}
	}
	orderFirst := valid > 1 && lockFirst
	var nks []string // the natural key of each op, if any
	if orderFirst {
		nks = make([]string, len(ops))
		for i, op := range ops {
			if !w.info(ops, i).valid || op.Kind != jiaoliu.OpUpsert || op.MustExist || len(jiaoliu.Entities[op.Entity].NaturalKey) == 0 {
				continue
			}
			// The fields that parse name the key; the op's errors come later.
			p := w.parse(ops, i)
			if k, ok := naturalKey(jiaoliu.Entities[op.Entity], p.in); ok {
				keys = append(keys, advisoryKey(k))
				nks[i] = k
			}
		}
	}
	if err := w.lockKeys(ctx, keys); err != nil {
		return err
	}
	if !w.atomic && !w.assumeNew {
		if err := w.loadSeen(ctx, ops); err != nil {
			return err
		}
	}
	if !orderFirst {
		return nil
	}
	for i, op := range ops {
		p := w.info(ops, i)
		if _, seen := w.seen[op.OpID]; !p.valid || seen {
			continue // answered without reading anything
		}
		def := jiaoliu.Entities[op.Entity]
		ls := sets[def]
		if ls == nil {
			ls = &lockSet{}
			sets[def] = ls
		}
		ls.ids = append(ls.ids, op.ID)
		if nks[i] != "" {
			vals := make([]any, len(def.NaturalKey))
			for k, name := range def.NaturalKey {
				vals[k] = p.in[name]
			}
			ls.keys = append(ls.keys, vals)
		}
	}
	// Sized for a batch of creates, which the bulk path caches as it writes them.
	w.rows, w.live, w.stale, w.bulkOK = make(map[string]*current, len(ops)), make(map[string]string, len(ops)), map[string]bool{}, !w.atomic && minBulk <= len(ops)
	for _, def := range lockOrder {
		ls := sets[def]
		if ls == nil {
			continue
		}
		// The bulk path decides from the records it reads here; the per-op path reads
		// each record again when its op comes, and needs only the lock.
		rows, err := w.lockRows(ctx, def, ls.ids, ls.keys, w.bulkOK && bulkEntities[def.Name])
		if err != nil {
			return err
		}
		for _, cur := range rows {
			w.cache(def, cur)
		}
	}
	if len(w.rows) > 0 {
		return w.tokens(ctx)
	}
	return nil
}

// lockFirst turns steps 1 (natural keys) and 3 of lockBatch on; tests turn it off to
// show the deadlocks it prevents.
var lockFirst = true

// lockOrder lists the entities in the order lockBatch locks their rows: children before
// parents. A batch that changes a parent (an exchange) and one that adds its children
// (lessons, whose foreign key takes a share lock on the exchange when they are written)
// then meet on the children first.
var lockOrder = func() []*jiaoliu.Entity {
	out := make([]*jiaoliu.Entity, 0, len(jiaoliu.EntityOrder))
	for i := len(jiaoliu.EntityOrder) - 1; i >= 0; i-- {
		out = append(out, jiaoliu.Entities[jiaoliu.EntityOrder[i]])
	}
	return out
}()

// lockKeys takes transaction advisory locks on keys, in ascending order, skipping those
// the transaction holds.
func (w *writer) lockKeys(ctx context.Context, keys []int64) error {
	if w.locked == nil {
		w.locked = map[int64]bool{}
	}
	keys = slices.DeleteFunc(keys, func(k int64) bool { return w.locked[k] })
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	if _, err := w.tx.shareable().ExecContext(ctx, `SELECT count(pg_advisory_xact_lock(k)) FROM unnest((SELECT $1::bigint[])) AS k`, pq.Array(keys)); err != nil {
		return fmt.Errorf("lock keys: %w", err)
	}
	for _, k := range keys {
		w.locked[k] = true
	}
	return nil
}

// advisoryKey is the advisory lock key of a name ("op/<opId>", a natural key).
func advisoryKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// naturalKey returns a record's natural key as text ("lesson/<exchange>/2026-10-12/3"),
// or false when the entity has none or a part of it is missing or null.
func naturalKey(def *jiaoliu.Entity, rec jiaoliu.Record) (string, bool) {
	if len(def.NaturalKey) == 0 {
		return "", false
	}
	b := make([]byte, 0, 64)
	b = append(b, def.Name...)
	for _, name := range def.NaturalKey {
		v, ok := rec[name]
		if !ok || v == nil {
			return "", false
		}
		b = append(b, '/')
		// As fmt's %v writes them (the advisory lock keys of older servers are made so).
		switch x := v.(type) {
		case string:
			b = append(b, x...)
		case int64:
			b = strconv.AppendInt(b, x, 10)
		case jiaoliu.Date:
			b = append(b, x.String()...)
		default:
			b = fmt.Appendf(b, "%v", v)
		}
	}
	return string(b), true
}

// lockRows locks the records of def with the given ids and the live ones holding the
// given natural keys (values in def.NaturalKey order), in id order, and returns them if
// read (else none). It finds them first without locking (one index probe per id and
// key; nothing found, as for a batch of new records, ends there), then locks (and
// reads) them by id.
func (w *writer) lockRows(ctx context.Context, def *jiaoliu.Entity, ids []string, keys [][]any, read bool) ([]*current, error) {
	args := []any{pq.Array(ids)}
	q := fmt.Sprintf(`SELECT id::text FROM %s WHERE id = ANY($1::uuid[])`, def.Table)
	if len(keys) > 0 {
		types, err := columnTypes(ctx, w.tx, def.Table)
		if err != nil {
			return nil, err
		}
		params := make([]string, len(def.NaturalKey))
		names := make([]string, len(def.NaturalKey))
		conds := make([]string, len(def.NaturalKey))
		for k, name := range def.NaturalKey {
			f, _ := def.Field(name)
			col := make([]sql.NullString, len(keys))
			for j, vals := range keys {
				col[j] = textValue(vals[k])
			}
			args = append(args, nullTextArray(col))
			params[k] = fmt.Sprintf("$%d::text[]", len(args))
			names[k] = fmt.Sprintf("c%d", k)
			conds[k] = fmt.Sprintf("n.%s = k.c%d::%s", f.Column(), k, types[f.Column()])
		}
		q += fmt.Sprintf(` UNION SELECT n.id::text FROM unnest(%s) AS k(%s) JOIN %s n ON %s AND NOT n.deleted`,
			strings.Join(params, ", "), strings.Join(names, ", "), def.Table, strings.Join(conds, " AND "))
	}
	var found []string
	if err := w.tx.Tx.SelectContext(ctx, &found, q, args...); err != nil {
		return nil, fmt.Errorf("lock %s: %w", def.Name, err)
	}
	if len(found) == 0 {
		return nil, nil
	}
	if !read {
		return nil, w.lockIDs(ctx, def, found)
	}
	rows, err := w.tx.Tx.QueryxContext(ctx, fmt.Sprintf(`SELECT %s FROM %s t LEFT JOIN sync_log l ON l.entity = '%s' AND l.id = t.id
		WHERE t.id = ANY($1::uuid[]) ORDER BY t.id FOR UPDATE OF t`, loadColumns(def), def.Table, def.Name), pq.Array(found))
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", def.Name, err)
	}
	defer rows.Close()
	var out []*current
	for rows.Next() {
		cur, err := scanCurrent(rows, def)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", def.Name, err)
		}
		out = append(out, cur)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lock %s: %w", def.Name, err)
	}
	return out, nil
}

// cache keeps a record as the transaction wrote or locked it, for the bulk path.
func (w *writer) cache(def *jiaoliu.Entity, cur *current) {
	id := cur.rec.String("id")
	w.rows[def.Name+"/"+id] = cur
	if k, ok := naturalKey(def, cur.rec); ok && !cur.deleted {
		w.live[k] = id
	}
}

// touched records that the per-op path wrote (or may have written) a record of def:
// the bulk path leaves it, and the natural keys of rec, to the per-op path from now on.
func (w *writer) touched(def *jiaoliu.Entity, id string, rec jiaoliu.Record) {
	if w.stale == nil {
		return
	}
	if id != "" {
		w.stale[def.Name+"/"+strings.ToLower(id)] = true
	}
	if k, ok := naturalKey(def, rec); ok {
		w.stale[k] = true
	}
}

// loadSeen reads, in one query, the first results of the batch's opIds that the server
// has seen before (idempotency). lockBatch has locked the opIds: a batch carrying the
// same ops on another connection waits for this one to commit, and then, in a new
// statement's snapshot, finds its results, so an op is never applied twice.
func (w *writer) loadSeen(ctx context.Context, ops []jiaoliu.Op) error {
	ids := make([]string, 0, len(ops))
	for _, op := range ops {
		ids = append(ids, op.OpID)
	}
	var rows *sqlx.Rows
	var err error
	if len(ids) == 1 {
		// A device saving one op at a time: by the key, shared.
		rows, err = w.tx.shareable().QueryxContext(ctx, `SELECT op_id, result FROM sync_ops WHERE op_id = $1`, ids[0])
	} else {
		rows, err = w.tx.Tx.QueryxContext(ctx, `SELECT op_id, result FROM sync_ops WHERE op_id = ANY($1)`, pq.Array(ids))
	}
	if err != nil {
		return fmt.Errorf("look up ops: %w", err)
	}
	defer rows.Close()
	for rows.Next() { // into w.seen, which lockBatch made
		var id string
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			return fmt.Errorf("look up ops: %w", err)
		}
		var first jiaoliu.OpResult
		if err := json.Unmarshal(raw, &first); err != nil {
			return fmt.Errorf("decode stored result: %w", err)
		}
		w.seen[id] = first
	}
	return rows.Err()
}

// remember keeps an op's first result, to be stored for idempotent resends when the
// batch commits. Atomic batches (GraphQL) have no resends and store none.
func (w *writer) remember(ctx context.Context, op jiaoliu.Op, res jiaoliu.OpResult) error {
	if w.atomic || op.OpID == "" {
		return nil
	}
	raw, err := encodeResult(res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if w.seen == nil {
		w.seen = map[string]jiaoliu.OpResult{}
	}
	w.seen[op.OpID] = res
	w.remembered = append(w.remembered, remembered{op.OpID, raw})
	return nil
}

// encodeResult encodes a result as json.Marshal does, without reflection for results
// without field errors.
func encodeResult(r jiaoliu.OpResult) ([]byte, error) {
	if r.Fields != nil {
		return json.Marshal(r)
	}
	b := make([]byte, 0, 128)
	b = append(b, `{"opId":`...)
	b = appendJSONString(b, r.OpID)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, r.Status)
	for _, f := range []struct{ name, v string }{{"id", r.ID}, {"version", r.Version}, {"canonicalId", r.CanonicalID}, {"code", r.Code}, {"message", r.Message}} {
		if f.v != "" {
			b = append(b, ',', '"')
			b = append(b, f.name...)
			b = append(b, '"', ':')
			b = appendJSONString(b, f.v)
		}
	}
	if len(r.Lost) > 0 {
		b = append(b, `,"lost":[`...)
		for i, l := range r.Lost {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, l)
		}
		b = append(b, ']')
	}
	if r.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	if r.Restamped {
		b = append(b, `,"restamped":true`...)
	}
	if r.HLC != "" {
		b = append(b, `,"hlc":`...)
		b = appendJSONString(b, r.HLC)
	}
	return append(b, '}'), nil
}

// flushRemembered stores the batch's results. Many go in with COPY, in a savepoint;
// should an opId be there already, the COPY fails on the primary key. For a batch taken
// for new that fails the attempt (errSeenBefore: the batch runs again, its opIds looked
// up first). Otherwise the opId was stored by Store.Reject, which takes no lock, at the
// same moment: the savepoint is rolled back and the results go in with an upsert, as
// few always do (a plain insert when the batch is taken for new, whose conflict is
// errSeenBefore too).
//
// notify, when not empty, is the payload of the batch's pg_notify, sent by the same
// statement as a few results (one round trip fewer for a device saving one op at a
// time); it reports whether it was sent.
func (w *writer) flushRemembered(ctx context.Context, notify string) (notified bool, err error) {
	if len(w.remembered) == 0 {
		return false, nil
	}
	if len(w.remembered) >= 16 {
		// A batch taken for new needs no savepoint: the whole attempt is given up.
		savepoint := !w.assumeNew
		if savepoint {
			if _, err := w.tx.Tx.ExecContext(ctx, `SAVEPOINT remember`); err != nil {
				return false, fmt.Errorf("remember ops: %w", err)
			}
		}
		err := w.copyRemembered(ctx)
		switch {
		case err == nil && savepoint:
			if _, err := w.tx.Tx.ExecContext(ctx, `RELEASE SAVEPOINT remember`); err != nil {
				return false, fmt.Errorf("remember ops: %w", err)
			}
			return false, nil
		case err == nil:
			return false, nil
		case !uniqueViolation(err):
			return false, fmt.Errorf("remember ops: %w", err)
		case !savepoint:
			return false, errSeenBefore
		}
		if _, err := w.tx.Tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT remember`); err != nil {
			return false, fmt.Errorf("remember ops: %w", err)
		}
	}
	ids := make([]string, len(w.remembered))
	results := make([]string, len(w.remembered))
	for i, r := range w.remembered {
		ids[i], results[i] = r.opID, string(r.result)
	}
	q := `INSERT INTO sync_ops (op_id, device_id, user_id, result)
		SELECT id, $3, $4, r::jsonb FROM unnest((SELECT $1::text[]), (SELECT $2::text[])) AS t(id, r)`
	if !w.assumeNew {
		q += ` ON CONFLICT (op_id) DO UPDATE SET result = excluded.result`
	}
	args := []any{textArray(ids), textArray(results), nullID(w.actor.DeviceID), nullID(w.actor.UserID)}
	if notify != "" {
		// A data-modifying WITH runs to its end whether or not the query reads it.
		q = `WITH stored AS (` + q + `) SELECT pg_notify('sync_changes', $5)`
		args = append(args, notify)
	}
	_, err = w.tx.shareable().ExecContext(ctx, q, args...)
	switch {
	case err != nil && w.assumeNew && uniqueViolation(err):
		return false, errSeenBefore
	case err != nil:
		return false, fmt.Errorf("remember ops: %w", err)
	}
	return notify != "", nil
}

// copyRemembered writes the batch's results into sync_ops with COPY.
func (w *writer) copyRemembered(ctx context.Context) error {
	return w.tx.copyIn(ctx, "sync_ops", []string{"op_id", "device_id", "user_id", "result"}, len(w.remembered), func(i int, r *CopyRow) {
		r.Text(w.remembered[i].opID)
		r.ID(w.actor.DeviceID)
		r.ID(w.actor.UserID)
		r.TextBytes(w.remembered[i].result)
	})
}

// current is a record as stored, with its per-field clock.
type current struct {
	rec     jiaoliu.Record
	clock   map[string]string
	deleted bool
	version int64
	scopes  []string
}

// write applies one op; domain errors come back as *jiaoliu.Error or as PostgreSQL
// constraint errors that domainError maps.
func (w *writer) write(ctx context.Context, op jiaoliu.Op) (jiaoliu.OpResult, error) {
	def := jiaoliu.Entities[op.Entity]
	res := jiaoliu.OpResult{ID: op.ID}
	if err := w.mayWriteEntity(def); err != nil {
		return res, err
	}
	// Fields that do not parse are reported together with the entity's rules on the
	// rest, so a user sees every problem of a form at once.
	in, parseErr := jiaoliu.Record{}, error(nil)
	if op.Kind == jiaoliu.OpUpsert {
		in, parseErr = def.Parse(op.Fields)
	}
	w.parseErrs = jiaoliu.FieldErrors{}
	for k, v := range jiaoliu.ErrorFields(parseErr) {
		w.parseErrs[k] = v
	}
	w.touched(def, op.ID, in)
	cur, err := w.load(ctx, def, op.ID)
	if err != nil {
		return res, err
	}
	id := op.ID
	if cur == nil && op.Kind == jiaoliu.OpUpsert && len(def.NaturalKey) > 0 && !op.MustExist {
		if cur, id, err = w.loadByNaturalKey(ctx, def, in); err != nil {
			return res, err
		}
		if cur != nil {
			res.Status, res.CanonicalID, res.ID = jiaoliu.StatusMerged, id, id
			w.touched(def, id, nil)
		}
	}
	switch def.Name {
	case "exchange", "school":
		// The scope of an exchange's children follows the exchange and its schools: the
		// bulk path computes it again, and after an edit of an exchange (which refreshes
		// the scope of its children in the change log) it stops for the rest of the batch.
		w.childScopes = nil
		if cur != nil && def.Name == "exchange" {
			w.bulkOK = false
		}
	}
	if cur != nil {
		if err := w.tokens(ctx); err != nil {
			return res, err
		}
	}
	if cur != nil && !w.canRead(cur.scopes) {
		cur = nil // a record outside the actor's scope is, to them, not there
		if id != op.ID {
			return res, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "a %s with the same %s exists outside your scope", def.Name, strings.Join(def.NaturalKey, ", "))
		}
		return res, jiaoliu.Errorf(jiaoliu.ENOTFOUND, "%s %s not found", def.Name, op.ID)
	}
	if cur == nil {
		if op.Kind == jiaoliu.OpDelete || op.MustExist {
			return res, jiaoliu.Errorf(jiaoliu.ENOTFOUND, "%s %s not found", def.Name, op.ID)
		}
		return w.create(ctx, def, op, in)
	}
	if res.Status == "" {
		res.Status = jiaoliu.StatusApplied
	}
	return w.update(ctx, def, op, id, cur, in, res)
}

func (w *writer) create(ctx context.Context, def *jiaoliu.Entity, op jiaoliu.Op, in jiaoliu.Record) (jiaoliu.OpResult, error) {
	w.fillFromActor(def, in)
	fe := w.parseErrs
	def.CheckRequired(in, fe)
	clock := make(map[string]string, len(in))
	for name := range in {
		clock[name] = op.HLC
	}
	rec := in.Clone()
	def.Defaults(rec)
	if err := validate(def, nil, rec, fe); err != nil {
		return jiaoliu.OpResult{}, err
	}
	cols := []string{"id", "field_hlc", "version"}
	vals := []string{"$1", "$2", "nextval('change_seq')"}
	args := []any{op.ID, clockJSON(clock)}
	for _, f := range def.Fields {
		args = append(args, rec[f.Name])
		cols = append(cols, f.Column())
		vals = append(vals, fmt.Sprintf("$%d", len(args)))
	}
	if bulkEntities[def.Name] {
		// An exchange's child carries its district_scopes from the start, as the bulk path
		// writes them (the change log's trigger, migration 00018, then has nothing to
		// rewrite): the district tokens of exchange_child_tokens, its scope. A field's
		// value is the argument after the id and the clock.
		param := func(name string) string {
			for i, f := range def.Fields {
				if f.Name == name {
					return fmt.Sprintf("$%d", 3+i)
				}
			}
			return "NULL"
		}
		// The statement returns the tokens too, for the change log (scope_tokens would
		// read the record back and compute them again: 70–100 µs of PostgreSQL).
		cols = append(cols, "district_scopes")
		vals = append(vals, "district_tokens((SELECT t FROM toks))")
		q := fmt.Sprintf(`WITH toks AS MATERIALIZED (SELECT exchange_child_tokens(%s::uuid, %s::uuid) AS t)
			INSERT INTO %s (%s) VALUES (%s) RETURNING version, (SELECT t FROM toks)`,
			param("exchangeId"), param("schoolId"), def.Table, strings.Join(cols, ", "), strings.Join(vals, ", "))
		var version int64
		var scopes []string
		if err := w.tx.shareable().QueryRowxContext(ctx, q, args...).Scan(&version, pq.Array(&scopes)); err != nil {
			return jiaoliu.OpResult{}, constraintError(def, err)
		}
		if scopes == nil {
			scopes = []string{}
		}
		return w.created(ctx, def, op, in, rec, version, scopes)
	}
	q := fmt.Sprintf(`INSERT INTO %s (%s) VALUES (%s) RETURNING version`, def.Table, strings.Join(cols, ", "), strings.Join(vals, ", "))
	var version int64
	if err := w.tx.shareable().GetContext(ctx, &version, q, args...); err != nil {
		return jiaoliu.OpResult{}, constraintError(def, err)
	}
	return w.created(ctx, def, op, in, rec, version, nil)
}

// created logs and audits a record create just wrote (rec, with version; scopes its
// scope tokens if the insert computed them).
func (w *writer) created(ctx context.Context, def *jiaoliu.Entity, op jiaoliu.Op, in, rec jiaoliu.Record, version int64, scopes []string) (jiaoliu.OpResult, error) {
	changes := map[string]any{}
	for name, v := range in {
		changes[name] = map[string]any{"new": v}
	}
	after, err := w.log(ctx, def, op.ID, version, false, scopes, &auditEntry{op: op, action: "CREATE", changes: changes})
	if err != nil {
		return jiaoliu.OpResult{}, err
	}
	if err := w.mayWrite(def, nil, after); err != nil {
		return jiaoliu.OpResult{}, err
	}
	rec["id"] = op.ID
	if err := w.refreshRelated(ctx, def, rec, nil); err != nil {
		return jiaoliu.OpResult{}, err
	}
	return jiaoliu.OpResult{Status: jiaoliu.StatusApplied, ID: op.ID, Version: fmt.Sprint(version)}, nil
}

func (w *writer) update(ctx context.Context, def *jiaoliu.Entity, op jiaoliu.Op, id string, cur *current, in jiaoliu.Record, res jiaoliu.OpResult) (jiaoliu.OpResult, error) {
	before := cur.clone()
	deleted := cur.deleted
	var set jiaoliu.Record
	var lost []string
	if op.Kind == jiaoliu.OpDelete {
		deleted = true
		set = jiaoliu.Record{}
	} else {
		set, lost = jiaoliu.Merge(cur.rec, cur.clock, in, op.HLC)
	}
	rec := cur.rec.Clone()
	for k, v := range set {
		rec[k] = v
	}
	w.touched(def, "", rec)
	if err := w.mayWrite(def, before.scopes, nil); err != nil {
		return res, err
	}
	if len(set) > 0 || deleted != before.deleted || len(w.parseErrs) > 0 {
		if err := validate(def, before.rec, rec, w.parseErrs); err != nil {
			return res, err
		}
	}
	for _, name := range lost {
		if err := w.conflict(ctx, def, op, id, name, before, in[name]); err != nil {
			return res, err
		}
	}
	res.Lost = lost
	if len(set) == 0 && deleted == before.deleted {
		// Nothing won: the record is unchanged and keeps its version.
		res.Version = fmt.Sprint(before.version)
		return res, nil
	}
	assign := []string{"version = nextval('change_seq')", "updated_at = now()", "field_hlc = $2", "deleted = $3"}
	args := []any{id, clockJSON(cur.clock), deleted}
	changes := map[string]any{}
	for _, f := range def.Fields {
		v, ok := set[f.Name]
		if !ok {
			continue
		}
		args = append(args, v)
		assign = append(assign, fmt.Sprintf("%s = $%d", f.Column(), len(args)))
		if !jiaoliu.FieldValueEqual(before.rec[f.Name], v) {
			changes[f.Name] = map[string]any{"old": before.rec[f.Name], "new": v}
		}
	}
	if deleted != before.deleted {
		changes["deleted"] = map[string]any{"old": before.deleted, "new": deleted}
	}
	q := fmt.Sprintf(`UPDATE %s SET %s WHERE id = $1 RETURNING version`, def.Table, strings.Join(assign, ", "))
	var version int64
	if err := w.tx.shareable().GetContext(ctx, &version, q, args...); err != nil {
		return res, constraintError(def, err)
	}
	action := "UPDATE"
	switch {
	case op.Kind == jiaoliu.OpDelete:
		action = "DELETE"
	case res.Status == jiaoliu.StatusMerged:
		action = "MERGE"
	}
	var entry *auditEntry
	if len(changes) > 0 {
		entry = &auditEntry{op: op, action: action, changes: changes}
	}
	after, err := w.log(ctx, def, id, version, deleted, nil, entry)
	if err != nil {
		return res, err
	}
	if err := w.mayWrite(def, nil, after); err != nil {
		return res, err
	}
	if err := w.refreshRelated(ctx, def, rec, before.rec); err != nil {
		return res, err
	}
	res.Version = fmt.Sprint(version)
	return res, nil
}

func (c *current) clone() *current {
	cl := make(map[string]string, len(c.clock))
	for k, v := range c.clock {
		cl[k] = v
	}
	return &current{rec: c.rec.Clone(), clock: cl, deleted: c.deleted, version: c.version, scopes: c.scopes}
}

// fillFromActor fills the fields a device need not send: who observed, who recorded,
// which device recorded a lesson.
func (w *writer) fillFromActor(def *jiaoliu.Entity, in jiaoliu.Record) {
	set := func(name, v string) {
		if _, ok := in[name]; !ok && v != "" {
			in[name] = v
		}
	}
	switch def.Name {
	case "observation":
		set("observerId", w.actor.TeacherID)
	case "mentoringActivity":
		set("recordedById", w.actor.TeacherID)
	case "lesson":
		set("deviceId", w.actor.DeviceID)
	}
}

// validate runs the entity's rules on a record, adding to the messages already in fe.
func validate(def *jiaoliu.Entity, old, rec jiaoliu.Record, fe jiaoliu.FieldErrors) error {
	if def.Validate != nil {
		if err := def.Validate(old, rec, fe); err != nil {
			return err
		}
	}
	return fe.Err()
}

// load reads a record with its clock and scope, locking it for the transaction.
func (w *writer) load(ctx context.Context, def *jiaoliu.Entity, id string) (*current, error) {
	return loadOne(ctx, w.tx, def, "t.id = $1", id)
}

// loadByNaturalKey finds the live record with the same natural key as in. It takes a
// transaction-scoped advisory lock on the key first (unless lockBatch took it), so two
// concurrent creates of the same key serialize and the second merges instead of
// failing.
func (w *writer) loadByNaturalKey(ctx context.Context, def *jiaoliu.Entity, in jiaoliu.Record) (*current, string, error) {
	key, ok := naturalKey(def, in)
	if !ok {
		return nil, "", nil // an incomplete key cannot match; create will ask for it
	}
	conds := make([]string, len(def.NaturalKey))
	args := make([]any, len(def.NaturalKey))
	for i, name := range def.NaturalKey {
		f, _ := def.Field(name)
		conds[i] = fmt.Sprintf("t.%s = $%d", f.Column(), i+1)
		args[i] = in[name]
	}
	if err := w.lockKeys(ctx, []int64{advisoryKey(key)}); err != nil {
		return nil, "", fmt.Errorf("lock natural key: %w", err)
	}
	cur, err := loadOne(ctx, w.tx, def, strings.Join(conds, " AND ")+" AND NOT t.deleted", args...)
	if err != nil || cur == nil {
		return nil, "", err
	}
	return cur, cur.rec.String("id"), nil
}

// loadColumns lists what loadOne and lockRows read of a record of def (t) and its
// change-log row (l), in the order scanCurrent scans them.
func loadColumns(def *jiaoliu.Entity) string {
	cols := make([]string, 0, len(def.Fields)+5)
	cols = append(cols, "t.id::text", "t.field_hlc", "t.deleted", "t.version", "coalesce(l.scopes, '{}')")
	for _, f := range def.Fields {
		cols = append(cols, "t."+f.Column())
	}
	return strings.Join(cols, ", ")
}

// scanCurrent scans a row of loadColumns.
func scanCurrent(row interface{ Scan(...any) error }, def *jiaoliu.Entity) (*current, error) {
	var (
		id      string
		clock   []byte
		cur     current
		holders = scanHolders(def)
	)
	dest := append([]any{&id, &clock, &cur.deleted, &cur.version, pq.Array(&cur.scopes)}, holders...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	cur.rec = recordFrom(def, holders)
	cur.rec["id"] = id
	var err error
	if cur.clock, err = decodeClock(clock); err != nil {
		return nil, fmt.Errorf("load %s: %w", def.Name, err)
	}
	return &cur, nil
}

// loadOne reads and locks the record of def matching where, a unique key (the id, or a
// natural key among live records), as a shared statement (see stmtTx).
func loadOne(ctx context.Context, tx *stmtTx, def *jiaoliu.Entity, where string, args ...any) (*current, error) {
	q := fmt.Sprintf(`SELECT %s FROM %s t LEFT JOIN sync_log l ON l.entity = '%s' AND l.id = t.id WHERE %s FOR UPDATE OF t`,
		loadColumns(def), def.Table, def.Name, where)
	cur, err := scanCurrent(tx.shareable().QueryRowxContext(ctx, q, args...), def)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("load %s: %w", def.Name, err)
	}
	return cur, nil
}

// auditEntry is the audit row of an op that log writes with the change-log row.
type auditEntry struct {
	op      jiaoliu.Op
	action  string
	changes map[string]any
}

// log moves the record to the end of the change log with its scope tokens (scopes, or
// if nil recomputed: scope_tokens), and returns them. With entry, the same statement
// writes the op's audit row with those tokens: one round trip for both. (A check of the
// tokens that fails after it rejects the op, and its savepoint, or an atomic batch's
// transaction, takes the audit row back with the rest.)
func (w *writer) log(ctx context.Context, def *jiaoliu.Entity, id string, version int64, deleted bool, scopes []string, entry *auditEntry) ([]string, error) {
	args := []any{def.Name, id, version, deleted}
	scopesExpr := "scope_tokens($1, $2)"
	if scopes != nil {
		args = append(args, pq.Array(scopes))
		scopesExpr = fmt.Sprintf("$%d::text[]", len(args))
	}
	q := `INSERT INTO sync_log (entity, id, seq, deleted, scopes)
		VALUES ($1, $2, $3, $4, ` + scopesExpr + `)
		ON CONFLICT (entity, id) DO UPDATE SET seq = excluded.seq, txid = pg_current_xact_id(), deleted = excluded.deleted, scopes = excluded.scopes
		RETURNING scopes`
	if entry != nil {
		raw, err := json.Marshal(entry.changes)
		if err != nil {
			return nil, fmt.Errorf("encode audit: %w", err)
		}
		n := len(args)
		args = append(args, nullID(w.actor.UserID), w.actor.Username, nullID(w.actor.DeviceID), w.actor.SessionID, entry.op.OpID, entry.action, raw)
		// A data-modifying WITH runs to its end whether or not the query reads it.
		q = fmt.Sprintf(`WITH logged AS (%s), audited AS (
			INSERT INTO audit_log (user_id, username, device_id, session_id, entity, record_id, op_id, action, changes, scopes)
			SELECT $%d::uuid, $%d::text, $%d::uuid, $%d::text, $1, $2, $%d::text, $%d::text, $%d::json, scopes FROM logged)
			SELECT scopes FROM logged`, q, n+1, n+2, n+3, n+4, n+5, n+6, n+7)
	}
	var out []string
	if err := w.tx.shareable().GetContext(ctx, pq.Array(&out), q, args...); err != nil {
		return nil, fmt.Errorf("change log: %w", err)
	}
	w.markChanged(out)
	return out, nil
}

func (w *writer) markChanged(scopes []string) {
	if w.changed == nil {
		w.changed = map[string]bool{}
	}
	for _, t := range scopes {
		if !strings.HasPrefix(t, "w:") {
			w.changed[t] = true
		}
	}
}

// refreshRelated recomputes the scope of records whose readers depend on this one: a
// teacher's record is read by the schools of their exchanges and by their mentoring
// partners, and the children of an exchange or pair follow its schools. A record whose
// scope changed moves to the end of the log so that its new readers pull it.
func (w *writer) refreshRelated(ctx context.Context, def *jiaoliu.Entity, rec, old jiaoliu.Record) error {
	var q string
	var args []any
	switch def.Name {
	case "exchange":
		q = `(entity = 'teacher' AND id = $1) OR (entity IN ('lesson', 'researchActivity', 'attendance', 'semesterReport', 'evaluation', 'observation') AND id IN (
				SELECT id FROM lessons WHERE exchange_id = $2 UNION ALL SELECT id FROM research_activities WHERE exchange_id = $2
				UNION ALL SELECT id FROM attendance WHERE exchange_id = $2 UNION ALL SELECT id FROM semester_reports WHERE exchange_id = $2
				UNION ALL SELECT id FROM evaluations WHERE exchange_id = $2 UNION ALL SELECT id FROM observations WHERE exchange_id = $2))`
		args = []any{rec.String("teacherId"), rec.String("id")}
		if old != nil && old.String("sendingSchoolId") == rec.String("sendingSchoolId") &&
			old.String("receivingSchoolId") == rec.String("receivingSchoolId") && old.String("status") == rec.String("status") {
			return nil
		}
	case "mentoringPair":
		q = `(entity = 'teacher' AND id IN ($1, $2)) OR (entity = 'mentoringActivity' AND id IN (SELECT id FROM mentoring_activities WHERE pair_id = $3))`
		args = []any{rec.String("mentorId"), rec.String("menteeId"), rec.String("id")}
	case "teacher":
		if old == nil || old.String("schoolId") == rec.String("schoolId") {
			return nil
		}
		q = `(entity IN ('deferral', 'schoolStint') AND id IN (SELECT id FROM deferrals WHERE teacher_id = $1 UNION ALL SELECT id FROM school_stints WHERE teacher_id = $1))
			OR (entity = 'mentoringPair' AND id IN (SELECT id FROM mentoring_pairs WHERE mentor_id = $1 OR mentee_id = $1))`
		args = []any{rec.String("id")}
	default:
		return nil
	}
	if err := w.lockRelated(ctx, q, args); err != nil {
		return err
	}
	rows, err := w.tx.QueryxContext(ctx, `WITH fresh AS (
			SELECT entity, id, scope_tokens(entity, id) AS scopes FROM sync_log WHERE `+q+`)
		UPDATE sync_log l SET scopes = fresh.scopes, seq = nextval('change_seq'), txid = pg_current_xact_id()
		FROM fresh WHERE l.entity = fresh.entity AND l.id = fresh.id AND l.scopes <> fresh.scopes
		RETURNING l.scopes`, args...)
	if err != nil {
		return fmt.Errorf("refresh related scopes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var scopes []string
		if err := rows.Scan(pq.Array(&scopes)); err != nil {
			return fmt.Errorf("refresh related scopes: %w", err)
		}
		w.markChanged(scopes)
	}
	return rows.Err()
}

// lockRelated locks the records whose change-log rows match q (refreshRelated's) before
// their change-log rows are rewritten: children before parents and in id order, as
// lockBatch locks them. The change log's trigger (migration 00018) rewrites a record's
// district_scopes after its change-log row, and a batch editing the record holds it
// while it waits for that change-log row: taken the other way round, the two
// deadlocked (2–5 batches run again in TestExchangeMovesWhileItsLessonsAreEdited).
func (w *writer) lockRelated(ctx context.Context, q string, args []any) error {
	var related []struct {
		Entity string         `db:"entity"`
		IDs    pq.StringArray `db:"ids"`
	}
	if err := w.tx.SelectContext(ctx, &related, `SELECT entity, array_agg(id::text) AS ids FROM sync_log WHERE `+q+` GROUP BY entity`, args...); err != nil {
		return fmt.Errorf("refresh related scopes: lock: %w", err)
	}
	ids := make(map[string][]string, len(related))
	for _, r := range related {
		ids[r.Entity] = r.IDs
	}
	for _, def := range lockOrder {
		if len(ids[def.Name]) > 0 {
			if err := w.lockIDs(ctx, def, ids[def.Name]); err != nil {
				return fmt.Errorf("refresh related scopes: %w", err)
			}
		}
	}
	return nil
}

// lockIDs locks the records ids of def, in id order.
func (w *writer) lockIDs(ctx context.Context, def *jiaoliu.Entity, ids []string) error {
	if _, err := w.tx.Tx.ExecContext(ctx, fmt.Sprintf(`SELECT FROM %s WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`, def.Table), pq.Array(ids)); err != nil {
		return fmt.Errorf("lock %s: %w", def.Name, err)
	}
	return nil
}

func (w *writer) conflict(ctx context.Context, def *jiaoliu.Entity, op jiaoliu.Op, id, field string, before *current, lostValue any) error {
	kept, _ := json.Marshal(before.rec[field])
	lost, _ := json.Marshal(lostValue)
	_, err := w.tx.ExecContext(ctx, `INSERT INTO sync_conflicts (entity, record_id, field, kept_value, kept_hlc, lost_value, lost_hlc, lost_op_id, lost_device_id, lost_user_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		def.Name, id, field, kept, before.clock[field], lost, op.HLC, op.OpID, nullID(w.actor.DeviceID), nullID(w.actor.UserID))
	if err != nil {
		return fmt.Errorf("record conflict: %w", err)
	}
	return nil
}

// mayWriteEntity checks the actor's role against the kind of record.
func (w *writer) mayWriteEntity(def *jiaoliu.Entity) error {
	a := w.actor
	switch {
	case a.System:
		return nil
	case a.Role == jiaoliu.RoleDistrictAdmin:
		return nil
	case a.Role == jiaoliu.RoleSchoolAdmin && !adminOnlyEntities[def.Name]:
		return nil
	case a.Role == jiaoliu.RoleTeacher && def.DeviceWritable:
		return nil
	}
	return jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "your role cannot change a %s", def.Name)
}

// mayWrite checks that a record is inside the actor's write scope, before the change
// (scopes before) or after it (scopes after): nobody moves a record into or out of
// someone else's scope.
func (w *writer) mayWrite(def *jiaoliu.Entity, before, after []string) error {
	a := w.actor
	if a.System {
		return nil
	}
	var token string
	switch a.Role {
	case jiaoliu.RoleDistrictAdmin:
		token = "d:" + a.DistrictID
	case jiaoliu.RoleSchoolAdmin:
		token = "s:" + a.SchoolID
	case jiaoliu.RoleTeacher:
		token = "w:" + a.TeacherID
	}
	for _, scopes := range [][]string{before, after} {
		if scopes != nil && !slices.Contains(scopes, token) {
			return jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "this %s is outside what you may change", def.Name)
		}
	}
	return nil
}

func (w *writer) canRead(scopes []string) bool {
	if w.actor.System {
		return true
	}
	for _, t := range w.readTokens {
		if slices.Contains(scopes, t) {
			return true
		}
	}
	return false
}

// domainError returns err as a domain error if it is one (or a constraint violation
// mapped to one), or nil for infrastructure errors.
func domainError(err error) error {
	var de *jiaoliu.Error
	if errors.As(err, &de) {
		return de
	}
	return nil
}

// constraintError maps PostgreSQL constraint violations to domain errors: a foreign key
// to MISSING_REFERENCE on the field, a check to INVALID, a finalized evaluation to LOCKED.
func constraintError(def *jiaoliu.Entity, err error) error {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return fmt.Errorf("write %s: %w", def.Name, err)
	}
	field := fieldOfConstraint(def, pe.Constraint)
	switch pe.Code {
	case "23503":
		return &jiaoliu.Error{Code: jiaoliu.EMISSINGREF, Message: fmt.Sprintf("%s refers to a record the server does not know", field),
			Fields: map[string]string{field: "refers to an unknown record"}}
	case "23514", "23502", "22007", "22008":
		return &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid input", Fields: map[string]string{field: "violates rule " + pe.Constraint}}
	case "23505":
		return &jiaoliu.Error{Code: jiaoliu.ECONFLICT, Message: fmt.Sprintf("a %s with the same key already exists", def.Name)}
	case "P0001":
		if pe.Hint == "locked" {
			return jiaoliu.Errorf(jiaoliu.ELOCKED, "the %s is finalized and cannot change", def.Name)
		}
	}
	return fmt.Errorf("write %s: %w", def.Name, err)
}

func fieldOfConstraint(def *jiaoliu.Entity, constraint string) string {
	for _, f := range def.Fields {
		if strings.Contains(constraint, "_"+f.Column()+"_") || strings.HasSuffix(constraint, "_"+f.Column()) {
			return f.Name
		}
	}
	return "record"
}

func nullID(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}
