package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// policyWorld is a small district with hand-computed answers (policy YULIN: 6 years,
// men ≤ 50, women ≤ 45):
//
//	北海小学 (URBAN QUALITY): 7 teachers who must rotate, among them 杨国强 born
//	  1976-09-01 (50 on the reference date) and 陈静 whose deferral ended the day before;
//	  冯浩 (5 years 364 days), 吴海峰 (male, 51), 韩雪 (deferred to the reference date),
//	  李明 (not employed). One rotates: 赵志强 (county backbone) to 熊楼小学.
//	川底中心小学 (TOWN GENERAL): 孙强 (backbone, volunteer) rotates to 北海小学 —
//	  reverse flow 1 against 1: it does not hold.
//	熊楼小学 (RURAL WEAK): no target.
type policyWorld struct {
	store                      *postgres.Store
	district, other            string
	quality, general, weak     string
	absent11, absent10, year16 string // exchanges with 11 and 10 ABSENT in a row, 16 in the year
	noShow, down, up           string
	pair                       string
	turns50, deferred, joiner  string
}

var weekdays []jiaoliu.Date // the school days from 2026-09-07 (a Monday)

func init() {
	for d := jiaoliu.MustDate("2026-09-07"); len(weekdays) < 60; d = d.AddDays(1) {
		if wd := d.Time().Weekday(); wd != 0 && wd != 6 {
			weekdays = append(weekdays, d)
		}
	}
}

func newPolicyWorld(tb testing.TB) *policyWorld {
	tb.Helper()
	db := pgtest.NewDB(tb)
	w := &policyWorld{store: postgres.NewStore(db, hlc.NewClock("server"), nil),
		district: newID(), other: newID(), quality: newID(), general: newID(), weak: newID()}
	yulin, _ := jiaoliu.Preset("YULIN")
	policy := yulin.Fields()
	policy["districtId"], policy["academicYear"], policy["preset"] = w.district, "2026-2027", "YULIN"
	ops := []jiaoliu.Op{
		upsert("district", w.district, map[string]any{"name": "新密市"}),
		upsert("district", w.other, map[string]any{"name": "榆林市"}),
		upsert("policy", newID(), policy),
		upsert("school", w.quality, map[string]any{"districtId": w.district, "name": "北海小学", "locality": "URBAN", "tier": "QUALITY"}),
		upsert("school", w.general, map[string]any{"districtId": w.district, "name": "川底中心小学", "locality": "TOWN", "tier": "GENERAL"}),
		upsert("school", w.weak, map[string]any{"districtId": w.district, "name": "熊楼小学", "locality": "RURAL", "tier": "WEAK", "averageWeeklyLessons": 12.0}),
	}
	teacher := func(name, gender, birth, school, joined string, extra map[string]any) string {
		id := newID()
		f := map[string]any{"name": name, "gender": gender, "birthDate": birth, "schoolId": school, "joinedSchoolOn": joined, "employed": true}
		for k, v := range extra {
			f[k] = v
		}
		ops = append(ops, upsert("teacher", id, f))
		return id
	}
	w.turns50 = teacher("杨国强", "MALE", "1976-09-01", w.quality, "2008-09-01", nil)
	absentT := teacher("赵志强", "MALE", "1983-06-20", w.quality, "2009-09-01", map[string]any{"backboneLevel": "COUNTY"})
	t10 := teacher("刘洋", "MALE", "1985-01-01", w.quality, "2012-09-01", nil)
	t16 := teacher("王丽", "FEMALE", "1986-01-01", w.quality, "2013-09-01", nil)
	noShowT := teacher("许志刚", "MALE", "1982-03-03", w.quality, "2010-09-01", nil)
	teacher("郑婷", "FEMALE", "1992-03-08", w.quality, "2020-09-01", nil)
	ended := teacher("陈静", "FEMALE", "1990-05-05", w.quality, "2015-09-01", nil)
	w.joiner = teacher("冯浩", "MALE", "1993-12-11", w.quality, "2020-09-02", nil)
	teacher("吴海峰", "MALE", "1975-08-31", w.quality, "2010-09-01", nil)
	w.deferred = teacher("韩雪", "FEMALE", "1994-05-30", w.quality, "2017-09-01", nil)
	teacher("李明", "MALE", "1990-01-01", w.quality, "2010-09-01", map[string]any{"employed": false})
	upT := teacher("孙强", "MALE", "1995-01-01", w.general, "2022-09-01", map[string]any{"backboneLevel": "SCHOOL"})
	mentee := teacher("牛梓涵", "FEMALE", "1999-02-14", w.weak, "2022-09-01", nil)
	ops = append(ops,
		upsert("deferral", newID(), map[string]any{"teacherId": w.deferred, "reason": "PREGNANCY", "startsOn": "2026-03-01", "expiresOn": "2026-09-01", "approved": true}),
		upsert("deferral", newID(), map[string]any{"teacherId": ended, "reason": "NURSING", "startsOn": "2025-09-01", "expiresOn": "2026-08-31", "approved": true}),
	)
	exchange := func(t, from, to, status string, extra map[string]any) string {
		id := newID()
		f := map[string]any{"teacherId": t, "sendingSchoolId": from, "receivingSchoolId": to, "mode": "FULL_TIME",
			"academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"}
		for k, v := range extra {
			f[k] = v
		}
		ops = append(ops, upsert("exchange", id, f))
		if status != "APPROVED" {
			ops = append(ops, upsert("exchange", id, map[string]any{"status": "PUBLISHED"}))
		}
		if status == "ACTIVE" {
			ops = append(ops, upsert("exchange", id, map[string]any{"status": "ACTIVE", "reportedOn": "2026-09-01"}))
		}
		return id
	}
	w.absent11 = exchange(absentT, w.quality, w.weak, "ACTIVE", nil)
	w.down = w.absent11
	w.absent10 = exchange(t10, w.general, w.weak, "ACTIVE", nil)
	w.year16 = exchange(t16, w.general, w.weak, "ACTIVE", nil)
	w.noShow = exchange(noShowT, w.general, w.weak, "PUBLISHED", nil)
	w.up = exchange(upT, w.general, w.quality, "ACTIVE", map[string]any{"volunteer": true})
	w.pair = newID()
	ops = append(ops, upsert("mentoringPair", w.pair, map[string]any{"mentorId": absentT, "menteeId": mentee, "schoolId": w.weak,
		"subject": "数学", "academicYear": "2026-2027"}))
	for i := range 5 {
		ops = append(ops, upsert("mentoringActivity", newID(), map[string]any{"pairId": w.pair, "date": weekdays[i*3].String(), "kind": "OBSERVE"}))
	}

	// Attendance: 11 ABSENT in a row; 10 in a row; 16 in the year in runs of 2.
	att := func(x string, i int, status string) {
		ops = append(ops, upsert("attendance", newID(), map[string]any{"exchangeId": x, "date": weekdays[i].String(), "status": status}))
	}
	for i := range 30 {
		s := "PRESENT"
		if i >= 5 && i < 16 {
			s = "ABSENT"
		}
		att(w.absent11, i, s)
		s = "PRESENT"
		if i >= 5 && i < 15 {
			s = "ABSENT"
		}
		att(w.absent10, i, s)
	}
	for i := range 24 {
		s := "PRESENT"
		if i%3 != 2 {
			s = "ABSENT"
		}
		att(w.year16, i, s) // 16 ABSENT in runs of 2
	}
	// Lessons of w.down: 3 a day for the first 20 school days, 4 demonstration lessons.
	for i := range 20 {
		for p := 1; p <= 3; p++ {
			kind := "REGULAR"
			if p == 1 && i%5 == 0 {
				kind = "DEMONSTRATION"
			}
			ops = append(ops, upsert("lesson", newID(), map[string]any{"exchangeId": w.down, "date": weekdays[i].String(), "period": float64(p), "subject": "数学", "kind": kind}))
		}
	}
	MustApply(tb, sys(), w.store, ops...)
	return w
}

func districtAdmin(district string) context.Context {
	return jiaoliu.NewContextWithActor(context.Background(), &jiaoliu.Actor{UserID: newID(), Role: jiaoliu.RoleDistrictAdmin, DistrictID: district})
}

func TestPolicyViews(t *testing.T) {
	w := newPolicyWorld(t)
	ctx := districtAdmin(w.district)
	year := jiaoliu.AcademicYear("2026-2027")

	t.Run("Eligibility", func(t *testing.T) {
		list, err := w.store.Eligibility(ctx, w.district, year, "")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, e := range list.Teachers {
			got[e.TeacherName] = string(e.Status)
		}
		want := map[string]string{
			"杨国强": "MUST_ROTATE", "赵志强": "MUST_ROTATE", "刘洋": "MUST_ROTATE", "王丽": "MUST_ROTATE", "许志刚": "MUST_ROTATE",
			"郑婷": "MUST_ROTATE", "陈静": "MUST_ROTATE", "冯浩": "MAY_VOLUNTEER", "吴海峰": "EXEMPT", "韩雪": "DEFERRED",
			"李明": "EXEMPT", "孙强": "MAY_VOLUNTEER", "牛梓涵": "MAY_VOLUNTEER",
		}
		if diff := mapDiff(want, got); diff != "" {
			t.Fatalf("eligibility:\n%s", diff)
		}
		s := list.Summary
		if s.MustRotate != 7 || s.Deferred != 1 || s.Exempt != 2 || s.MayVolunteer != 3 || s.Volunteers != 1 {
			t.Fatalf("summary=%+v", s)
		}
	})

	t.Run("Quotas", func(t *testing.T) {
		rep, err := w.store.Quotas(ctx, w.district, year)
		if err != nil {
			t.Fatal(err)
		}
		q := map[string]*jiaoliu.SchoolQuota{}
		for _, s := range rep.Schools {
			q[s.SchoolName] = s
		}
		bh := q["北海小学"]
		// 15% of 7 eligible = 2; one rotates (the no-show and the others go from 川底).
		if bh.Eligible != 7 || bh.Rotating != 1 || bh.Minimum != 2 || bh.Met || bh.Deferred != 1 || bh.BackboneRotating != 1 {
			t.Fatalf("北海小学=%+v", bh)
		}
		cd := q["川底中心小学"]
		if cd.Eligible != 0 || cd.Rotating != 4 || cd.Minimum != 0 || !cd.Met || cd.Volunteers != 1 {
			t.Fatalf("川底中心小学=%+v", cd)
		}
		if q["熊楼小学"].TargetShare != nil {
			t.Fatalf("熊楼小学 has a target")
		}
		if rf := rep.ReverseFlow; rf.QualityToLower != 1 || rf.LowerToQuality != 1 || rf.Holds {
			t.Fatalf("reverse flow=%+v", rf)
		}
		if rep.Totals.Rotating != 5 || rep.Totals.Eligible != 7 || rep.Totals.BackboneRotating != 2 {
			t.Fatalf("totals=%+v", rep.Totals)
		}
	})

	progress := func(t *testing.T, extra int) {
		t.Helper()
		asOf := jiaoliu.MustDate("2026-11-22")
		m, err := w.store.ExchangeProgress(ctx, []string{w.absent11, w.absent10, w.year16, w.noShow, w.down, newID()}, asOf)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 4 { // w.down is w.absent11; the unknown id is left out
			t.Fatalf("progress of %d exchanges, want 4", len(m))
		}
		for _, c := range []struct {
			id          string
			run, absent int
			unqualified bool
		}{
			{w.absent11, 11, 11, true},
			{w.absent10, 10, 10, false},
			{w.year16, 2, 16, true},
		} {
			a := m[c.id].Attendance
			if a.LongestAbsentRun != c.run || a.AbsentInYear != c.absent || a.MustBeUnqualified != c.unqualified {
				t.Errorf("attendance of %s=%+v", m[c.id].TeacherName, a)
			}
		}
		if r := m[w.noShow].Report; r.State != jiaoliu.ReportResignationCase || r.DaysLate != 82 {
			t.Errorf("no-show=%+v", r)
		}
		down := m[w.down]
		if down.Duties[0].Done != 4+extra || down.Workload.Lessons != 60+extra || down.Workload.Weeks != 4 || !*down.Workload.Met {
			t.Errorf("duties=%+v workload=%+v", down.Duties[0], down.Workload)
		}
		// 2026-09-09 is the Wednesday of the first week: 3 days of lessons counted.
		m, err = w.store.ExchangeProgress(ctx, []string{w.down}, jiaoliu.MustDate("2026-09-09"))
		if err != nil {
			t.Fatal(err)
		}
		if p := m[w.down]; p.Workload.Lessons != 9+extra || p.Workload.Weeks != 1 || p.Duties[0].Done != 1+extra || p.Attendance.Present != 3 {
			t.Fatalf("workload=%+v demonstration=%+v attendance=%+v", p.Workload, p.Duties[0], p.Attendance)
		}
		m, err = w.store.ExchangeProgress(ctx, []string{w.down}, jiaoliu.MustDate("2026-09-06"))
		if err != nil {
			t.Fatal(err)
		}
		if p := m[w.down]; p.Workload.Lessons != 0 || p.Attendance.Present != 0 {
			t.Fatalf("before the first lesson: %+v", p.Workload)
		}
	}
	t.Run("ProgressFromDeltaRows", func(t *testing.T) { progress(t, 0) })
	t.Run("ProgressFromFoldedRows", func(t *testing.T) {
		if _, err := w.store.CompactExchangeStats(context.Background()); err != nil {
			t.Fatal(err)
		}
		progress(t, 0)
	})
	t.Run("ProgressFromFoldedAndDeltaRows", func(t *testing.T) {
		// One more demonstration lesson on the first Tuesday, after the folding.
		MustApply(t, sys(), w.store, upsert("lesson", newID(), map[string]any{"exchangeId": w.down, "date": weekdays[1].String(),
			"period": float64(6), "subject": "数学", "kind": "DEMONSTRATION"}))
		progress(t, 1)
	})

	t.Run("Dashboards", func(t *testing.T) {
		asOf := jiaoliu.MustDate("2026-11-22")
		d, err := w.store.DistrictDashboard(ctx, w.district, year, asOf)
		if err != nil {
			t.Fatal(err)
		}
		if d.Progress.Exchanges != 5 || d.Progress.MustBeUnqualified != 2 || d.Progress.ResignationCases != 1 || d.Pairs.Pairs != 1 {
			t.Fatalf("progress=%+v pairs=%+v", d.Progress, d.Pairs)
		}
		if len(d.SchoolsBelowTarget) != 1 || d.ReverseFlow.Holds || len(d.Alerts) == 0 {
			t.Fatalf("below=%d reverse=%+v alerts=%d", len(d.SchoolsBelowTarget), d.ReverseFlow, len(d.Alerts))
		}
		s, err := w.store.SchoolDashboard(ctx, w.quality, year, asOf)
		if err != nil {
			t.Fatal(err)
		}
		if s.Quota == nil || s.Quota.Eligible != 7 || len(s.Sent) != 1 || len(s.Received) != 1 || len(s.Teachers) != 11 {
			t.Fatalf("school dashboard: quota=%+v sent=%d received=%d teachers=%d", s.Quota, len(s.Sent), len(s.Received), len(s.Teachers))
		}
	})

	t.Run("PairProgress", func(t *testing.T) {
		m, err := w.store.PairProgress(ctx, []string{w.pair}, jiaoliu.MustDate("2026-11-22"))
		if err != nil {
			t.Fatal(err)
		}
		if p := m[w.pair]; p == nil || p.Done != 5 || p.Required != 8 || p.Met {
			t.Fatalf("pair=%+v", p)
		}
	})

	t.Run("Promotion", func(t *testing.T) {
		pc, err := w.store.PromotionCheck(ctx, w.joiner, jiaoliu.MustDate("2026-11-22"))
		if err != nil {
			t.Fatal(err)
		}
		if pc.Schools != 1 || pc.SeniorTitle.Met {
			t.Fatalf("promotion=%+v", pc)
		}
	})

	t.Run("Scope", func(t *testing.T) {
		other := districtAdmin(w.other)
		if _, err := w.store.Quotas(other, w.district, year); jiaoliu.ErrorCode(err) != jiaoliu.EFORBIDDEN {
			t.Fatalf("another district's admin: %v", err)
		}
		teacher := jiaoliu.NewContextWithActor(context.Background(), &jiaoliu.Actor{UserID: newID(), Role: jiaoliu.RoleTeacher, TeacherID: w.turns50})
		if _, err := w.store.Eligibility(teacher, w.district, year, ""); jiaoliu.ErrorCode(err) != jiaoliu.EFORBIDDEN {
			t.Fatalf("teacher: %v", err)
		}
		if _, err := w.store.DistrictDashboard(teacher, w.district, year, jiaoliu.MustDate("2026-11-22")); jiaoliu.ErrorCode(err) != jiaoliu.EFORBIDDEN {
			t.Fatalf("teacher dashboard: %v", err)
		}
		school := jiaoliu.NewContextWithActor(context.Background(), &jiaoliu.Actor{UserID: newID(), Role: jiaoliu.RoleSchoolAdmin, SchoolID: w.general, DistrictID: w.district})
		list, err := w.store.Eligibility(school, w.district, year, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Teachers) != 1 || list.Teachers[0].TeacherName != "孙强" {
			t.Fatalf("school admin sees %d teachers", len(list.Teachers))
		}
		rep, err := w.store.Quotas(school, w.district, year)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Schools) != 1 || rep.ReverseFlow != nil {
			t.Fatalf("school admin quotas: %d schools", len(rep.Schools))
		}
		if _, err := w.store.SchoolDashboard(school, w.quality, year, jiaoliu.MustDate("2026-11-22")); jiaoliu.ErrorCode(err) != jiaoliu.EFORBIDDEN {
			t.Fatalf("another school's dashboard: %v", err)
		}
		if _, err := w.store.Quotas(ctx, w.district, "2030-2031"); jiaoliu.ErrorCode(err) != jiaoliu.ENOTFOUND {
			t.Fatalf("no policy: %v", err)
		}
	})
}

// TestTeacherCacheFollowsChanges checks that the district views never serve teachers
// from before a change (the cache of decoded teachers is checked on every use).
func TestTeacherCacheFollowsChanges(t *testing.T) {
	w := newPolicyWorld(t)
	ctx := districtAdmin(w.district)
	mustRotate := func() int {
		t.Helper()
		list, err := w.store.Eligibility(ctx, w.district, "2026-2027", "")
		if err != nil {
			t.Fatal(err)
		}
		return list.Summary.MustRotate
	}
	if got := mustRotate(); got != 7 {
		t.Fatalf("must rotate %d, want 7", got)
	}
	// 冯浩 joined one day too late; moving his date back a day makes him eligible.
	MustApply(t, sys(), w.store, upsert("teacher", w.joiner, map[string]any{"joinedSchoolOn": "2020-09-01"}))
	if got := mustRotate(); got != 8 {
		t.Fatalf("after a change: must rotate %d, want 8", got)
	}
	MustApply(t, sys(), w.store, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpDelete, Entity: "teacher", ID: w.turns50, HLC: nextHLC()})
	if got := mustRotate(); got != 7 {
		t.Fatalf("after a deletion: must rotate %d, want 7", got)
	}
}

// statsRows reads the weekly buckets as sums per bucket.
func statsRows(tb testing.TB, s *postgres.Store) map[string]string {
	tb.Helper()
	rows, err := s.DB().Query(`SELECT exchange_id::text || ' ' || week::text, format('%s %s %s %s %s %s %s %s %s %s %s %s',
		sum(lessons), sum(demonstration), sum(guidance), sum(delivered), sum(research), sum(surveys), sum(observations), sum(critiques),
		sum(present), sum(leave), sum(sick), sum(absent)) || coalesce(' cumulative ' || format('%s %s %s %s %s',
		max(c_lessons), max(c_demonstration), max(c_present), max(c_absent), max(c_weeks)), '')
		FROM exchange_week_stats GROUP BY exchange_id, week`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			tb.Fatal(err)
		}
		if !strings.HasPrefix(v, "0 0 0 0 0 0 0 0 0 0 0 0") {
			out[k] = v
		}
	}
	return out
}

// TestExchangeStatsFollowTheRecords writes, changes and deletes records through the
// write path at random and checks that the trigger-kept buckets always equal a recount
// from the records, before and after compaction.
func TestExchangeStatsFollowTheRecords(t *testing.T) {
	f := newFixture(t)
	rng := rand.New(rand.NewPCG(5, 5))
	kinds := []string{"REGULAR", "DEMONSTRATION", "GUIDANCE", "DELIVERED"}
	statuses := []string{"PRESENT", "LEAVE", "SICK", "ABSENT"}
	var lessons, att, research, obs []string
	day := func() string { return jiaoliu.MustDate("2027-08-20").AddDays(rng.IntN(30)).String() } // straddles 1 September
	for round := range 6 {
		var ops []jiaoliu.Op
		for range 40 {
			switch r := rng.IntN(10); {
			case r < 3:
				id := newID()
				lessons = append(lessons, id)
				ops = append(ops, upsert("lesson", id, map[string]any{"exchangeId": f.exchange, "date": day(), "period": float64(1 + rng.IntN(12)),
					"subject": "数学", "kind": kinds[rng.IntN(4)]}))
			case r < 4 && len(lessons) > 0:
				ops = append(ops, upsert("lesson", lessons[rng.IntN(len(lessons))], map[string]any{"kind": kinds[rng.IntN(4)], "topic": fmt.Sprint(round)}))
			case r < 5 && len(lessons) > 0:
				ops = append(ops, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpDelete, Entity: "lesson", ID: lessons[rng.IntN(len(lessons))], HLC: nextHLC()})
			case r < 7:
				id := newID()
				att = append(att, id)
				ops = append(ops, upsert("attendance", id, map[string]any{"exchangeId": f.exchange, "date": day(), "status": statuses[rng.IntN(4)]}))
			case r < 8 && len(att) > 0:
				ops = append(ops, upsert("attendance", att[rng.IntN(len(att))], map[string]any{"status": statuses[rng.IntN(4)]}))
			case r < 9:
				id := newID()
				research = append(research, id)
				ops = append(ops, upsert("researchActivity", id, map[string]any{"exchangeId": f.exchange, "date": day(), "kind": []string{"SURVEY", "LECTURE"}[rng.IntN(2)]}))
			default:
				id := newID()
				obs = append(obs, id)
				observer := f.teacher
				if rng.IntN(3) == 0 {
					observer = f.other
				}
				observed := f.other
				if observer == f.other {
					observed = f.teacher
				}
				ops = append(ops, upsert("observation", id, map[string]any{"observerId": observer, "observedTeacherId": observed,
					"exchangeId": f.exchange, "date": day(), "critique": rng.IntN(2) == 0}))
			}
		}
		if _, err := f.store.Apply(sys(), jiaoliu.Batch{Ops: ops}); err != nil {
			t.Fatal(err)
		}
		if round%2 == 1 {
			if _, err := f.store.CompactExchangeStats(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Fold what is left, so that every bucket has its cumulative counts, and compare
	// them with those of a rebuild too.
	if _, err := f.store.CompactExchangeStats(context.Background()); err != nil {
		t.Fatal(err)
	}
	kept := statsRows(t, f.store)
	if len(kept) == 0 {
		t.Fatal("no buckets")
	}
	if err := f.store.RebuildExchangeStats(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := mapDiff(statsRows(t, f.store), kept); diff != "" {
		t.Fatalf("buckets kept by the triggers differ from a recount:\n%s", diff)
	}
	var deltas int
	if err := f.store.DB().Get(&deltas, `SELECT count(*) FROM exchange_week_stats WHERE delta`); err != nil || deltas != 0 {
		t.Fatalf("delta rows after a rebuild: %d %v", deltas, err)
	}
}

// mapDiff lists the keys whose values differ, as "key: want → got".
func mapDiff(want, got map[string]string) string {
	var out string
	for k, v := range want {
		if got[k] != v {
			out += fmt.Sprintf("%s: %q → %q\n", k, v, got[k])
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			out += fmt.Sprintf("%s: missing → %q\n", k, v)
		}
	}
	return out
}
