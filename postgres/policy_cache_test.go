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
	check := func(step string, wantChange bool, prev *views) *views {
		t.Helper()
		cached := readViews(t, w.store, w, asOf)
		fresh := readViews(t, postgres.NewStore(w.store.DB(), hlc.NewClock("fresh"), nil), w, asOf)
		if !reflect.DeepEqual(cached, fresh) {
			t.Fatalf("%s: the views of the caching store differ from a new store's", step)
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
