package demo_test

import (
	"context"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/postgres/demo"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// TestPolicyOnDemoData checks the rules against the boundary cases the demo data set
// promises (see the exported ids of package demo), as 新密市's district administrator.
func TestPolicyOnDemoData(t *testing.T) {
	db := pgtest.NewDB(t)
	store := postgres.NewStore(db, hlc.NewClock("server"), nil)
	if err := demo.Load(context.Background(), db, store); err != nil {
		t.Fatal(err)
	}
	ctx := jiaoliu.NewContextWithActor(context.Background(), &jiaoliu.Actor{UserID: "u", Role: jiaoliu.RoleDistrictAdmin, DistrictID: demo.DistrictID})
	year := jiaoliu.AcademicYear(demo.AcademicYear)

	list, err := store.Eligibility(ctx, demo.DistrictID, year, "")
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*jiaoliu.Eligibility{}
	for _, e := range list.Teachers {
		byID[e.TeacherID] = e
	}
	for _, c := range []struct {
		name   string
		id     string
		status jiaoliu.EligibilityStatus
		age    int
	}{
		{"turns 50 on the reference date", demo.TeacherTurns50ID, jiaoliu.EligibilityMustRotate, 50},
		{"a woman of 50", demo.TeacherTurns50FemaleID, jiaoliu.EligibilityExempt, 50},
		{"49, born the day after", demo.TeacherAge49ID, jiaoliu.EligibilityMustRotate, 49},
		{"exactly 6 years", demo.TeacherSixYearsID, jiaoliu.EligibilityMustRotate, 34},
		{"one day short of 6 years", demo.TeacherFiveYearsID, jiaoliu.EligibilityMayVolunteer, 32},
		{"deferred for pregnancy", demo.TeacherDeferredID, jiaoliu.EligibilityDeferred, 32},
		{"a centre-school principal", demo.PrincipalChuandiID, jiaoliu.EligibilityDeferred, 54},
	} {
		e := byID[c.id]
		if e == nil {
			t.Errorf("%s: not in the list", c.name)
			continue
		}
		if e.Status != c.status || e.Age != c.age {
			t.Errorf("%s: %s age %d, want %s age %d (%s)", c.name, e.Status, e.Age, c.status, c.age, e.Explanation())
		}
	}
	if s := list.Summary; s.MustRotate == 0 || s.Deferred < 5 || len(s.DeferredByReason) < 5 {
		t.Errorf("summary=%+v", s)
	}

	asOf := jiaoliu.MustDate("2027-01-31") // after the autumn term's records
	progress, err := store.ExchangeProgress(ctx, []string{demo.ExchangeAbsentID, demo.ExchangeAbsentTenID, demo.ExchangeAbsentYearID,
		demo.ExchangeLateID, demo.ExchangeNoShowID, demo.ExchangeBasicID, demo.ExchangeFullTimeID, demo.ExchangeRefusedID,
		demo.ExchangeLessonDeliveryID, demo.ExchangeSecondmentID}, asOf)
	if err != nil {
		t.Fatal(err)
	}
	has := func(p *jiaoliu.ExchangeProgress, k jiaoliu.ConsequenceKind) bool {
		for _, c := range p.Consequences {
			if c.Kind == k {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		name        string
		id          string
		run         int
		unqualified bool
	}{
		{"11 ABSENT in a row", demo.ExchangeAbsentID, 11, true},
		{"10 ABSENT in a row", demo.ExchangeAbsentTenID, 10, false},
		{"16 ABSENT in the year", demo.ExchangeAbsentYearID, 2, true},
	} {
		a := progress[c.id].Attendance
		if a.LongestAbsentRun != c.run || a.MustBeUnqualified != c.unqualified {
			t.Errorf("%s: %+v", c.name, a)
		}
	}
	if a := progress[demo.ExchangeAbsentYearID].Attendance; a.AbsentInYear != 16 || !a.YearExceeded || a.RunExceeded {
		t.Errorf("16 in the year: %+v", a)
	}
	if r := progress[demo.ExchangeLateID].Report; r.State != jiaoliu.ReportLate || r.DaysLate != 9 || !r.Warning || r.ResignationCase {
		t.Errorf("late: %+v", r)
	}
	if r := progress[demo.ExchangeNoShowID].Report; r.State != jiaoliu.ReportResignationCase {
		t.Errorf("no-show: %+v", r)
	}
	if !has(progress[demo.ExchangeBasicID], jiaoliu.ConsequenceExchangeAgain) {
		t.Errorf("BASIC: %+v", progress[demo.ExchangeBasicID].Consequences)
	}
	if p := progress[demo.ExchangeRefusedID]; !has(p, jiaoliu.ConsequenceNoAwardOrPromotion) || p.DutyStatus != jiaoliu.DutyStatusNotApplicable {
		t.Errorf("refused: %+v", p)
	}
	if p := progress[demo.ExchangeFullTimeID]; p.DutyStatus == jiaoliu.DutyStatusNotApplicable || p.EvaluationsDone != 1 || len(p.Duties) != 3 {
		t.Errorf("full time: status %s done %d duties %d", p.DutyStatus, p.EvaluationsDone, len(p.Duties))
	}
	if p := progress[demo.ExchangeLessonDeliveryID]; p.Duties[0].Duty != jiaoliu.DutyDeliveredLessons || p.Duties[0].Done == 0 || p.Workload != nil {
		t.Errorf("lesson delivery: %+v", p.Duties[0])
	}
	if p := progress[demo.ExchangeSecondmentID]; p.Duties[0].Duty != jiaoliu.DutyObservations || p.Duties[0].Done == 0 {
		t.Errorf("secondment: %+v", p.Duties[0])
	}

	rep, err := store.Quotas(ctx, demo.DistrictID, year)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.Rotating == 0 || rep.ReverseFlow.QualityToLower == 0 || rep.ReverseFlow.LowerToQuality == 0 {
		t.Errorf("quotas: totals=%+v reverse=%+v", rep.Totals, rep.ReverseFlow)
	}
	d, err := store.DistrictDashboard(ctx, demo.DistrictID, year, asOf)
	if err != nil {
		t.Fatal(err)
	}
	if d.Progress.MustBeUnqualified != 2 || d.Progress.ResignationCases != 1 || d.Pairs.Pairs == 0 {
		t.Errorf("dashboard progress=%+v pairs=%+v", d.Progress, d.Pairs)
	}
	if _, err := store.DistrictDashboard(ctx, demo.OtherDistrictID, year, asOf); jiaoliu.ErrorCode(err) != jiaoliu.EFORBIDDEN {
		t.Errorf("another district: %v", err)
	}
}
