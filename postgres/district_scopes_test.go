package postgres_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// TestDistrictReadersReadWhatTheChangeLogSays: a district's administrators and
// auditors read records through the records' own district_scopes (migration 00018),
// and must read exactly what the change log's scopes let them read — records shared by
// two districts (an exchange between them, a lesson held at another district's school),
// before and after an exchange moves to a school of the other district (which rewrites
// its children's copies, a finalized evaluation's included), through lists, lists with
// references, reads by id and nested lists.
func TestDistrictReadersReadWhatTheChangeLogSays(t *testing.T) {
	f := newFixture(t)
	d2, s2, s3, t2, x2, x3 := newID(), newID(), newID(), newID(), newID(), newID()
	MustApply(t, sys(), f.store,
		upsert("district", d2, map[string]any{"name": "巩义市"}),
		upsert("school", s2, map[string]any{"districtId": d2, "name": "回郭镇一中", "locality": "TOWN", "tier": "GENERAL"}),
		upsert("school", s3, map[string]any{"districtId": d2, "name": "小关镇教学点", "locality": "TEACHING_POINT", "tier": "WEAK"}),
		upsert("teacher", t2, map[string]any{"name": "赵敏", "gender": "FEMALE", "birthDate": "1984-03-02", "schoolId": s2, "joinedSchoolOn": "2012-09-01"}),
		// Between the districts: t2 from s2 (d2) to the fixture's rural school.
		exchangeOp(x2, t2, s2, f.rural, "APPROVED"),
		// Within d2.
		exchangeOp(x3, f.other, f.rural, f.urban, "APPROVED"),
	)
	var ops []jiaoliu.Op
	var lessons []string
	lesson := func(exchange, school string, day int) {
		id := newID()
		fields := map[string]any{"exchangeId": exchange, "date": fmt.Sprintf("2026-10-%02d", day), "period": float64(1), "subject": "数学", "kind": "REGULAR"}
		if school != "" {
			fields["schoolId"] = school
		}
		ops = append(ops, upsert("lesson", id, fields))
		lessons = append(lessons, id)
	}
	// Runs long enough for the bulk path (which writes the copies itself) and single
	// lessons (the per-op path, whose copies the trigger writes).
	for d := 1; d <= 5; d++ {
		lesson(f.exchange, "", d)
		lesson(x2, "", d)
	}
	for d := 1; d <= 5; d++ {
		lesson(x3, "", d)
	}
	MustApply(t, sys(), f.store, ops...)
	ops = ops[:0]
	lesson(f.exchange, s2, 9) // held at d2's school: d2 reads it too
	MustApply(t, sys(), f.store, ops...)
	eval := newID()
	MustApply(t, sys(), f.store, upsert("evaluation", eval, map[string]any{"exchangeId": x2, "period": "SEMESTER", "term": "2026-2027-1",
		"evaluatorSchoolId": f.rural, "grade": "EXCELLENT", "finalized": true}))

	reader := func(role jiaoliu.Role, district string) context.Context {
		return jiaoliu.NewContextWithActor(context.Background(), &jiaoliu.Actor{UserID: newID(), Role: role, DistrictID: district})
	}
	d1Admin, d2Admin, d2Auditor := reader(jiaoliu.RoleDistrictAdmin, f.district), reader(jiaoliu.RoleDistrictAdmin, d2), reader(jiaoliu.RoleAuditor, d2)

	// reads returns what ctx reads, each way of reading by name.
	reads := func(t *testing.T, ctx context.Context) map[string][]string {
		t.Helper()
		out := map[string][]string{}
		out["lessons"] = listIDs(t, ctx, f.store, jiaoliu.LessonEntity, jiaoliu.Filter{}, func(x *jiaoliu.Lesson) string { return x.ID })
		out["lessons of d2"] = listIDs(t, ctx, f.store, jiaoliu.LessonEntity, jiaoliu.Filter{DistrictID: d2}, func(x *jiaoliu.Lesson) string { return x.ID })
		out["exchanges"] = listIDs(t, ctx, f.store, jiaoliu.ExchangeEntity, jiaoliu.Filter{}, func(x *jiaoliu.Exchange) string { return x.ID })
		out["teachers"] = listIDs(t, ctx, f.store, jiaoliu.TeacherEntity, jiaoliu.Filter{}, func(x *jiaoliu.Teacher) string { return x.ID })
		out["evaluations"] = listIDs(t, ctx, f.store, jiaoliu.EvaluationEntity, jiaoliu.Filter{}, func(x *jiaoliu.Evaluation) string { return x.ID })
		joins := []postgres.Join{
			{Parent: -1, Column: "exchange_id", Entity: jiaoliu.ExchangeEntity, Columns: []string{"teacher_id"}, New: func() any { return new(jiaoliu.Exchange) }},
			{Parent: 0, Column: "teacher_id", Entity: jiaoliu.TeacherEntity, Columns: []string{"name"}, New: func() any { return new(jiaoliu.Teacher) }},
		}
		page, joined, err := postgres.ListJoined[jiaoliu.Lesson](ctx, f.store, jiaoliu.LessonEntity, jiaoliu.ListQuery{First: 100}, joins)
		if err != nil {
			t.Fatal(err)
		}
		if joined == nil {
			t.Fatal("the page was read without its references")
		}
		for _, l := range page.Items {
			ref := "-"
			if x, ok := joined[0][l.ExchangeID].(*jiaoliu.Exchange); ok && x != nil {
				ref = x.ID
				if tc, ok := joined[1][x.TeacherID].(*jiaoliu.Teacher); ok && tc != nil {
					ref += "/" + tc.ID
				}
			}
			out["lessons with references"] = append(out["lessons with references"], l.ID+" "+ref)
		}
		byID, err := postgres.GetMany[jiaoliu.Lesson](ctx, f.store, jiaoliu.LessonEntity, lessons)
		if err != nil {
			t.Fatal(err)
		}
		out["lessons by id"] = slices.Sorted(maps.Keys(byID))
		children, err := postgres.ChildrenOf[jiaoliu.Lesson](ctx, f.store, jiaoliu.LessonEntity, "exchangeId", []string{f.exchange, x2, x3})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range []string{f.exchange, x2, x3} {
			for _, l := range children[x] {
				out["lessons of exchanges"] = append(out["lessons of exchanges"], x+" "+l.ID)
			}
		}
		return out
	}
	// check compares each reader's reads from the copies with those from the change log,
	// and wants counts.
	check := func(t *testing.T, want map[string]map[string]int) {
		t.Helper()
		for name, ctx := range map[string]context.Context{"d1 admin": d1Admin, "d2 admin": d2Admin, "d2 auditor": d2Auditor} {
			copied := reads(t, ctx)
			restore := postgres.SetDistrictScopes(false)
			logged := reads(t, ctx)
			restore()
			for what, ids := range logged {
				if !slices.Equal(copied[what], ids) {
					t.Errorf("%s, %s: from district_scopes %v, from the change log %v", name, what, copied[what], ids)
				}
			}
			for what, n := range want[name[:2]] {
				if len(copied[what]) != n {
					t.Errorf("%s reads %d %s, want %d", name, len(copied[what]), what, n)
				}
			}
		}
		if err := postgres.CheckScopeCopies(context.Background(), f.db.DB); err != nil {
			t.Error(err)
		}
	}

	t.Run("shared records", func(t *testing.T) {
		check(t, map[string]map[string]int{
			// d1: every lesson (x3 is within d1).
			"d1": {"lessons": 16, "exchanges": 3, "evaluations": 1, "lessons by id": 16, "lessons of exchanges": 16},
			// d2: x2's lessons and the lesson held at s2; x2 and its teacher t2.
			"d2": {"lessons": 6, "lessons of d2": 6, "exchanges": 1, "evaluations": 1, "lessons by id": 6, "lessons of exchanges": 6},
		})
	})

	// x2 now receives at s3, in d2: it and its lessons leave d1 (its finalized
	// evaluation stays, by its evaluating school).
	MustApply(t, sys(), f.store, upsert("exchange", x2, map[string]any{"receivingSchoolId": s3}))
	t.Run("after the exchange moves", func(t *testing.T) {
		check(t, map[string]map[string]int{
			"d1": {"lessons": 11, "exchanges": 2, "evaluations": 1, "lessons by id": 11, "lessons of exchanges": 11},
			"d2": {"lessons": 6, "lessons of d2": 6, "exchanges": 1, "evaluations": 1, "lessons by id": 6, "lessons of exchanges": 6},
		})
	})
}

// TestWhoCopiesNewScopes: a new change-log row of a lesson, attendance record or
// research activity is not copied by a trigger (its writer writes the copy, migration
// 00019), and the check every test database gets at its end names a writer that did
// not; other entities' new rows are copied by the change log's row trigger.
func TestWhoCopiesNewScopes(t *testing.T) {
	f := newFixture(t)
	lesson, observation := newID(), newID()
	f.db.MustExec(`INSERT INTO lessons (id, exchange_id, date, period, subject, kind, version) VALUES ($1, $2, '2026-10-12', 1, '数学', 'REGULAR', 1)`, lesson, f.exchange)
	f.db.MustExec(`INSERT INTO observations (id, observer_id, observed_teacher_id, exchange_id, date, version) VALUES ($1, $2, $3, $4, '2026-10-12', 1)`,
		observation, f.other, f.teacher, f.exchange)
	f.db.MustExec(`INSERT INTO sync_log (entity, id, seq, scopes) VALUES ('lesson', $1, 1, scope_tokens('lesson', $1)), ('observation', $2, 2, scope_tokens('observation', $2))`,
		lesson, observation)
	err := postgres.CheckScopeCopies(context.Background(), f.db.DB)
	if err == nil || !strings.Contains(err.Error(), "lesson "+lesson) || strings.Contains(err.Error(), observation) {
		t.Fatalf("check: %v, want it to name lesson %s and not observation %s", err, lesson, observation)
	}
	// The writer's part, done late: the database ends in agreement (the check at cleanup).
	f.db.MustExec(`UPDATE lessons SET district_scopes = ARRAY['d:' || $2] WHERE id = $1`, lesson, f.district)
	if err := postgres.CheckScopeCopies(context.Background(), f.db.DB); err != nil {
		t.Fatal(err)
	}
}

// TestWritesCarryTheirDistrictScopes: the write path writes a new exchange child with
// its district_scopes, on the bulk path and the per-op path (no trigger copies them,
// migration 00019; before it, a trigger checked every one and rewrote none); an edit
// that leaves the scopes as they were does not run the change log's update trigger.
func TestWritesCarryTheirDistrictScopes(t *testing.T) {
	f := newFixture(t)
	defer postgres.SetBulk(true)()
	// One connection: its table statistics are flushed on request before being read.
	f.db.SetMaxOpenConns(1)
	var ops []jiaoliu.Op
	for p := 1; p <= 8; p++ {
		ops = append(ops, upsert("lesson", newID(), lessonFields(f, "2026-10-12", p)),
			upsert("attendance", newID(), map[string]any{"exchangeId": f.exchange, "date": fmt.Sprintf("2026-10-%02d", p), "status": "PRESENT"}))
	}
	before, _ := postgres.BulkCounts()
	if _, err := f.store.Apply(sys(), jiaoliu.Batch{Ops: ops}); err != nil { // not atomic: the bulk path's
		t.Fatal(err)
	}
	if n, _ := postgres.BulkCounts(); n-before != int64(len(ops)) {
		t.Fatalf("the bulk path applied %d ops of %d", n-before, len(ops))
	}
	// The per-op path: two creates, one at another school, and an edit.
	one, two := newID(), newID()
	at := lessonFields(f, "2026-10-13", 1)
	at["schoolId"] = f.urban
	MustApply(t, sys(), f.store, upsert("lesson", one, lessonFields(f, "2026-10-13", 2)))
	MustApply(t, sys(), f.store, upsert("lesson", two, at))
	MustApply(t, sys(), f.store, upsert("attendance", newID(), map[string]any{"exchangeId": f.exchange, "date": "2026-10-13", "status": "LEAVE"}))
	MustApply(t, sys(), f.store, upsert("lesson", one, map[string]any{"topic": "分数"}))
	f.db.MustExec(`SELECT pg_stat_force_next_flush()`)
	for table, want := range map[string][2]int64{"lessons": {10, 1}, "attendance": {9, 0}} {
		var ins, upd int64
		if err := f.db.QueryRow(`SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE relname = $1`, table).Scan(&ins, &upd); err != nil {
			t.Fatal(err)
		}
		if ins != want[0] || upd != want[1] {
			t.Errorf("%s: %d rows inserted and %d updated, want %d and %d", table, ins, upd, want[0], want[1])
		}
	}
}

// TestExchangeMovesWhileItsLessonsAreEdited: an exchange moving between districts
// rewrites its lessons' district_scopes (the change log's trigger) while devices edit
// those lessons. Every op must be applied, the copies must agree with the change log
// at the end (the pgtest check), and the move's locks must not deadlock with the edits'
// (Apply would run the aborted batch again, a second later).
func TestExchangeMovesWhileItsLessonsAreEdited(t *testing.T) {
	f := newFixture(t)
	d2, s2 := newID(), newID()
	MustApply(t, sys(), f.store,
		upsert("district", d2, map[string]any{"name": "巩义市"}),
		upsert("school", s2, map[string]any{"districtId": d2, "name": "回郭镇一中", "locality": "TOWN", "tier": "GENERAL"}))
	var lessons []string
	var ops []jiaoliu.Op
	for d := 1; d <= 20; d++ {
		id := newID()
		lessons = append(lessons, id)
		ops = append(ops, upsert("lesson", id, lessonFields(f, fmt.Sprintf("2026-10-%02d", d), 1)))
	}
	MustApply(t, sys(), f.store, ops...)

	// The ops are made here: upsert's clock is not for concurrent use.
	moves := make([]jiaoliu.Op, 10)
	for i := range moves {
		to := s2
		if i%2 == 1 {
			to = f.rural
		}
		moves[i] = upsert("exchange", f.exchange, map[string]any{"receivingSchoolId": to})
	}
	edits := make([][][]jiaoliu.Op, 3) // writer, batch, op
	for w := range edits {
		edits[w] = make([][]jiaoliu.Op, 10)
		for i := range edits[w] {
			for _, id := range lessons {
				edits[w][i] = append(edits[w][i], upsert("lesson", id, map[string]any{"topic": fmt.Sprintf("writer %d edit %d", w, i)}))
			}
		}
	}
	before := postgres.ApplyRetries()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, op := range moves {
			if _, err := f.store.Apply(sys(), jiaoliu.Batch{Atomic: true, Ops: []jiaoliu.Op{op}}); err != nil {
				errs <- fmt.Errorf("move %d: %w", i, err)
			}
		}
	}()
	for w, batches := range edits {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, batch := range batches {
				res, err := f.store.Apply(sys(), jiaoliu.Batch{Ops: batch})
				if err != nil {
					errs <- fmt.Errorf("writer %d batch %d: %w", w, i, err)
					continue
				}
				for _, r := range res {
					if r.Status != jiaoliu.StatusApplied {
						errs <- fmt.Errorf("writer %d batch %d: %+v", w, i, r)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Before the refresh locked the records first, 2–5 batches a run were aborted for a
	// deadlock (each after a second) and run again; before district_scopes, 0–1.
	if n := postgres.ApplyRetries() - before; n > 1 {
		t.Errorf("%d batches were aborted (deadlock or serialization failure) and run again, want at most 1", n)
	}
	var scopes []string
	if err := f.db.Get(pq.Array(&scopes), `SELECT district_scopes FROM lessons WHERE id = $1`, lessons[0]); err != nil {
		t.Fatal(err)
	}
	if len(scopes) != 1 || scopes[0] != "d:"+f.district {
		t.Errorf("a lesson of the exchange back in its district has district_scopes %v", scopes)
	}
}
