package jiaoliu_test

import (
	"fmt"
	"testing"

	"github.com/jiaoliu/jiaoliu"
)

func attendance(statuses ...string) []*jiaoliu.Attendance {
	// One record per weekday from Monday 2026-11-02; weekends have no record.
	var out []*jiaoliu.Attendance
	day := d("2026-11-02")
	for _, s := range statuses {
		for day.Time().Weekday() == 0 || day.Time().Weekday() == 6 {
			day = day.AddDays(1)
		}
		out = append(out, &jiaoliu.Attendance{ExchangeID: "x1", Date: day, Status: jiaoliu.AttendanceStatus(s)})
		day = day.AddDays(1)
	}
	return out
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestLongestAbsentRun(t *testing.T) {
	const A, P, L, S = "ABSENT", "PRESENT", "LEAVE", "SICK"
	for _, c := range []struct {
		name     string
		statuses []string
		want     int
	}{
		{"none", []string{P, P, P}, 0},
		{"10 in a row across two weekends", repeat(A, 10), 10},
		{"11 in a row", repeat(A, 11), 11},
		{"leave breaks a run", append(append(repeat(A, 6), L), repeat(A, 5)...), 6},
		{"sick breaks a run", append(append(repeat(A, 5), S), repeat(A, 10)...), 10},
		{"present breaks a run", append(append(repeat(A, 10), P), repeat(A, 10)...), 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			run := jiaoliu.LongestAbsentRun(attendance(c.statuses...))
			if run.Length != c.want {
				t.Fatalf("run=%d, want %d", run.Length, c.want)
			}
		})
	}
	t.Run("days without a record neither count nor break", func(t *testing.T) {
		recs := []*jiaoliu.Attendance{
			{Date: d("2026-11-02"), Status: "ABSENT"}, {Date: d("2026-11-20"), Status: "ABSENT"},
			{Date: d("2026-11-05"), Status: "ABSENT"}, // out of order: sorted by date
		}
		if run := jiaoliu.LongestAbsentRun(recs); run.Length != 3 || run.From != d("2026-11-02") || run.To != d("2026-11-20") {
			t.Fatalf("run=%+v, want 3 from 2026-11-02 to 2026-11-20", run)
		}
	})
	t.Run("deleted records are ignored", func(t *testing.T) {
		recs := attendance(repeat("ABSENT", 11)...)
		recs[5].Deleted = true
		if run := jiaoliu.LongestAbsentRun(recs); run.Length != 10 {
			t.Fatalf("run=%d, want 10", run.Length)
		}
	})
}

func TestCheckAttendance(t *testing.T) {
	p := preset(t, "CHUANDI")
	for _, c := range []struct {
		run, year      int
		runEx, yearEx  bool
		mustUnqualifed bool
	}{
		{10, 10, false, false, false},
		{11, 11, true, false, true},
		{2, 15, false, false, false},
		{2, 16, false, true, true},
		{11, 16, true, true, true},
	} {
		t.Run(fmt.Sprintf("run %d year %d", c.run, c.year), func(t *testing.T) {
			a := jiaoliu.ExchangeActivity{Absent: c.year, LongestAbsentRun: jiaoliu.AbsenceRun{Length: c.run, From: d("2026-11-02"), To: d("2026-11-16")}}
			got := p.CheckAttendance(a)
			if got.RunExceeded != c.runEx || got.YearExceeded != c.yearEx || got.MustBeUnqualified != c.mustUnqualifed {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestCheckReport(t *testing.T) {
	p := preset(t, "CHUANDI") // warning after 7 days, resignation after 15
	published := &jiaoliu.Exchange{ID: "x", Status: jiaoliu.StatusPublished, PlannedStart: d("2026-09-01"), PlannedEnd: d("2027-07-15")}
	for _, c := range []struct {
		asOf  string
		state jiaoliu.ReportState
		days  int
	}{
		{"2026-08-31", jiaoliu.ReportNotDue, 0},
		{"2026-09-01", jiaoliu.ReportAwaiting, 0},
		{"2026-09-08", jiaoliu.ReportAwaiting, 7},         // day 7: not yet "超过一周"
		{"2026-09-09", jiaoliu.ReportWarning, 8},          // day 8: warning
		{"2026-09-16", jiaoliu.ReportWarning, 15},         // day 15: not yet "超过半个月"
		{"2026-09-17", jiaoliu.ReportResignationCase, 16}, // day 16: treated as resignation
	} {
		t.Run(c.asOf, func(t *testing.T) {
			got := p.CheckReport(published, d(c.asOf))
			if got.State != c.state || got.DaysLate != c.days {
				t.Fatalf("state=%s days=%d, want %s %d (%s)", got.State, got.DaysLate, c.state, c.days, got.Explanation)
			}
		})
	}
	for _, c := range []struct {
		reported     string
		state        jiaoliu.ReportState
		warn, resign bool
	}{
		{"2026-09-08", jiaoliu.ReportOnTime, false, false},
		{"2026-09-10", jiaoliu.ReportLate, true, false},
		{"2026-09-17", jiaoliu.ReportLate, true, true},
	} {
		t.Run("reported "+c.reported, func(t *testing.T) {
			x := *published
			x.Status, x.ReportedOn = jiaoliu.StatusActive, dp(c.reported)
			got := p.CheckReport(&x, d("2026-11-01"))
			if got.State != c.state || got.Warning != c.warn || got.ResignationCase != c.resign {
				t.Fatalf("got %+v", got)
			}
		})
	}
	x := *published
	x.Status = jiaoliu.StatusRefused
	if got := p.CheckReport(&x, d("2026-11-01")); got.State != jiaoliu.ReportNotApplicable {
		t.Fatalf("refused: state=%s", got.State)
	}
}

func TestDutyWindow(t *testing.T) {
	x := &jiaoliu.Exchange{AcademicYear: "2026-2027", PlannedStart: d("2026-09-01"), PlannedEnd: d("2028-07-15")}
	for _, c := range []struct{ asOf, year, from, to string }{
		{"2026-11-22", "2026-2027", "2026-09-01", "2026-11-22"},
		{"2027-10-01", "2027-2028", "2027-09-01", "2027-10-01"},
		{"2029-01-01", "2027-2028", "2027-09-01", "2028-08-31"},
		{"2026-06-01", "2026-2027", "2026-09-01", "2026-06-01"},
	} {
		y, from, to := jiaoliu.DutyWindow(x, d(c.asOf))
		if string(y) != c.year || from != d(c.from) || to != d(c.to) {
			t.Errorf("asOf %s: %s %s..%s, want %s %s..%s", c.asOf, y, from, to, c.year, c.from, c.to)
		}
	}
}

func TestComputeProgressDuties(t *testing.T) {
	p := preset(t, "CHUANDI")
	receiving := &jiaoliu.School{ID: "r", Name: "朱家沟小学", AverageWeeklyLessons: 12}
	base := jiaoliu.Exchange{ID: "x", TeacherID: "t", Status: jiaoliu.StatusActive, AcademicYear: "2026-2027",
		PlannedStart: d("2026-09-01"), PlannedEnd: d("2027-07-15"), ReportedOn: dp("2026-09-01")}
	full := func(mode jiaoliu.ExchangeMode) *jiaoliu.Exchange { x := base; x.Mode = mode; return &x }

	t.Run("full time: every duty met", func(t *testing.T) {
		pr := jiaoliu.ComputeProgress(jiaoliu.ProgressInput{Policy: p, Exchange: full(jiaoliu.ModeFullTime), Receiving: receiving, AsOf: d("2027-06-30"),
			Activity: jiaoliu.ExchangeActivity{DemonstrationLessons: 4, GuidanceLessons: 4, ResearchActivities: 8, Lessons: 480, LessonWeeks: 40}})
		if pr.DutyStatus != jiaoliu.DutyStatusComplete {
			t.Fatalf("status=%s duties=%+v workload=%+v", pr.DutyStatus, pr.Duties, pr.Workload)
		}
		if len(pr.Duties) != 3 || pr.Workload == nil || *pr.Workload.WeeklyLessons != 12 || !*pr.Workload.Met {
			t.Fatalf("duties=%d workload=%+v", len(pr.Duties), pr.Workload)
		}
	})
	t.Run("full time: 3 of 4 demonstration lessons at the end is not met", func(t *testing.T) {
		pr := jiaoliu.ComputeProgress(jiaoliu.ProgressInput{Policy: p, Exchange: full(jiaoliu.ModeFullTime), Receiving: receiving, AsOf: d("2027-07-15"),
			Activity: jiaoliu.ExchangeActivity{DemonstrationLessons: 3, GuidanceLessons: 4, ResearchActivities: 8, Lessons: 480, LessonWeeks: 40}})
		if pr.DutyStatus != jiaoliu.DutyStatusBehind || pr.Duties[0].Met || pr.Duties[0].ExpectedByNow != 4 {
			t.Fatalf("status=%s demo=%+v", pr.DutyStatus, pr.Duties[0])
		}
	})
	t.Run("full time: workload below the school's average", func(t *testing.T) {
		pr := jiaoliu.ComputeProgress(jiaoliu.ProgressInput{Policy: p, Exchange: full(jiaoliu.ModeFullTime), Receiving: receiving, AsOf: d("2026-10-01"),
			Activity: jiaoliu.ExchangeActivity{DemonstrationLessons: 1, GuidanceLessons: 1, ResearchActivities: 1, Lessons: 43, LessonWeeks: 4}})
		if *pr.Workload.Met || pr.DutyStatus != jiaoliu.DutyStatusBehind {
			t.Fatalf("workload=%+v status=%s", pr.Workload, pr.DutyStatus)
		}
	})
	t.Run("full time: on track early in the year", func(t *testing.T) {
		pr := jiaoliu.ComputeProgress(jiaoliu.ProgressInput{Policy: p, Exchange: full(jiaoliu.ModeFullTime), Receiving: receiving, AsOf: d("2026-10-01"),
			Activity: jiaoliu.ExchangeActivity{DemonstrationLessons: 1, GuidanceLessons: 0, ResearchActivities: 1, Lessons: 48, LessonWeeks: 4}})
		// 31 of 318 service days: 4×31/318 = 0 expected, 8×31/318 = 0.
		if pr.DutyStatus != jiaoliu.DutyStatusOnTrack {
			t.Fatalf("status=%s duties=%+v", pr.DutyStatus, pr.Duties)
		}
	})
	t.Run("lesson delivery", func(t *testing.T) {
		pr := jiaoliu.ComputeProgress(jiaoliu.ProgressInput{Policy: p, Exchange: full(jiaoliu.ModeLessonDelivery), Receiving: receiving, AsOf: d("2027-06-30"),
			Activity: jiaoliu.ExchangeActivity{DeliveredLessons: 8, Critiques: 7, Lessons: 40, LessonWeeks: 20}})
		if len(pr.Duties) != 2 || pr.Duties[0].Duty != jiaoliu.DutyDeliveredLessons || !pr.Duties[0].Met || pr.Duties[1].Met || pr.Workload != nil {
			t.Fatalf("duties=%+v %+v workload=%v", pr.Duties[0], pr.Duties[1], pr.Workload)
		}
	})
	t.Run("secondment: survey report expected at the end", func(t *testing.T) {
		mid := jiaoliu.ComputeProgress(jiaoliu.ProgressInput{Policy: p, Exchange: full(jiaoliu.ModeSecondment), AsOf: d("2027-03-01"),
			Activity: jiaoliu.ExchangeActivity{Observations: 20, ResearchActivities: 16}})
		if mid.Duties[2].Duty != jiaoliu.DutySurveyReport || mid.Duties[2].ExpectedByNow != 0 || mid.DutyStatus != jiaoliu.DutyStatusOnTrack {
			t.Fatalf("mid: %+v status=%s", mid.Duties[2], mid.DutyStatus)
		}
		end := jiaoliu.ComputeProgress(jiaoliu.ProgressInput{Policy: p, Exchange: full(jiaoliu.ModeSecondment), AsOf: d("2027-07-20"),
			Activity: jiaoliu.ExchangeActivity{Observations: 20, ResearchActivities: 16, Surveys: 1}})
		if end.DutyStatus != jiaoliu.DutyStatusComplete {
			t.Fatalf("end: status=%s", end.DutyStatus)
		}
	})
	t.Run("published, not reported", func(t *testing.T) {
		x := full(jiaoliu.ModeFullTime)
		x.Status, x.ReportedOn = jiaoliu.StatusPublished, nil
		pr := jiaoliu.ComputeProgress(jiaoliu.ProgressInput{Policy: p, Exchange: x, AsOf: d("2026-09-20")})
		if pr.DutyStatus != jiaoliu.DutyStatusNotStarted || pr.Report.State != jiaoliu.ReportResignationCase {
			t.Fatalf("status=%s report=%s", pr.DutyStatus, pr.Report.State)
		}
		if !hasConsequence(pr.Consequences, jiaoliu.ConsequenceResignation) {
			t.Fatalf("consequences=%v", kinds(pr.Consequences))
		}
	})
}

func hasConsequence(cs []*jiaoliu.Consequence, k jiaoliu.ConsequenceKind) bool {
	for _, c := range cs {
		if c.Kind == k {
			return true
		}
	}
	return false
}

func kinds(cs []*jiaoliu.Consequence) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c.Kind)+" "+c.AcademicYear)
	}
	return out
}

func grade(g jiaoliu.Grade) *jiaoliu.Grade { return &g }

func TestEvaluationSchedule(t *testing.T) {
	x := &jiaoliu.Exchange{ID: "x", Status: jiaoliu.StatusActive, AcademicYear: "2026-2027", PlannedStart: d("2026-09-01"), PlannedEnd: d("2027-07-15"), ReportedOn: dp("2026-09-01")}
	evals := []*jiaoliu.Evaluation{
		{ID: "e1", ExchangeID: "x", Period: jiaoliu.PeriodSemester, Term: "2026-2027-1", Grade: grade(jiaoliu.GradeExcellent), Finalized: true},
		{ID: "e2", ExchangeID: "x", Period: jiaoliu.PeriodSemester, Term: "2026-2027-2"},
	}
	state := func(asOf string) map[string]jiaoliu.EvaluationState {
		out := map[string]jiaoliu.EvaluationState{}
		for _, e := range jiaoliu.EvaluationSchedule(x, evals, d(asOf)) {
			out[string(e.Period)+" "+e.Term] = e.State
		}
		return out
	}
	for _, c := range []struct {
		asOf string
		want map[string]jiaoliu.EvaluationState
	}{
		{"2026-12-31", map[string]jiaoliu.EvaluationState{"SEMESTER 2026-2027-1": "DONE", "SEMESTER 2026-2027-2": "UPCOMING", "ANNUAL 2026-2027": "UPCOMING", "END_OF_EXCHANGE 2026-2027": "UPCOMING"}},
		{"2027-07-01", map[string]jiaoliu.EvaluationState{"SEMESTER 2026-2027-1": "DONE", "SEMESTER 2026-2027-2": "DUE", "ANNUAL 2026-2027": "DUE", "END_OF_EXCHANGE 2026-2027": "DUE"}},
		{"2027-07-31", map[string]jiaoliu.EvaluationState{"SEMESTER 2026-2027-1": "DONE", "SEMESTER 2026-2027-2": "DUE", "ANNUAL 2026-2027": "DUE", "END_OF_EXCHANGE 2026-2027": "DUE"}},
		{"2027-08-01", map[string]jiaoliu.EvaluationState{"SEMESTER 2026-2027-1": "DONE", "SEMESTER 2026-2027-2": "OVERDUE", "ANNUAL 2026-2027": "OVERDUE", "END_OF_EXCHANGE 2026-2027": "DUE"}},
		{"2027-08-15", map[string]jiaoliu.EvaluationState{"SEMESTER 2026-2027-1": "DONE", "SEMESTER 2026-2027-2": "OVERDUE", "ANNUAL 2026-2027": "OVERDUE", "END_OF_EXCHANGE 2026-2027": "OVERDUE"}},
	} {
		got := state(c.asOf)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("as of %s: %v, want %v", c.asOf, got, c.want)
		}
	}
	// A semester evaluation not finalized is overdue after 31 January.
	evals[0].Finalized = false
	if got := state("2027-02-01")["SEMESTER 2026-2027-1"]; got != jiaoliu.EvaluationStateOverdue {
		t.Fatalf("unsigned first semester on 2027-02-01: %s", got)
	}
	// A two-year exchange needs four semesters, two annual and one end evaluation.
	long := *x
	long.PlannedEnd = d("2028-07-15")
	if n := len(jiaoliu.EvaluationSchedule(&long, nil, d("2026-10-01"))); n != 7 {
		t.Fatalf("two-year exchange: %d evaluations, want 7", n)
	}
}

func TestConsequences(t *testing.T) {
	x := &jiaoliu.Exchange{ID: "x", Status: jiaoliu.StatusActive, AcademicYear: "2026-2027"}
	basic := []*jiaoliu.Evaluation{{ID: "e", ExchangeID: "x", Period: jiaoliu.PeriodSemester, Term: "2026-2027-1", Grade: grade(jiaoliu.GradeBasic), Finalized: true}}
	if cs := jiaoliu.Consequences(x, basic, nil, nil, nil); !hasConsequence(cs, jiaoliu.ConsequenceExchangeAgain) {
		t.Fatalf("BASIC: %v", kinds(cs))
	}
	draft := []*jiaoliu.Evaluation{{ID: "e", ExchangeID: "x", Period: jiaoliu.PeriodSemester, Term: "2026-2027-1", Grade: grade(jiaoliu.GradeUnqualified)}}
	if cs := jiaoliu.Consequences(x, draft, nil, nil, nil); len(cs) != 0 {
		t.Fatalf("a draft has no consequence: %v", kinds(cs))
	}
	if cs := jiaoliu.Consequences(x, nil, []string{"2025-2026", "2026-2027"}, nil, nil); !hasConsequence(cs, jiaoliu.ConsequenceContractEnded) {
		t.Fatalf("two consecutive unqualified years: %v", kinds(cs))
	}
	if cs := jiaoliu.Consequences(x, nil, []string{"2024-2025", "2026-2027"}, nil, nil); hasConsequence(cs, jiaoliu.ConsequenceContractEnded) {
		t.Fatalf("two years apart: %v", kinds(cs))
	}
	refused := &jiaoliu.Exchange{ID: "x", Status: jiaoliu.StatusRefused, AcademicYear: "2026-2027"}
	cs := jiaoliu.Consequences(refused, nil, nil, nil, nil)
	if !hasConsequence(cs, jiaoliu.ConsequenceNoAwardOrPromotion) || !hasConsequence(cs, jiaoliu.ConsequenceGradeBelowQualified) {
		t.Fatalf("refused: %v", kinds(cs))
	}
	exchanges := map[string]*jiaoliu.Exchange{"a": {ID: "a", AcademicYear: "2025-2026"}, "b": {ID: "b", AcademicYear: "2026-2027"}}
	years := jiaoliu.UnqualifiedYears(exchanges, []*jiaoliu.Evaluation{
		{ExchangeID: "a", Period: jiaoliu.PeriodEndOfExchange, Term: "2025-2026", Grade: grade(jiaoliu.GradeUnqualified), Finalized: true},
		{ExchangeID: "b", Period: jiaoliu.PeriodSemester, Term: "2026-2027-1", Grade: grade(jiaoliu.GradeUnqualified), Finalized: true},
		{ExchangeID: "b", Period: jiaoliu.PeriodSemester, Term: "2026-2027-2", Grade: grade(jiaoliu.GradeUnqualified), Finalized: true},
	})
	if fmt.Sprint(years) != "[2025-2026 2026-2027]" {
		t.Fatalf("unqualified years=%v", years)
	}
}

func TestComputePairProgress(t *testing.T) {
	p := preset(t, "CHUANDI")
	pair := &jiaoliu.MentoringPair{ID: "p", AcademicYear: "2026-2027", Status: jiaoliu.PairActive}
	for _, c := range []struct {
		n       int
		asOf    string
		met     bool
		onTrack bool
	}{
		{7, "2027-08-31", false, false},
		{8, "2027-08-31", true, true},
		{2, "2026-12-01", false, true}, // 92 of 365 days: 8×92/365 = 2 expected
		{1, "2026-12-01", false, false},
	} {
		pp := jiaoliu.ComputePairProgress(p, pair, map[jiaoliu.MentoringKind]int{jiaoliu.MentoringObserve: c.n}, d(c.asOf))
		if pp.Done != c.n || pp.Met != c.met || pp.OnTrack != c.onTrack {
			t.Errorf("%d as of %s: %+v", c.n, c.asOf, pp)
		}
	}
}

// TestCheckLength applies the minimum-length rule of the domain table ("minimum length:
// ≥1 year; ≥2 years urban-to-rural; ≥3 academic years (Yulin); ≥3 years inside a school
// group; principals one term (4 years)"), counting the planned period in semesters.
func TestCheckLength(t *testing.T) {
	chuandi, yulin := preset(t, "CHUANDI"), preset(t, "YULIN")
	group := "g1"
	urban := &jiaoliu.School{ID: "u", Locality: jiaoliu.LocalityUrban, Tier: jiaoliu.TierQuality}
	town := &jiaoliu.School{ID: "t", Locality: jiaoliu.LocalityTown, Tier: jiaoliu.TierGeneral}
	rural := &jiaoliu.School{ID: "r", Locality: jiaoliu.LocalityRural, Tier: jiaoliu.TierWeak}
	point := &jiaoliu.School{ID: "p", Locality: jiaoliu.LocalityTeachingPoint, Tier: jiaoliu.TierWeak}
	mainCampus := &jiaoliu.School{ID: "m", Locality: jiaoliu.LocalityUrban, Tier: jiaoliu.TierQuality, GroupID: &group}
	branch := &jiaoliu.School{ID: "b", Locality: jiaoliu.LocalityTown, Tier: jiaoliu.TierGeneral, GroupID: &group}
	for _, c := range []struct {
		name              string
		p                 jiaoliu.PolicyParams
		mode              jiaoliu.ExchangeMode
		pos               jiaoliu.Position
		from, to          *jiaoliu.School
		start, end        string
		basis             jiaoliu.LengthBasis
		required, planned int
		met               bool
	}{
		{"≥1 year: one school year (1 September to 15 July) is a year", chuandi, jiaoliu.ModeFullTime, jiaoliu.PositionTeacher, town, rural,
			"2026-09-01", "2027-07-15", jiaoliu.LengthGeneral, 1, 2, true},
		{"≥1 year: one semester is not", chuandi, jiaoliu.ModeFullTime, jiaoliu.PositionTeacher, town, rural,
			"2026-09-01", "2027-01-20", jiaoliu.LengthGeneral, 1, 1, false},
		{"a semester counts from half of its days: 1 September to 15 November is not half", chuandi, jiaoliu.ModeFullTime, jiaoliu.PositionTeacher, town, rural,
			"2026-09-01", "2026-11-15", jiaoliu.LengthGeneral, 1, 0, false},
		{"≥2 years urban to rural: one year is short", chuandi, jiaoliu.ModeFullTime, jiaoliu.PositionTeacher, urban, rural,
			"2026-09-01", "2027-07-15", jiaoliu.LengthUrbanToRural, 2, 2, false},
		{"≥2 years urban to a teaching point: two years", chuandi, jiaoliu.ModeFullTime, jiaoliu.PositionTeacher, urban, point,
			"2026-09-01", "2028-07-15", jiaoliu.LengthUrbanToRural, 2, 4, true},
		{"a town school is not urban", chuandi, jiaoliu.ModeFullTime, jiaoliu.PositionTeacher, town, point,
			"2026-09-01", "2027-07-15", jiaoliu.LengthGeneral, 1, 2, true},
		{"≥3 years inside a school group (same group)", chuandi, jiaoliu.ModePairedSupport, jiaoliu.PositionTeacher, mainCampus, branch,
			"2026-09-01", "2028-07-15", jiaoliu.LengthGroup, 3, 4, false},
		{"≥3 years inside a school group (mode)", chuandi, jiaoliu.ModeGroupInternal, jiaoliu.PositionTeacher, town, rural,
			"2026-09-01", "2029-07-15", jiaoliu.LengthGroup, 3, 6, true},
		{"principals one term (4 years)", chuandi, jiaoliu.ModeFullTime, jiaoliu.PositionPrincipal, urban, rural,
			"2026-09-01", "2029-07-15", jiaoliu.LengthPrincipal, 4, 6, false},
		{"Yulin ≥3 academic years", yulin, jiaoliu.ModeFullTime, jiaoliu.PositionTeacher, town, rural,
			"2026-09-01", "2029-07-15", jiaoliu.LengthGeneral, 3, 6, true},
		{"Yulin: two years are short", yulin, jiaoliu.ModeFullTime, jiaoliu.PositionTeacher, town, rural,
			"2026-09-01", "2028-07-15", jiaoliu.LengthGeneral, 3, 4, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := &jiaoliu.Exchange{Mode: c.mode, PlannedStart: d(c.start), PlannedEnd: d(c.end)}
			got := c.p.CheckLength(x, c.pos, c.from, c.to)
			if got.Basis != c.basis || got.RequiredYears != c.required || got.PlannedSemesters != c.planned || got.Met != c.met {
				t.Fatalf("got %+v, want %s %d %d %v", got, c.basis, c.required, c.planned, c.met)
			}
			if got.Explanation == "" {
				t.Fatal("no explanation")
			}
		})
	}
}

// TestComputeProgressOfAYear checks that a progress judged on a given academic year (a
// dashboard of last year) expects that year's duties, not those of the year of asOf.
func TestComputeProgressOfAYear(t *testing.T) {
	p := preset(t, "CHUANDI")
	x := &jiaoliu.Exchange{ID: "x", TeacherID: "t", Status: jiaoliu.StatusActive, Mode: jiaoliu.ModeFullTime, AcademicYear: "2025-2026",
		PlannedStart: d("2025-09-01"), PlannedEnd: d("2027-07-15"), ReportedOn: dp("2025-09-01")}
	act := jiaoliu.ExchangeActivity{DemonstrationLessons: 4, GuidanceLessons: 4, ResearchActivities: 8}
	pr := jiaoliu.ComputeProgress(jiaoliu.ProgressInput{Policy: p, Exchange: x, AsOf: d("2026-10-01"), Activity: act, Year: "2025-2026"})
	if pr.AcademicYear != "2025-2026" || pr.From != d("2025-09-01") || pr.To != d("2026-08-31") || pr.DutyStatus != jiaoliu.DutyStatusComplete {
		t.Fatalf("year=%s %s..%s status=%s", pr.AcademicYear, pr.From, pr.To, pr.DutyStatus)
	}
	for _, duty := range pr.Duties {
		if duty.ExpectedByNow != duty.Required {
			t.Fatalf("a past year expects every duty: %+v", duty)
		}
	}
	pr = jiaoliu.ComputeProgress(jiaoliu.ProgressInput{Policy: p, Exchange: x, AsOf: d("2026-10-01"), Activity: act})
	if pr.AcademicYear != "2026-2027" || pr.From != d("2026-09-01") || pr.To != d("2026-10-01") {
		t.Fatalf("duty year=%s %s..%s", pr.AcademicYear, pr.From, pr.To)
	}
}
