package postgres_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// views is what the district views answer for one district, year and day.
type views struct {
	District    *jiaoliu.DistrictDashboard
	School      *jiaoliu.SchoolDashboard
	Progress    []*jiaoliu.ExchangeProgress
	Eligibility *jiaoliu.EligibilityList
	Quotas      *jiaoliu.QuotaReport
}

func readViews(t *testing.T, s *postgres.Store, w *policyWorld, asOf jiaoliu.Date) *views {
	t.Helper()
	ctx := districtAdmin(w.district)
	y := jiaoliu.AcademicYear("2026-2027")
	v := &views{}
	var err error
	if v.District, err = s.DistrictDashboard(ctx, w.district, y, asOf); err != nil {
		t.Fatal(err)
	}
	if v.School, err = s.SchoolDashboard(ctx, w.weak, y, asOf); err != nil {
		t.Fatal(err)
	}
	if v.Progress, err = s.ExchangeProgressOfYear(ctx, w.district, "", y, asOf); err != nil {
		t.Fatal(err)
	}
	if v.Eligibility, err = s.Eligibility(ctx, w.district, y, ""); err != nil {
		t.Fatal(err)
	}
	if v.Quotas, err = s.Quotas(ctx, w.district, y); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestDashboardCachesSeeEveryWrite writes through Store.Apply, one change at a time, to
// everything the district views read, and checks after each that the views of a store
// that has served them before (and keeps their parts between calls) change, and answer
// exactly what a new store (nothing cached) answers — with the weekly counters
// unfolded, folded, and folded after the write and before the next view, and rebuilt.
func TestDashboardCachesSeeEveryWrite(t *testing.T) {
	w := newPolicyWorld(t)
	asOf := weekdays[42] // a Wednesday: its week is recounted from the records
	if wd := asOf.Time().Weekday(); wd != 3 {
		t.Fatalf("as of %v, a %v", asOf, wd)
	}
	other := 43 // the next day after asOf not yet asked
	check := func(step string, wantChange bool, prev *views) *views {
		t.Helper()
		cached := readViews(t, w.store, w, asOf)
		fresh := readViews(t, postgres.NewStore(w.store.DB(), hlc.NewClock("fresh"), nil), w, asOf)
		if !reflect.DeepEqual(cached, fresh) {
			t.Fatalf("%s: the views of the caching store differ from a new store's", step)
		}
		// A day the caching store has not been asked: what it keeps for every day (the
		// days of the pairs' activities) follows the writes too.
		day := weekdays[min(other, len(weekdays)-1)]
		other++
		if !reflect.DeepEqual(readViews(t, w.store, w, day), readViews(t, postgres.NewStore(w.store.DB(), hlc.NewClock("fresh"), nil), w, day)) {
			t.Fatalf("%s: as of %v, a day not asked before, the views of the caching store differ from a new store's", step, day)
		}
		if prev != nil && reflect.DeepEqual(cached, prev) == wantChange {
			t.Fatalf("%s: views changed %v, want %v", step, !wantChange, wantChange)
		}
		return cached
	}
	compact := func() {
		t.Helper()
		if _, err := w.store.CompactExchangeStats(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	apply := func(ops ...jiaoliu.Op) { MustApply(t, sys(), w.store, ops...) }

	compact()
	v := check("start", false, nil)
	v = check("again", false, v)

	// A lesson in the week of asOf and one in an earlier week: delta rows, then folded.
	lesson := newID()
	apply(upsert("lesson", lesson, map[string]any{"exchangeId": w.down, "date": weekdays[41].String(), "period": 1.0, "subject": "数学", "kind": "DEMONSTRATION"}))
	v = check("lesson this week, unfolded", true, v)
	compact()
	v = check("folded", false, v)
	apply(upsert("lesson", newID(), map[string]any{"exchangeId": w.up, "date": weekdays[30].String(), "period": 2.0, "subject": "数学", "kind": "GUIDANCE"}))
	compact() // folded before the next view: only the log tells
	v = check("lesson of an earlier week, folded before the view", true, v)
	apply(jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpDelete, Entity: "lesson", ID: lesson, HLC: nextHLC()})
	v = check("lesson deleted", true, v)
	compact()

	// Absences: the 10-day run becomes 11 (must be unqualified).
	apply(upsert("attendance", newID(), map[string]any{"exchangeId": w.absent10, "date": weekdays[15].String(), "status": "ABSENT"}))
	v = check("absence", true, v)
	compact()
	v = check("absence folded", false, v)

	// A finalized UNQUALIFIED grade, a deferral, a teacher's birth date, a school's tier,
	// the policy, an exchange's status, a mentoring activity.
	apply(upsert("evaluation", newID(), map[string]any{"exchangeId": w.absent11, "period": "SEMESTER", "term": "2026-2027-1",
		"evaluatorSchoolId": w.weak, "grade": "UNQUALIFIED", "finalized": true}))
	v = check("evaluation", true, v)
	apply(upsert("deferral", newID(), map[string]any{"teacherId": w.turns50, "reason": "MEDICAL", "startsOn": "2026-08-01", "expiresOn": "2027-08-01", "approved": true}))
	v = check("deferral", true, v)
	apply(upsert("teacher", w.joiner, map[string]any{"joinedSchoolOn": "2020-09-01"}))
	v = check("teacher", true, v)
	apply(upsert("school", w.general, map[string]any{"tier": "QUALITY"}))
	v = check("school", true, v)
	var policyID string
	if err := w.store.DB().Get(&policyID, `SELECT id::text FROM policies WHERE district_id = $1`, w.district); err != nil {
		t.Fatal(err)
	}
	apply(upsert("policy", policyID, map[string]any{"fullTimeDemonstration": 2.0}))
	v = check("policy", true, v)
	apply(upsert("exchange", w.noShow, map[string]any{"status": "ACTIVE", "reportedOn": weekdays[3].String()}))
	v = check("exchange", true, v)
	apply(upsert("mentoringActivity", newID(), map[string]any{"pairId": w.pair, "date": weekdays[40].String(), "kind": "CRITIQUE"}))
	v = check("mentoring activity", true, v)

	// A rebuild recounts everything: same answers.
	if err := w.store.RebuildExchangeStats(context.Background()); err != nil {
		t.Fatal(err)
	}
	check("rebuilt", false, v)
}

// TestDashboardCachesConcurrently serves the views from several goroutines while
// lessons and absences are written and folded (run it with -race), then checks that
// once the writes are done the caching store answers what a new store answers.
func TestDashboardCachesConcurrently(t *testing.T) {
	w := newPolicyWorld(t)
	asOf := weekdays[42]
	ctx := districtAdmin(w.district)
	y := jiaoliu.AcademicYear("2026-2027")
	done := make(chan struct{})
	errs := make(chan error, 8)
	for g := range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				var err error
				if g%2 == 0 {
					_, err = w.store.DistrictDashboard(ctx, w.district, y, asOf)
				} else {
					_, err = w.store.SchoolDashboard(ctx, w.weak, y, asOf)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range 12 {
		MustApply(t, sys(), w.store,
			upsert("lesson", newID(), map[string]any{"exchangeId": w.up, "date": weekdays[30+i].String(), "period": 5.0, "subject": "数学", "kind": "DEMONSTRATION"}),
			upsert("attendance", newID(), map[string]any{"exchangeId": w.up, "date": weekdays[30+i].String(), "status": "ABSENT"}))
		if i%3 == 2 {
			if _, err := w.store.CompactExchangeStats(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	cached := readViews(t, w.store, w, asOf)
	fresh := readViews(t, postgres.NewStore(w.store.DB(), hlc.NewClock("fresh"), nil), w, asOf)
	if !reflect.DeepEqual(cached, fresh) {
		t.Fatal("after concurrent writes, the views of the caching store differ from a new store's")
	}
}

// TestPairsOfAnotherDayAreCountedFromTheirDays: a school's dashboard as of a day not
// asked before counts the mentoring pairs' activities from the days it read for an
// earlier day, reading them again only after a write to the pairs.
func TestPairsOfAnotherDayAreCountedFromTheirDays(t *testing.T) {
	w := newPolicyWorld(t)
	ctx := districtAdmin(w.district)
	y := jiaoliu.AcademicYear("2026-2027")
	doneOf := func(s *postgres.Store, day jiaoliu.Date) int {
		t.Helper()
		d, err := s.SchoolDashboard(ctx, w.weak, y, day)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Pairs {
			if p.PairID == w.pair {
				return p.Done
			}
		}
		t.Fatalf("as of %v: pair %s not on the dashboard", day, w.pair)
		return 0
	}
	done := func(day jiaoliu.Date) int { return doneOf(w.store, day) }
	loads := postgres.PairInputLoads()
	early, late := done(weekdays[10]), done(weekdays[50])
	if n := postgres.PairInputLoads() - loads; n != 1 {
		t.Errorf("two days of pairs read their activities %d times, want once", n)
	}
	if early >= late {
		t.Errorf("activities done by %v: %d, by %v: %d; want more later", weekdays[10], early, weekdays[50], late)
	}
	MustApply(t, sys(), w.store, upsert("mentoringActivity", newID(), map[string]any{"pairId": w.pair, "date": weekdays[30].String(), "kind": "CRITIQUE"}))
	want20 := doneOf(postgres.NewStore(w.store.DB(), hlc.NewClock("fresh"), nil), weekdays[20])
	loads = postgres.PairInputLoads()
	if got := done(weekdays[51]); got != late+1 {
		t.Errorf("after an activity: %d done by %v, want %d", got, weekdays[51], late+1)
	}
	if got := done(weekdays[20]); got != want20 {
		t.Errorf("after an activity on %v: %d done by %v, want %d as a new store counts", weekdays[30], got, weekdays[20], want20)
	}
	if n := postgres.PairInputLoads() - loads; n != 1 {
		t.Errorf("two days after a write read the activities %d times, want once", n)
	}
}
