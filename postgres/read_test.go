package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// TestBroadListsAreTheJoinedLists pages through lists as a district administrator, an
// auditor, the system, and a school administrator, reading a district reader's scope
// from the records' district_scopes (the ordered index walked) and from the change log
// (joined), and wants the same pages, none of another
// district's records, and deleted records nowhere.
func TestBroadListsAreTheJoinedLists(t *testing.T) {
	f := newFixture(t)
	// A second exchange and a second district with its own school, teacher, exchange.
	x2, d2, s2, s3, t2, x3 := newID(), newID(), newID(), newID(), newID(), newID()
	MustApply(t, sys(), f.store,
		upsert("exchange", x2, map[string]any{"teacherId": f.other, "sendingSchoolId": f.rural, "receivingSchoolId": f.urban,
			"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"}),
		upsert("district", d2, map[string]any{"name": "巩义市"}),
		upsert("school", s2, map[string]any{"districtId": d2, "name": "回郭镇一中", "locality": "TOWN", "tier": "GENERAL"}),
		upsert("school", s3, map[string]any{"districtId": d2, "name": "小关镇教学点", "locality": "TEACHING_POINT", "tier": "WEAK"}),
		upsert("teacher", t2, map[string]any{"name": "赵敏", "gender": "FEMALE", "birthDate": "1984-03-02", "schoolId": s2, "joinedSchoolOn": "2012-09-01"}),
		upsert("exchange", x3, map[string]any{"teacherId": t2, "sendingSchoolId": s2, "receivingSchoolId": s3,
			"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-08-25", "plannedEnd": "2027-07-15", "status": "APPROVED"}),
	)
	var ops []jiaoliu.Op
	for d := 1; d <= 6; d++ {
		for p := 1; p <= 3; p++ {
			date := fmt.Sprintf("2026-10-%02d", d)
			ops = append(ops, upsert("lesson", newID(), lessonFields(f, date, p)),
				upsert("lesson", newID(), map[string]any{"exchangeId": x3, "date": date, "period": float64(p), "subject": "语文", "kind": "REGULAR"}))
		}
	}
	gone := newID()
	ops = append(ops, upsert("lesson", gone, lessonFields(f, "2026-10-20", 1)))
	MustApply(t, sys(), f.store, ops...)
	MustApply(t, sys(), f.store, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpDelete, Entity: "lesson", ID: gone, HLC: nextHLC()})

	actor := func(role jiaoliu.Role, district, school string) context.Context {
		a := &jiaoliu.Actor{UserID: newID(), Role: role, DistrictID: district, SchoolID: school}
		ctx := jiaoliu.NewContextWithActor(context.Background(), a)
		toks, err := f.store.ActorTokens(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		a.ReadTokens = toks
		return ctx
	}
	district := actor(jiaoliu.RoleDistrictAdmin, f.district, "")
	auditor := actor(jiaoliu.RoleAuditor, f.district, "")
	school := actor(jiaoliu.RoleSchoolAdmin, f.district, f.rural)
	from, to := jiaoliu.MustDate("2026-10-02"), jiaoliu.MustDate("2026-10-05")

	pages := func(ctx context.Context, def *jiaoliu.Entity, filter jiaoliu.Filter) []string {
		switch def {
		case jiaoliu.LessonEntity:
			return listIDs(t, ctx, f.store, def, filter, func(x *jiaoliu.Lesson) string { return x.ID })
		case jiaoliu.ExchangeEntity:
			return listIDs(t, ctx, f.store, def, filter, func(x *jiaoliu.Exchange) string { return x.ID })
		default:
			return listIDs(t, ctx, f.store, def, filter, func(x *jiaoliu.Teacher) string { return x.ID })
		}
	}
	cases := []struct {
		name   string
		ctx    context.Context
		def    *jiaoliu.Entity
		filter jiaoliu.Filter
		want   int
	}{
		{"district admin, lessons", district, jiaoliu.LessonEntity, jiaoliu.Filter{}, 18},
		{"district admin, lessons of some days", district, jiaoliu.LessonEntity, jiaoliu.Filter{DateField: "date", From: &from, To: &to}, 12},
		{"district admin, lessons of the district", district, jiaoliu.LessonEntity, jiaoliu.Filter{DistrictID: f.district}, 18},
		{"district admin, exchanges of the year", district, jiaoliu.ExchangeEntity, jiaoliu.Filter{Eq: map[string]any{"academicYear": "2026-2027"}}, 2},
		{"district admin, teachers", district, jiaoliu.TeacherEntity, jiaoliu.Filter{}, 2},
		{"district admin, teachers of a school", district, jiaoliu.TeacherEntity, jiaoliu.Filter{SchoolID: f.rural}, 2},
		{"district admin, teachers of another district's school", district, jiaoliu.TeacherEntity, jiaoliu.Filter{SchoolID: s2}, 0},
		{"auditor, lessons", auditor, jiaoliu.LessonEntity, jiaoliu.Filter{}, 18},
		{"system, lessons", sys(), jiaoliu.LessonEntity, jiaoliu.Filter{}, 36},
		{"system, exchanges", sys(), jiaoliu.ExchangeEntity, jiaoliu.Filter{}, 3},
		{"school admin, exchanges", school, jiaoliu.ExchangeEntity, jiaoliu.Filter{}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			probe := pages(c.ctx, c.def, c.filter)
			restore := postgres.SetDistrictScopes(false)
			joined := pages(c.ctx, c.def, c.filter)
			restore()
			if !slices.Equal(probe, joined) {
				t.Errorf("district_scopes %v, change log %v", probe, joined)
			}
			if len(probe) != c.want {
				t.Errorf("%d records, want %d", len(probe), c.want)
			}
			if slices.Contains(probe, gone) {
				t.Errorf("deleted lesson listed")
			}
		})
	}
}

// listIDs pages through a list, 3 records a page, with the total asked (and wanted to be
// the number of records listed), and returns the ids in order.
func listIDs[T any](t *testing.T, ctx context.Context, s *postgres.Store, def *jiaoliu.Entity, filter jiaoliu.Filter, id func(*T) string) []string {
	t.Helper()
	var ids []string
	after := ""
	for {
		page, err := postgres.List[T](ctx, s, def, jiaoliu.ListQuery{First: 3, After: after, Filter: filter, WithTotal: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Items {
			ids = append(ids, id(v))
		}
		if !page.HasNext {
			if page.TotalCount != len(ids) {
				t.Errorf("total count %d, %d records listed", page.TotalCount, len(ids))
			}
			return ids
		}
		after = page.Cursors[len(page.Cursors)-1]
	}
}

// TestRangePagesKeepAGenericPlan: a district-wide page filtered by a date range is
// planned once per connection, not on every call. With the range's values in sight,
// PostgreSQL's custom plans of a month of lessons look cheaper than its generic plan
// and it plans the statement afresh on every call (0.2–0.3 ms, more than running it);
// with the bounds read through subqueries it keeps the generic plan after its five
// custom ones. The same pages are read either way.
func TestRangePagesKeepAGenericPlan(t *testing.T) {
	f := newFixture(t)
	// 20,000 lessons, 8 a day from 2026-09-01, analyzed: the month asked is 1.2 % of
	// the rows, more than the 0.5 % a generic plan assumes of a range.
	// With their district_scopes, as the write path's bulk path writes them: the change
	// log's trigger (migration 00018) then has nothing to rewrite.
	if _, err := f.db.Exec(`INSERT INTO lessons (id, exchange_id, date, period, subject, kind, version, district_scopes)
		SELECT gen_random_uuid(), $1, date '2026-09-01' + i / 8, i % 8 + 1, '数学', 'REGULAR', i, ARRAY['d:' || $2] FROM generate_series(0, 19999) i`,
		f.exchange, f.district); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Exec(`INSERT INTO sync_log (entity, id, seq, scopes)
		SELECT 'lesson', id, version, scope_tokens('lesson', id) FROM lessons`); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Exec(`ANALYZE lessons; ANALYZE sync_log`); err != nil {
		t.Fatal(err)
	}
	// One connection: the statements and their plans are that connection's.
	f.db.SetMaxOpenConns(1)
	from, to := jiaoliu.MustDate("2026-10-01"), jiaoliu.MustDate("2026-10-31")
	q := jiaoliu.ListQuery{First: 20, Filter: jiaoliu.Filter{DateField: "date", From: &from, To: &to}}
	genericPlans := func() (n int) {
		t.Helper()
		if err := f.db.Get(&n, `SELECT coalesce(sum(generic_plans), 0) FROM pg_prepared_statements WHERE statement LIKE '%FROM lessons t%'`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	pages := map[bool]string{}
	for _, blind := range []bool{false, true} {
		restore := postgres.SetBlindRanges(blind)
		before := genericPlans()
		var ids []string
		for range 10 {
			page, err := postgres.List[jiaoliu.Lesson](sys(), f.store, jiaoliu.LessonEntity, q)
			if err != nil {
				t.Fatal(err)
			}
			ids = ids[:0]
			for _, l := range page.Items {
				ids = append(ids, l.ID)
			}
		}
		restore()
		generic := genericPlans() - before
		switch {
		case blind && generic < 4:
			t.Errorf("bounds through subqueries: %d of 10 calls ran the generic plan, want the 5 after the first 5", generic)
		case !blind && generic != 0:
			t.Errorf("bounds as values: %d calls ran the generic plan; PostgreSQL no longer plans them afresh, and the subqueries may not be needed", generic)
		}
		if len(ids) != 20 {
			t.Fatalf("blind %v: a page of %d lessons, want 20", blind, len(ids))
		}
		pages[blind] = strings.Join(ids, ",")
	}
	if pages[true] != pages[false] {
		t.Errorf("the pages differ:\nsubqueries %s\nvalues     %s", pages[true], pages[false])
	}
}

// TestReferenceProbesUseTheirEntitysLogIndex: the records a page refers to are checked
// against their change-log rows through the small per-entity indexes of migration 00015,
// not the primary key of every record's row. (A district reader's references are
// checked on their district_scopes, without the change log: the reader here is a school
// administrator.)
func TestReferenceProbesUseTheirEntitysLogIndex(t *testing.T) {
	f := newFixture(t)
	// 20,000 lessons in the log, analyzed: its primary key is then the size of a
	// school's year, not of a fixture, as the planner sees it.
	if _, err := f.db.Exec(`INSERT INTO sync_log (entity, id, seq, scopes)
		SELECT 'lesson', gen_random_uuid(), i, ARRAY['d:' || $1] FROM generate_series(1, 20000) i`, f.district); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Exec(`ANALYZE sync_log`); err != nil {
		t.Fatal(err)
	}
	// One connection: its pending statistics are flushed on request before being read.
	f.db.SetMaxOpenConns(1)
	indexes := []string{"sync_log_teacher_id", "sync_log_school_id"}
	scans := func() map[string]int64 {
		t.Helper()
		if _, err := f.db.Exec(`SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		rows, err := f.db.Query(`SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE indexrelname = ANY($1)`, pq.Array(indexes))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := map[string]int64{}
		for rows.Next() {
			var name string
			var c int64
			if err := rows.Scan(&name, &c); err != nil {
				t.Fatal(err)
			}
			n[name] = c
		}
		return n
	}
	before := scans()
	a := &jiaoliu.Actor{UserID: newID(), Role: jiaoliu.RoleSchoolAdmin, DistrictID: f.district, SchoolID: f.urban}
	ctx := jiaoliu.NewContextWithActor(context.Background(), a)
	joins := []postgres.Join{
		{Parent: -1, Column: "teacher_id", Entity: jiaoliu.TeacherEntity, Columns: []string{"name"}, New: func() any { return new(jiaoliu.Teacher) }},
		{Parent: -1, Column: "sending_school_id", Entity: jiaoliu.SchoolEntity, Columns: []string{"name"}, New: func() any { return new(jiaoliu.School) }},
	}
	page, joined, err := postgres.ListJoined[jiaoliu.Exchange](ctx, f.store, jiaoliu.ExchangeEntity, jiaoliu.ListQuery{First: 10}, joins)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || joined == nil || joined[0][page.Items[0].TeacherID] == nil || joined[1][page.Items[0].SendingSchoolID] == nil {
		t.Fatalf("page %d exchanges, joined %v: want the exchange with its teacher and school", len(page.Items), joined)
	}
	after := scans()
	for _, ix := range indexes {
		if after[ix] <= before[ix] {
			t.Errorf("%s scanned %d times before the page and %d after: the references were not probed through it", ix, before[ix], after[ix])
		}
	}
}
