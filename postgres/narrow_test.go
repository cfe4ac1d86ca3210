package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// TestNarrowListsAreTheJoinedLists pages through the lists of an exchange's children as
// school administrators, a teacher, and a district administrator narrowed to a school
// or a teacher, once by exchange and once with the join, and wants the same pages. The
// records cover each way a child gets a school's token: its exchange's sending or
// receiving school, a lesson's own school, and an exchange moved to another school.
func TestNarrowListsAreTheJoinedLists(t *testing.T) {
	f := newFixture(t)
	third, fourth, t3, x2, x3 := newID(), newID(), newID(), newID(), newID()
	MustApply(t, sys(), f.store,
		upsert("school", third, map[string]any{"districtId": f.district, "name": "刘寨镇中心小学", "locality": "TOWN", "tier": "GENERAL"}),
		upsert("school", fourth, map[string]any{"districtId": f.district, "name": "米村镇教学点", "locality": "TEACHING_POINT", "tier": "WEAK"}),
		upsert("teacher", t3, map[string]any{"name": "张伟", "gender": "MALE", "birthDate": "1988-05-02", "schoolId": third, "joinedSchoolOn": "2012-09-01"}),
		exchangeOp(x2, f.other, f.rural, f.urban, "APPROVED"),
		exchangeOp(x3, t3, third, fourth, "APPROVED"),
	)
	var ops []jiaoliu.Op
	var atThird, gone []string
	for d := 1; d <= 5; d++ {
		date := fmt.Sprintf("2026-10-%02d", d)
		for p := 1; p <= 2; p++ {
			for _, x := range []string{f.exchange, x2, x3} {
				fields := map[string]any{"exchangeId": x, "date": date, "period": float64(p), "subject": "语文", "kind": "REGULAR"}
				id := newID()
				if x == f.exchange && p == 2 {
					fields["schoolId"] = third // taught at another school of the district
					atThird = append(atThird, id)
				}
				ops = append(ops, upsert("lesson", id, fields))
			}
		}
		for _, x := range []string{f.exchange, x2, x3} {
			ops = append(ops,
				upsert("attendance", newID(), map[string]any{"exchangeId": x, "date": date, "status": "PRESENT"}),
				upsert("researchActivity", newID(), map[string]any{"exchangeId": x, "date": date, "kind": "LECTURE"}))
		}
	}
	for _, x := range []string{f.exchange, x3} {
		for _, term := range []string{"2026-2027-1", "2026-2027-2"} {
			ops = append(ops, upsert("semesterReport", newID(), map[string]any{"exchangeId": x, "term": term, "content": "总结"}))
		}
	}
	MustApply(t, sys(), f.store, ops...)
	gone = append(gone, atThird[0])
	MustApply(t, sys(), f.store,
		jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpDelete, Entity: "lesson", ID: atThird[0], HLC: nextHLC()},
		// x2 now receives at the third school: its children move out of the urban
		// school's scope and into the third's.
		jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: "exchange", ID: x2, HLC: nextHLC(), Fields: map[string]any{"receivingSchoolId": third}},
		// a lesson no longer at the third school
		jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: atThird[1], HLC: nextHLC(), Fields: map[string]any{"schoolId": nil}},
	)

	actor := func(a *jiaoliu.Actor) context.Context {
		a.UserID = newID()
		ctx := jiaoliu.NewContextWithActor(context.Background(), a)
		toks, err := f.store.ActorTokens(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		a.ReadTokens = toks
		return ctx
	}
	schoolAdmin := func(school string) context.Context {
		return actor(&jiaoliu.Actor{Role: jiaoliu.RoleSchoolAdmin, DistrictID: f.district, SchoolID: school})
	}
	district := actor(&jiaoliu.Actor{Role: jiaoliu.RoleDistrictAdmin, DistrictID: f.district})
	teacher := actor(&jiaoliu.Actor{Role: jiaoliu.RoleTeacher, DistrictID: f.district, TeacherID: f.teacher})
	from, to := jiaoliu.MustDate("2026-10-02"), jiaoliu.MustDate("2026-10-04")

	type list func(ctx context.Context, filter jiaoliu.Filter) []string
	lessons := func(ctx context.Context, filter jiaoliu.Filter) []string {
		return listIDs(t, ctx, f.store, jiaoliu.LessonEntity, filter, func(x *jiaoliu.Lesson) string { return x.ID })
	}
	attendance := func(ctx context.Context, filter jiaoliu.Filter) []string {
		return listIDs(t, ctx, f.store, jiaoliu.AttendanceEntity, filter, func(x *jiaoliu.Attendance) string { return x.ID })
	}
	research := func(ctx context.Context, filter jiaoliu.Filter) []string {
		return listIDs(t, ctx, f.store, jiaoliu.ResearchActivityEntity, filter, func(x *jiaoliu.ResearchActivity) string { return x.ID })
	}
	reports := func(ctx context.Context, filter jiaoliu.Filter) []string {
		return listIDs(t, ctx, f.store, jiaoliu.SemesterReportEntity, filter, func(x *jiaoliu.SemesterReport) string { return x.ID })
	}
	cases := []struct {
		name   string
		ctx    context.Context
		list   list
		filter jiaoliu.Filter
		want   int
	}{
		// f.exchange urban→rural (10 lessons, 5 of them at the third school, one deleted
		// and one no longer there), x2 rural→third (was →urban), x3 third→fourth; 10
		// lessons each.
		{"urban school admin, lessons", schoolAdmin(f.urban), lessons, jiaoliu.Filter{}, 9},
		{"rural school admin, lessons", schoolAdmin(f.rural), lessons, jiaoliu.Filter{}, 9 + 10},
		{"third school admin, lessons", schoolAdmin(third), lessons, jiaoliu.Filter{}, 10 + 10 + 3},
		{"third school admin, lessons of some days", schoolAdmin(third), lessons, jiaoliu.Filter{DateField: "date", From: &from, To: &to}, 6 + 6 + 2},
		{"third school admin, lessons of a teacher", schoolAdmin(third), lessons, jiaoliu.Filter{TeacherID: f.teacher}, 3},
		{"fourth school admin, lessons", schoolAdmin(fourth), lessons, jiaoliu.Filter{}, 10},
		{"teacher, lessons", teacher, lessons, jiaoliu.Filter{}, 9},
		{"teacher, regular lessons", teacher, lessons, jiaoliu.Filter{Eq: map[string]any{"kind": "REGULAR"}}, 9},
		{"district admin, lessons of the third school", district, lessons, jiaoliu.Filter{SchoolID: third}, 23},
		{"district admin, lessons of a teacher", district, lessons, jiaoliu.Filter{TeacherID: f.other}, 10},
		{"urban school admin, attendance", schoolAdmin(f.urban), attendance, jiaoliu.Filter{}, 5},
		{"third school admin, attendance", schoolAdmin(third), attendance, jiaoliu.Filter{}, 10},
		{"teacher, research activities", teacher, research, jiaoliu.Filter{}, 5},
		{"rural school admin, research activities", schoolAdmin(f.rural), research, jiaoliu.Filter{}, 10},
		{"fourth school admin, semester reports", schoolAdmin(fourth), reports, jiaoliu.Filter{}, 2},
		{"urban school admin, semester reports", schoolAdmin(f.urban), reports, jiaoliu.Filter{}, 2},
	}
	fallbacks := postgres.NarrowFallbacks()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			narrow := c.list(c.ctx, c.filter)
			restore := postgres.SetNarrowLists(false)
			joined := c.list(c.ctx, c.filter)
			restore()
			if !slices.Equal(narrow, joined) {
				t.Errorf("by exchange %v,\njoin %v", narrow, joined)
			}
			if len(narrow) != c.want {
				t.Errorf("%d records, want %d", len(narrow), c.want)
			}
			if slices.Contains(narrow, gone[0]) {
				t.Errorf("deleted lesson listed")
			}
		})
	}
	if n := postgres.NarrowFallbacks() - fallbacks; n != 0 {
		t.Errorf("%d pages read the general way, want every page by exchange", n)
	}

	// A change-log entry that disagrees with the tables (the urban school's token gone
	// from a lesson of f.exchange): the page falls back to the general way, which
	// follows the log.
	t.Run("stale change log", func(t *testing.T) {
		ctx := schoolAdmin(f.urban)
		var stale string
		if err := f.db.Get(&stale, `SELECT id FROM lessons WHERE exchange_id = $1 AND NOT deleted ORDER BY date DESC, id DESC LIMIT 1`, f.exchange); err != nil {
			t.Fatal(err)
		}
		if _, err := f.db.Exec(`UPDATE sync_log SET scopes = array_remove(scopes, 's:' || $2) WHERE entity = 'lesson' AND id = $1`, stale, f.urban); err != nil {
			t.Fatal(err)
		}
		before := postgres.NarrowFallbacks()
		narrow := lessons(ctx, jiaoliu.Filter{})
		restore := postgres.SetNarrowLists(false)
		joined := lessons(ctx, jiaoliu.Filter{})
		restore()
		if !slices.Equal(narrow, joined) || len(narrow) != 8 || slices.Contains(narrow, stale) {
			t.Errorf("by exchange %d records %v,\njoin %d records %v; want 8 without %s", len(narrow), narrow, len(joined), joined, stale)
		}
		if postgres.NarrowFallbacks() == before {
			t.Error("no fallback counted")
		}
	})
}
