package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// overlapWorld is the state shared by the writers of TestConcurrentBatchesDoNotDeadlock.
type overlapWorld struct {
	lessons, attendance []string // ids of the records every writer edits
	wall                atomic.Int64
	mu                  sync.Mutex
	applied             []appliedOp // every op with its result
}

type appliedOp struct {
	op  jiaoliu.Op
	res jiaoliu.OpResult
}

// nextHLC returns an HLC above every other of the test: the last writer wins.
func (o *overlapWorld) nextHLC(node string) string {
	return hlcAt(1767230000000+o.wall.Add(1), node)
}

// batch returns a device batch of a writer: edits of a random half of the shared
// records in a random order, a few deletes, and creates of lessons whose natural keys
// the other writers create too (all but the first merge).
func (o *overlapWorld) batch(rng *rand.Rand, node string, round int) []jiaoliu.Op {
	type target struct{ entity, id string }
	var targets []target
	for _, id := range o.lessons {
		targets = append(targets, target{"lesson", id})
	}
	for _, id := range o.attendance {
		targets = append(targets, target{"attendance", id})
	}
	rng.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	targets = targets[:len(targets)/2]
	var ops []jiaoliu.Op
	for i, t := range targets {
		text := fmt.Sprintf("%s-%d-%d", node, round, i)
		op := jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: t.entity, ID: t.id}
		switch {
		case rng.IntN(40) == 0:
			op.Kind = jiaoliu.OpDelete
		case t.entity == "lesson" && rng.IntN(2) == 0:
			op.Fields = map[string]any{"topic": text, "minutes": float64(rng.IntN(90))}
		case t.entity == "lesson":
			op.Fields = map[string]any{"notes": text}
		default:
			op.Fields = map[string]any{"note": text, "status": []string{"PRESENT", "LEAVE", "SICK"}[rng.IntN(3)]}
		}
		ops = append(ops, op)
		if rng.IntN(6) == 0 {
			// A lesson on one of three natural keys every writer creates.
			ops = append(ops, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: newID(),
				Fields: map[string]any{"exchangeId": bw.exchange, "date": "2026-11-20", "period": float64(1 + rng.IntN(3)),
					"subject": "数学", "kind": "REGULAR", "topic": text}})
		}
	}
	for i := range ops {
		ops[i].HLC = o.nextHLC(node)
	}
	return ops
}

// runOverlap runs writers writers, each applying rounds batches of overlapping edits,
// and checks that none failed and that the records hold what last-writer-wins says.
// With fastDeadlocks, deadlock_timeout is 100 ms and a batch that fails for deadlocks
// after all its attempts is counted (it wrote nothing) rather than an error.
func runOverlap(t *testing.T, writers, rounds int, fastDeadlocks bool) (failed int) {
	s, db, ctx := setupBulkWorld(t)
	if fastDeadlocks {
		// deadlock_timeout is how long a blocked transaction waits before it looks for
		// a cycle; the pool's connections are new ones after this.
		if _, err := db.Exec(`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET deadlock_timeout = %L', current_database(), '100ms'); END $$`); err != nil {
			t.Fatal(err)
		}
		db.SetMaxIdleConns(0)
		db.SetMaxIdleConns(2)
	}
	o := &overlapWorld{}
	var setup []jiaoliu.Op
	for i := range 16 {
		id := fixedID(3000 + i)
		o.lessons = append(o.lessons, id)
		setup = append(setup, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: id, HLC: o.nextHLC("setup"),
			Fields: map[string]any{"exchangeId": bw.exchange, "date": fmt.Sprintf("2026-11-%02d", 2+i/4), "period": float64(1 + i%4),
				"subject": "数学", "kind": "REGULAR", "topic": "起点"}})
	}
	for i := range 6 {
		id := fixedID(3100 + i)
		o.attendance = append(o.attendance, id)
		setup = append(setup, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: "attendance", ID: id, HLC: o.nextHLC("setup"),
			Fields: map[string]any{"exchangeId": bw.exchange, "date": fmt.Sprintf("2026-11-%02d", 2+i), "status": "PRESENT"}})
	}
	if _, err := s.Apply(ctx, jiaoliu.Batch{Ops: setup}); err != nil {
		t.Fatal(err)
	}
	record := func(ops []jiaoliu.Op, res []jiaoliu.OpResult) {
		o.mu.Lock()
		defer o.mu.Unlock()
		for i := range ops {
			o.applied = append(o.applied, appliedOp{ops[i], res[i]})
		}
	}
	record(setup, make([]jiaoliu.OpResult, len(setup))) // created as they are

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := make(chan struct{}) // the writers begin together, on a loaded machine too
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			node := fmt.Sprintf("dev%d", g)
			for r := range rounds {
				ops := o.batch(rng, node, r)
				res, err := s.Apply(ctx, jiaoliu.Batch{Ops: ops})
				if err != nil {
					errs <- fmt.Errorf("writer %d round %d: %w", g, r, err)
					return
				}
				for i, x := range res {
					if x.Status == jiaoliu.StatusRejected {
						errs <- fmt.Errorf("writer %d round %d: op %d rejected: %s %s", g, r, i, x.Code, x.Message)
						return
					}
				}
				record(ops, res)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		var pe *pq.Error
		switch {
		case errors.As(err, &pe) && pe.Code == "40P01" && fastDeadlocks:
			failed++
		case errors.As(err, &pe) && pe.Code == "40P01":
			t.Errorf("deadlock reached the caller: %v", err)
		default:
			t.Error(err)
		}
	}
	if !t.Failed() {
		checkLastWriterWins(t, db, o.applied)
	}
	return failed
}

// checkLastWriterWins compares every field of every record the ops wrote with the
// value of the op with the highest HLC that set it (re-stamping plays no part: the
// HLCs are in the past), tombstones with the deletes, and looks for a natural key held
// by two live lessons or an op audited twice.
func checkLastWriterWins(t *testing.T, db *sqlx.DB, applied []appliedOp) {
	t.Helper()
	type field struct {
		hlc   string
		value any
	}
	want := map[string]map[string]field{} // lesson or attendance id → field → last write
	deleted := map[string]bool{}
	for _, a := range applied {
		id := a.op.ID
		if a.res.CanonicalID != "" {
			id = a.res.CanonicalID
		}
		if want[id] == nil {
			want[id] = map[string]field{}
		}
		if a.op.Kind == jiaoliu.OpDelete {
			deleted[id] = true
			continue
		}
		for name, v := range a.op.Fields {
			if f, ok := want[id][name]; !ok || a.op.HLC > f.hlc {
				want[id][name] = field{a.op.HLC, v}
			}
		}
	}
	type row struct {
		ID      string `db:"id"`
		Deleted bool   `db:"deleted"`
		Clock   string `db:"field_hlc"`
		Topic   string `db:"topic"`
		Notes   string `db:"notes"`
		Minutes int64  `db:"minutes"`
		Period  int64  `db:"period"`
	}
	var rows []row
	if err := db.Select(&rows, `SELECT id, deleted, field_hlc::text, topic, notes, minutes, period FROM lessons WHERE exchange_id = $1
		UNION ALL SELECT id, deleted, field_hlc::text, status, note, 0, 0 FROM attendance WHERE exchange_id = $1`, bw.exchange); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, r := range rows {
		w, ok := want[r.ID]
		if !ok {
			continue // a record of the fixture's own batches
		}
		checked++
		if r.Deleted != deleted[r.ID] {
			t.Errorf("%s: deleted=%v, want %v", r.ID, r.Deleted, deleted[r.ID])
		}
		got := map[string]any{"topic": r.Topic, "notes": r.Notes, "minutes": float64(r.Minutes), "period": float64(r.Period),
			"status": r.Topic, "note": r.Notes}
		for name, f := range w {
			if _, compared := got[name]; !compared {
				continue
			}
			if g := got[name]; fmt.Sprint(g) != fmt.Sprint(f.value) {
				t.Errorf("%s.%s=%v, want %v (hlc %s)", r.ID, name, g, f.value, f.hlc)
			}
			if clock, err := postgres.DecodeFieldClock(r.Clock); err != nil || clock[name] != f.hlc {
				t.Errorf("%s: clock of %s in %s, want %s", r.ID, name, r.Clock, f.hlc)
			}
		}
	}
	if checked != len(want) {
		t.Errorf("checked %d records, want %d", checked, len(want))
	}
	var dup []string
	if err := db.Select(&dup, `SELECT date || '/' || period FROM lessons WHERE exchange_id = $1 AND NOT deleted
		GROUP BY date, period HAVING count(*) > 1`, bw.exchange); err != nil {
		t.Fatal(err)
	}
	if len(dup) > 0 {
		t.Errorf("natural keys held by two live lessons: %v", dup)
	}
	var twice []string
	if err := db.Select(&twice, `SELECT op_id FROM audit_log WHERE op_id IS NOT NULL GROUP BY op_id HAVING count(*) > 1`); err != nil {
		t.Fatal(err)
	}
	if len(twice) > 0 {
		t.Errorf("ops audited twice: %v", twice)
	}
	var stale []string
	if err := db.Select(&stale, `SELECT l.entity || '/' || l.id FROM sync_log l JOIN lessons t ON l.entity = 'lesson' AND l.id = t.id
		WHERE l.seq <> t.version OR l.deleted <> t.deleted`); err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Errorf("change log rows behind their records: %v", stale)
	}
	t.Logf("%d ops, %d records checked, %d deleted", len(applied), checked, len(deleted))
}

// TestConcurrentBatchesDoNotDeadlock runs device batches that edit the same records in
// different orders, delete some and create lessons on shared natural keys, from eight
// writers at once, through the bulk path and through the per-op path. The batches
// take their locks in one order before applying anything, so none waits for another
// that waits for it: no deadlock is detected (Apply would run the batch again and
// count it), and the records end as last-writer-wins says.
func TestConcurrentBatchesDoNotDeadlock(t *testing.T) {
	for _, bulk := range []bool{true, false} {
		t.Run(fmt.Sprintf("bulk=%v", bulk), func(t *testing.T) {
			defer postgres.SetBulk(bulk)()
			before := postgres.ApplyRetries()
			runOverlap(t, 8, 6, false)
			if n := postgres.ApplyRetries() - before; n > 0 {
				t.Errorf("%d batches were aborted (deadlock or serialization failure) and run again, want none", n)
			}
		})
	}
}

// TestWithoutOrderedLocksBatchesDeadlock shows what the ordered locks prevent, so that
// TestConcurrentBatchesDoNotDeadlock proves something: with every op locking its
// record when its turn comes (as before lockBatch), the same batches deadlock.
// Apply runs the aborted ones again; under this much contention some fail even their
// last attempt (and write nothing), and the records still end as last-writer-wins says.
func TestWithoutOrderedLocksBatchesDeadlock(t *testing.T) {
	if testing.Short() {
		t.Skip("each deadlock takes deadlock_timeout (100 ms here)")
	}
	defer postgres.SetLockFirst(false)()
	defer postgres.SetBulk(false)()
	// Whether two batches meet in opposite orders depends on the scheduler: under the
	// race detector on a loaded machine one run of the writers can pass without, so
	// the workload gets three runs to show a deadlock.
	const runs = 3
	for run := 1; run <= runs; run++ {
		before := postgres.ApplyRetries()
		failed := runOverlap(t, 8, 3, true)
		n := postgres.ApplyRetries() - before
		t.Logf("run %d without ordered locks: %d attempts aborted by deadlocks and run again, %d batches failed after %d attempts", run, n, failed, 5)
		if n > 0 || t.Failed() {
			return
		}
	}
	t.Errorf("no deadlock without ordered locks in %d runs: the workload does not test them", runs)
}

// TestApplyRetriesADeadlock makes a real deadlock between a batch and another
// transaction: the batch locks lesson A and waits for lesson B, which the other holds
// and which then asks for A. PostgreSQL aborts the batch (it waited first, so its
// deadlock check runs first); Apply runs it again once the other committed, and the
// caller sees both ops applied.
func TestApplyRetriesADeadlock(t *testing.T) {
	s, db, ctx := setupBulkWorld(t)
	a, b := fixedID(4001), fixedID(4002) // a < b: the batch locks a first
	var ops []jiaoliu.Op
	for i, id := range []string{a, b} {
		ops = append(ops, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: id, HLC: hlcAt(1767230000000+int64(i), "setup"),
			Fields: map[string]any{"exchangeId": bw.exchange, "date": "2026-11-23", "period": float64(1 + i), "subject": "数学", "kind": "REGULAR"}})
	}
	if _, err := s.Apply(ctx, jiaoliu.Batch{Ops: ops}); err != nil {
		t.Fatal(err)
	}
	other, err := db.BeginTxx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	// The other transaction must not be the one PostgreSQL picks.
	if _, err := other.Exec(`SET LOCAL deadlock_timeout = '10s'`); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(`SELECT 1 FROM lessons WHERE id = $1 FOR UPDATE`, b); err != nil {
		t.Fatal(err)
	}
	before := postgres.ApplyRetries()
	done := make(chan error, 1)
	var res []jiaoliu.OpResult
	go func() {
		var err error
		res, err = s.Apply(ctx, jiaoliu.Batch{Ops: []jiaoliu.Op{
			{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: b, HLC: hlcAt(1767230001000, "dev"), Fields: map[string]any{"topic": "乙"}},
			{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: a, HLC: hlcAt(1767230001001, "dev"), Fields: map[string]any{"topic": "甲"}},
		}})
		done <- err
	}()
	// Wait until the batch waits for b, then close the cycle.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := db.Get(&waiting, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch never waited for the lesson the other transaction holds")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := other.Exec(`SELECT 1 FROM lessons WHERE id = $1 FOR UPDATE`, a); err != nil {
		t.Fatalf("the other transaction was aborted instead of the batch: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // the batch runs again and waits for the other
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("apply: %v", err)
	}
	if got := postgres.ApplyRetries() - before; got != 1 {
		t.Errorf("retries=%d, want 1", got)
	}
	for i, r := range res {
		if r.Status != jiaoliu.StatusApplied {
			t.Errorf("op %d: %+v", i, r)
		}
	}
	var topics []string
	if err := db.Select(&topics, `SELECT topic FROM lessons WHERE id IN ($1, $2) ORDER BY id`, a, b); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(topics, ","), "甲,乙"; got != want {
		t.Errorf("topics=%s, want %s", got, want)
	}
}

// TestApplyRetriesAreBounded checks the retry loop with injected failures: a deadlock
// on the first attempts is retried, one on every attempt is returned after the last,
// and other errors are never retried.
func TestApplyRetriesAreBounded(t *testing.T) {
	f := newFixture(t)
	deadlock := &pq.Error{Code: "40P01", Message: "deadlock detected"}
	op := func() jiaoliu.Op {
		return upsert("lesson", newID(), lessonFields(f, "2026-10-12", 1+int(tick%12)))
	}
	for _, c := range []struct {
		name      string
		failFirst int   // attempts that fail
		err       error // with this error
		wantErr   bool
		attempts  int
	}{
		{"deadlock twice", 2, deadlock, false, 3},
		{"serialization failure once", 1, &pq.Error{Code: "40001"}, false, 2},
		{"deadlock always", 100, deadlock, true, 5},
		{"other error", 100, errors.New("connection refused"), true, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			attempts := 0
			defer postgres.SetApplyFault(func(attempt int) error {
				attempts = attempt
				if attempt <= c.failFirst {
					return c.err
				}
				return nil
			})()
			start := time.Now()
			_, err := f.store.Apply(sys(), jiaoliu.Batch{Atomic: true, Ops: []jiaoliu.Op{op()}})
			if (err != nil) != c.wantErr {
				t.Fatalf("err=%v, want error %v", err, c.wantErr)
			}
			if err != nil && !errors.Is(err, c.err) {
				t.Errorf("err=%v does not wrap %v", err, c.err)
			}
			if attempts != c.attempts {
				t.Errorf("attempts=%d, want %d", attempts, c.attempts)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
