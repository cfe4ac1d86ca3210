package jiaoliu

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// This file holds the rules of an exchange under way: the duties its mode requires
// against what has been logged, the attendance rule, the report-for-duty check, the
// evaluation calendar and the consequences of grades and refusals. Every function takes
// the day it judges ("as of") as a parameter.

// Duty names a duty of an exchange teacher.
type Duty string

// Duties by exchange mode (see DutiesFor).
const (
	DutyDemonstrationLessons Duty = "DEMONSTRATION_LESSONS" // 示范课
	DutyGuidanceLessons      Duty = "GUIDANCE_LESSONS"      // 指导课
	DutyResearchActivities   Duty = "RESEARCH_ACTIVITIES"   // 教研活动
	DutyDeliveredLessons     Duty = "DELIVERED_LESSONS"     // 送课
	DutyCritiques            Duty = "CRITIQUES"             // 评课
	DutyObservations         Duty = "OBSERVATIONS"          // 听课评课
	DutySurveyReport         Duty = "SURVEY_REPORT"         // 调研报告
)

// DutyLabel returns the Chinese name of a duty.
func DutyLabel(d Duty) string { return dutyLabels[d] }

var dutyLabels = map[Duty]string{
	DutyDemonstrationLessons: "示范课", DutyGuidanceLessons: "指导课", DutyResearchActivities: "教研活动",
	DutyDeliveredLessons: "送课", DutyCritiques: "评课", DutyObservations: "听课评课", DutySurveyReport: "调研报告",
}

// DutyRequirement is one duty and the number required per academic year.
type DutyRequirement struct {
	Duty     Duty
	Required int
}

// FullTimeLike reports whether a mode serves the receiving school full time and so has
// the full-time duties and the workload rule: FULL_TIME, ITINERANT, GROUP_INTERNAL and
// PAIRED_SUPPORT (the documents set duties for full-time, lesson-delivery and seconded
// teachers only; the other modes post a teacher full time too).
func FullTimeLike(m ExchangeMode) bool {
	return m == ModeFullTime || m == ModeItinerant || m == ModeGroupInternal || m == ModePairedSupport
}

// DutiesFor returns the yearly duties of an exchange mode under policy p.
func (p PolicyParams) DutiesFor(m ExchangeMode) []DutyRequirement {
	switch {
	case m == ModeLessonDelivery:
		return []DutyRequirement{{DutyDeliveredLessons, p.DeliveryLessons}, {DutyCritiques, p.DeliveryCritiques}}
	case m == ModeSecondment:
		return []DutyRequirement{{DutyObservations, p.SecondmentObservations}, {DutyResearchActivities, p.SecondmentResearch}, {DutySurveyReport, 1}}
	case FullTimeLike(m):
		return []DutyRequirement{{DutyDemonstrationLessons, p.FullTimeDemonstration}, {DutyGuidanceLessons, p.FullTimeGuidance}, {DutyResearchActivities, p.FullTimeResearch}}
	}
	return nil
}

// AbsenceRun is a run of ABSENT attendance records in a row.
type AbsenceRun struct {
	Length   int
	From, To Date
}

// LongestAbsentRun returns the longest run of ABSENT records in a row among an
// exchange's attendance records ordered by date: days without a record neither count
// nor break a run; any other status breaks it. Deleted records are ignored.
func LongestAbsentRun(records []*Attendance) AbsenceRun {
	rs := slices.Clone(records)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Date.Before(rs[j].Date) })
	var best, cur AbsenceRun
	for _, r := range rs {
		if r.Deleted {
			continue
		}
		if r.Status != AttendanceAbsent {
			cur = AbsenceRun{}
			continue
		}
		best = cur.Extend(r.Date, best)
	}
	return best
}

// Extend adds an ABSENT record of day d to the run (records taken in order of date) and
// returns the longer of the run and best, best when as long: the earliest of the
// longest runs.
func (r *AbsenceRun) Extend(d Date, best AbsenceRun) AbsenceRun {
	if r.Length == 0 {
		r.From = d
	}
	r.Length++
	r.To = d
	if r.Length > best.Length {
		return *r
	}
	return best
}

// ExchangeActivity is what has been logged for an exchange inside a window of days
// (From..To, both included): the store counts it, the rules judge it.
type ExchangeActivity struct {
	ExchangeID           string
	From, To             Date
	Lessons              int
	DemonstrationLessons int
	GuidanceLessons      int
	DeliveredLessons     int
	// LessonWeeks counts the weeks (Monday to Sunday, split at 1 September) with at
	// least one lesson.
	LessonWeeks        int
	ResearchActivities int
	Surveys            int
	// Observations and Critiques count the observations the exchange teacher made
	// (observer = the exchange's teacher) linked to the exchange; Critiques those that
	// critiqued the lesson (评课).
	Observations int
	Critiques    int
	Present      int
	Leave        int
	Sick         int
	Absent       int
	// LongestAbsentRun is over all the exchange's records up to To.
	LongestAbsentRun AbsenceRun
}

// done returns what the activity counts for a duty.
func (a *ExchangeActivity) done(d Duty) int {
	switch d {
	case DutyDemonstrationLessons:
		return a.DemonstrationLessons
	case DutyGuidanceLessons:
		return a.GuidanceLessons
	case DutyResearchActivities:
		return a.ResearchActivities
	case DutyDeliveredLessons:
		return a.DeliveredLessons
	case DutyCritiques:
		return a.Critiques
	case DutyObservations:
		return a.Observations
	case DutySurveyReport:
		return a.Surveys
	}
	return 0
}

// DutyWindow returns the academic year whose duties an exchange is judged on as of a
// day (the year of asOf, kept within the exchange's years) and the window of days
// counted: from 1 September of that year to asOf or 31 August, whichever is first.
func DutyWindow(x *Exchange, asOf Date) (AcademicYear, Date, Date) {
	y := AcademicYearOf(asOf)
	first := AcademicYear(x.AcademicYear)
	if _, err := ParseAcademicYear(x.AcademicYear); err != nil {
		first = AcademicYearOf(x.PlannedStart)
	}
	last := AcademicYearOf(x.PlannedEnd.AddDays(-1))
	if last.Start() < first.Start() {
		last = first
	}
	if y.Start() < first.Start() {
		y = first
	}
	if y.Start() > last.Start() {
		y = last
	}
	return y, y.ReferenceDate(), minDate(y.End(), asOf)
}

// YearWindow returns the window of days of academic year y counted as of a day.
func YearWindow(y AcademicYear, asOf Date) (Date, Date) {
	return y.ReferenceDate(), minDate(y.End(), asOf)
}

func minDate(a, b Date) Date {
	if b.Before(a) {
		return b
	}
	return a
}

func maxDate(a, b Date) Date {
	if b.After(a) {
		return b
	}
	return a
}

// DutyProgress is one duty of an exchange for the duty year: required, done, and the
// number expected by now (the required number pro rata of the service days elapsed).
type DutyProgress struct {
	Duty          Duty
	Label         string
	Required      int
	Done          int
	Met           bool
	ExpectedByNow int
	OnTrack       bool
}

// Workload compares the exchange teacher's weekly lessons with the receiving school's
// average teaching load (not below it).
type Workload struct {
	Required      float64
	Lessons       int
	Weeks         int
	WeeklyLessons *float64
	// Met is nil when there is nothing to measure yet (no lessons, or no average set
	// for the receiving school).
	Met *bool
}

// DutyStatus sums up an exchange's duties.
type DutyStatus string

// Duty statuses.
const (
	DutyStatusNotApplicable DutyStatus = "NOT_APPLICABLE" // not an exchange under way (proposed, refused, cancelled …)
	DutyStatusNotStarted    DutyStatus = "NOT_STARTED"    // approved or published, not yet reported, or before its start
	DutyStatusComplete      DutyStatus = "COMPLETE"       // every duty of the year met
	DutyStatusOnTrack       DutyStatus = "ON_TRACK"       // every duty at least at its expected-by-now number
	DutyStatusBehind        DutyStatus = "BEHIND"         // a duty below its expected-by-now number, or the workload below average
)

// AttendanceCheck applies the attendance rule: more than absenceRunLimit ABSENT records
// in a row, or more than absenceYearLimit in the academic year, make the evaluation
// UNQUALIFIED (擅自缺勤超过10天或一年累计超过15天).
type AttendanceCheck struct {
	Present           int
	Leave             int
	Sick              int
	Absent            int
	AbsentInYear      int
	LongestAbsentRun  int
	RunFrom           *Date
	RunTo             *Date
	RunLimit          int
	YearLimit         int
	RunExceeded       bool
	YearExceeded      bool
	MustBeUnqualified bool
	Explanation       string
}

// CheckAttendance applies the attendance rule of policy p to an exchange's activity.
func (p PolicyParams) CheckAttendance(a ExchangeActivity) *AttendanceCheck {
	c := new(AttendanceCheck)
	p.checkAttendance(a, c, new([2]Date))
	return c
}

// checkAttendance is CheckAttendance into c, with the run's days kept in run.
func (p PolicyParams) checkAttendance(a ExchangeActivity, c *AttendanceCheck, run *[2]Date) {
	*c = AttendanceCheck{Present: a.Present, Leave: a.Leave, Sick: a.Sick, Absent: a.Absent, AbsentInYear: a.Absent,
		LongestAbsentRun: a.LongestAbsentRun.Length, RunLimit: p.AbsenceRunLimit, YearLimit: p.AbsenceYearLimit}
	if a.LongestAbsentRun.Length > 0 {
		run[0], run[1] = a.LongestAbsentRun.From, a.LongestAbsentRun.To
		c.RunFrom, c.RunTo = &run[0], &run[1]
	}
	c.RunExceeded = c.LongestAbsentRun > p.AbsenceRunLimit
	c.YearExceeded = c.AbsentInYear > p.AbsenceYearLimit
	c.MustBeUnqualified = c.RunExceeded || c.YearExceeded
	var parts []string
	if c.RunExceeded {
		parts = append(parts, fmt.Sprintf("连续擅自缺勤%d天（%s至%s），超过%d天", c.LongestAbsentRun, c.RunFrom, c.RunTo, p.AbsenceRunLimit))
	}
	if c.YearExceeded {
		parts = append(parts, fmt.Sprintf("本学年累计擅自缺勤%d天，超过%d天", c.AbsentInYear, p.AbsenceYearLimit))
	}
	if c.MustBeUnqualified {
		c.Explanation = strings.Join(parts, "；") + "，考核应定为不合格。"
	} else {
		// Every exchange has this one: without fmt.
		c.Explanation = "最长连续擅自缺勤" + strconv.Itoa(c.LongestAbsentRun) + "天（上限" + strconv.Itoa(p.AbsenceRunLimit) + "天），本学年累计" +
			strconv.Itoa(c.AbsentInYear) + "天（上限" + strconv.Itoa(p.AbsenceYearLimit) + "天），未触及不合格规定。"
	}
}

// ReportState is where an exchange stands on reporting for duty (到岗).
type ReportState string

// Report-for-duty states.
const (
	ReportNotApplicable   ReportState = "NOT_APPLICABLE"   // no obligation to report (proposed, deferred, refused, cancelled)
	ReportNotDue          ReportState = "NOT_DUE"          // before the planned start
	ReportAwaiting        ReportState = "AWAITING"         // not reported, within the grace week
	ReportWarning         ReportState = "WARNING"          // not reported for more than noShowWarningDays: warning
	ReportResignationCase ReportState = "RESIGNATION_CASE" // not reported for more than noShowResignationDays: treated as resignation
	ReportOnTime          ReportState = "ON_TIME"          // reported within noShowWarningDays
	ReportLate            ReportState = "LATE"             // reported after more than noShowWarningDays
)

// ReportCheck is the report-for-duty check of an exchange.
type ReportCheck struct {
	PlannedStart Date
	ReportedOn   *Date
	// DaysLate are the calendar days after the planned start without a report: as of
	// the day judged, or until the report.
	DaysLate        int
	State           ReportState
	Warning         bool
	ResignationCase bool
	Explanation     string
}

// CheckReport applies the no-show rule of policy p to an exchange as of a day: "超过一周"
// (more than noShowWarningDays calendar days after the planned start) gives a warning,
// "超过半个月" (more than noShowResignationDays) is treated as resignation.
func (p PolicyParams) CheckReport(x *Exchange, asOf Date) *ReportCheck {
	c := new(ReportCheck)
	p.checkReport(x, asOf, c)
	return c
}

// checkReport is CheckReport into c.
func (p PolicyParams) checkReport(x *Exchange, asOf Date, c *ReportCheck) {
	*c = ReportCheck{PlannedStart: x.PlannedStart, ReportedOn: x.ReportedOn}
	switch {
	case x.ReportedOn != nil:
		c.DaysLate = max(0, x.ReportedOn.DaysSince(x.PlannedStart))
		c.Warning, c.ResignationCase = c.DaysLate > p.NoShowWarningDays, c.DaysLate > p.NoShowResignationDays
		if c.Warning {
			c.State = ReportLate
			c.Explanation = fmt.Sprintf("计划%s到岗，%s才到岗，迟到%d天（超过%d天）。", x.PlannedStart, *x.ReportedOn, c.DaysLate, p.NoShowWarningDays)
			if c.ResignationCase {
				c.Explanation += fmt.Sprintf("超过%d天未到岗，按自动离职处理的情形须说明。", p.NoShowResignationDays)
			}
		} else {
			c.State = ReportOnTime
			c.Explanation = "计划" + x.PlannedStart.String() + "到岗，" + x.ReportedOn.String() + "已到岗。"
		}
	case x.Status != StatusApproved && x.Status != StatusPublished && x.Status != StatusActive && x.Status != StatusTerminated:
		c.State = ReportNotApplicable
		c.Explanation = fmt.Sprintf("交流状态为%s，无到岗要求。", ExchangeStatusLabel(x.Status))
	case asOf.Before(x.PlannedStart):
		c.State = ReportNotDue
		c.Explanation = fmt.Sprintf("计划%s到岗，尚未到到岗日期。", x.PlannedStart)
	default:
		c.DaysLate = asOf.DaysSince(x.PlannedStart)
		c.Warning, c.ResignationCase = c.DaysLate > p.NoShowWarningDays, c.DaysLate > p.NoShowResignationDays
		switch {
		case c.ResignationCase:
			c.State = ReportResignationCase
			c.Explanation = fmt.Sprintf("计划%s到岗，截至%s已%d天未到岗，超过%d天，按自动离职处理。", x.PlannedStart, asOf, c.DaysLate, p.NoShowResignationDays)
		case c.Warning:
			c.State = ReportWarning
			c.Explanation = fmt.Sprintf("计划%s到岗，截至%s已%d天未到岗，超过%d天，予以警告。", x.PlannedStart, asOf, c.DaysLate, p.NoShowWarningDays)
		default:
			c.State = ReportAwaiting
			c.Explanation = fmt.Sprintf("计划%s到岗，截至%s尚未到岗（第%d天，超过%d天予以警告）。", x.PlannedStart, asOf, c.DaysLate, p.NoShowWarningDays)
		}
	}
}

// EvaluationState is where a required evaluation stands.
type EvaluationState string

// Evaluation states.
const (
	EvaluationStateUpcoming EvaluationState = "UPCOMING" // its period has not reached the evaluation window
	EvaluationStateDue      EvaluationState = "DUE"      // in the evaluation window, not finalized
	EvaluationStateOverdue  EvaluationState = "OVERDUE"  // past the due date, not finalized
	EvaluationStateDone     EvaluationState = "DONE"     // finalized (signed)
)

// EvaluationDue is one evaluation an exchange needs, with its calendar and state.
type EvaluationDue struct {
	Period       EvaluationPeriod
	Term         string
	OpensOn      Date
	DueOn        Date
	State        EvaluationState
	EvaluationID *string
	Grade        *Grade
	// Draft says an evaluation exists but is not finalized.
	Draft bool
}

// Semester is half an academic year: the first from 1 September to 31 January, the
// second from 1 February to 31 August.
type Semester struct {
	Term     string // "2026-2027-1"
	From, To Date
	// OpensOn and DueOn bound the semester evaluation: the last month of teaching,
	// January or July.
	OpensOn, DueOn Date
}

// Semesters returns the two semesters of academic year y.
func (y AcademicYear) Semesters() [2]Semester {
	if c := calendarOf(y.Start()); c != nil && c.name == y {
		return c.semesters
	}
	return y.semesters()
}

func (y AcademicYear) semesters() [2]Semester {
	s, n := y.Start(), y.Start()+1
	return [2]Semester{
		{Term: string(y) + "-1", From: NewDate(s, 9, 1), To: NewDate(n, 1, 31), OpensOn: NewDate(n, 1, 1), DueOn: NewDate(n, 1, 31)},
		{Term: string(y) + "-2", From: NewDate(n, 2, 1), To: NewDate(n, 8, 31), OpensOn: NewDate(n, 7, 1), DueOn: NewDate(n, 7, 31)},
	}
}

// EndOfExchangeWindow is how many days before and after the planned end the
// end-of-exchange evaluation is open.
const (
	EndEvaluationOpensDaysBefore = 30
	EndEvaluationDueDaysAfter    = 30
)

// EvaluationSchedule returns the evaluations an exchange needs as of a day, each with
// its state: for an exchange ACTIVE or COMPLETED, a SEMESTER evaluation for every
// semester its planned period touches (due 31 January or 31 July), an ANNUAL
// evaluation for every academic year it touches (due 31 July), and one END_OF_EXCHANGE
// evaluation (open 30 days before the planned end, due 30 days after). For other
// statuses only the evaluations that exist are listed. An evaluation is matched by
// period and term (any term for END_OF_EXCHANGE); it is DONE once finalized.
func EvaluationSchedule(x *Exchange, evals []*Evaluation, asOf Date) []*EvaluationDue {
	find := func(period EvaluationPeriod, term string) *Evaluation {
		var found *Evaluation
		for _, e := range evals {
			if e.Deleted || e.Period != period || (period != PeriodEndOfExchange && e.Term != term) {
				continue
			}
			if found == nil || (e.Finalized && !found.Finalized) {
				found = e
			}
		}
		return found
	}
	var out []*EvaluationDue
	// The evaluations are allocated together, in backing (sized below): thousands of
	// exchanges per dashboard. Each is complete before the next is appended, so a
	// pointer into an outgrown array still points at its final value.
	var backing []EvaluationDue
	add := func(period EvaluationPeriod, term string, opens, due Date) {
		backing = append(backing, EvaluationDue{Period: period, Term: term, OpensOn: opens, DueOn: due})
		d := &backing[len(backing)-1]
		if e := find(period, term); e != nil {
			id := e.ID
			d.EvaluationID, d.Grade = &id, e.Grade
			if e.Finalized {
				d.State = EvaluationStateDone
				out = append(out, d)
				return
			}
			d.Draft = true
		}
		switch {
		case asOf.Before(opens):
			d.State = EvaluationStateUpcoming
		case asOf.After(due):
			d.State = EvaluationStateOverdue
		default:
			d.State = EvaluationStateDue
		}
		out = append(out, d)
	}
	if x.Status == StatusActive || x.Status == StatusCompleted {
		first := AcademicYearOf(x.PlannedStart)
		last := AcademicYearOf(x.PlannedEnd)
		// At most two semesters and the annual evaluation a year, and the end one.
		n := 3*max(0, last.Start()-first.Start()+1) + 1
		backing, out = make([]EvaluationDue, 0, n), make([]*EvaluationDue, 0, n)
		for y := first; y.Start() <= last.Start(); y = y.Next() {
			sem := y.Semesters()
			for _, s := range sem {
				if !s.To.Before(x.PlannedStart) && !s.From.After(x.PlannedEnd) {
					add(PeriodSemester, s.Term, s.OpensOn, s.DueOn)
				}
			}
			add(PeriodAnnual, string(y), sem[1].OpensOn, sem[1].DueOn)
		}
		add(PeriodEndOfExchange, string(AcademicYearOf(x.PlannedEnd.AddDays(-1))),
			x.PlannedEnd.AddDays(-EndEvaluationOpensDaysBefore), x.PlannedEnd.AddDays(EndEvaluationDueDaysAfter))
		return out
	}
	for _, e := range evals {
		if e.Deleted {
			continue
		}
		id := e.ID
		d := &EvaluationDue{Period: e.Period, Term: e.Term, EvaluationID: &id, Grade: e.Grade, State: EvaluationStateDone, Draft: !e.Finalized}
		if !e.Finalized {
			d.State = EvaluationStateDue
		}
		out = append(out, d)
	}
	return out
}

// ConsequenceKind names a consequence of an exchange's record.
type ConsequenceKind string

// Consequences.
const (
	// ConsequenceExchangeAgain: graded BASIC or UNQUALIFIED — the teacher exchanges again.
	ConsequenceExchangeAgain ConsequenceKind = "EXCHANGE_AGAIN"
	// ConsequenceContractEnded: UNQUALIFIED in two consecutive academic years.
	ConsequenceContractEnded ConsequenceKind = "CONTRACT_ENDED"
	// ConsequenceNoAwardOrPromotion: refused to rotate — no award or promotion that year.
	ConsequenceNoAwardOrPromotion ConsequenceKind = "NO_AWARD_OR_PROMOTION"
	// ConsequenceGradeBelowQualified: refused to rotate — the annual grade is below QUALIFIED.
	ConsequenceGradeBelowQualified ConsequenceKind = "ANNUAL_GRADE_BELOW_QUALIFIED"
	// ConsequenceMustBeUnqualified: the attendance rule makes the evaluation UNQUALIFIED.
	ConsequenceMustBeUnqualified ConsequenceKind = "MUST_BE_UNQUALIFIED"
	// ConsequenceNoShowWarning: not reported for duty for more than a week.
	ConsequenceNoShowWarning ConsequenceKind = "NO_SHOW_WARNING"
	// ConsequenceResignation: not reported for more than half a month: treated as resignation.
	ConsequenceResignation ConsequenceKind = "RESIGNATION_CASE"
)

// Consequence is one consequence with the academic year it concerns and why.
type Consequence struct {
	Kind         ConsequenceKind
	AcademicYear string
	Explanation  string
	EvaluationID *string
}

// EvaluationYear returns the academic year an evaluation concerns: the year its term
// starts with ("2026-2027-1", "2026-2027"), or the exchange's year.
func EvaluationYear(e *Evaluation, x *Exchange) string {
	if len(e.Term) >= 9 {
		if y, err := ParseAcademicYear(e.Term[:9]); err == nil {
			return string(y)
		}
	}
	return x.AcademicYear
}

// GradeLabel returns the Chinese name of a grade.
func GradeLabel(g Grade) string {
	return map[Grade]string{GradeExcellent: "优秀", GradeQualified: "合格", GradeBasic: "基本称职", GradeUnqualified: "不合格"}[g]
}

// UnqualifiedYears returns the academic years in which evaluations of a teacher's
// exchanges were finalized as UNQUALIFIED, sorted.
func UnqualifiedYears(exchanges map[string]*Exchange, evals []*Evaluation) []string {
	set := map[string]bool{}
	for _, e := range evals {
		if x := exchanges[e.ExchangeID]; x != nil && !e.Deleted && e.Finalized && e.Grade != nil && *e.Grade == GradeUnqualified {
			set[EvaluationYear(e, x)] = true
		}
	}
	out := make([]string, 0, len(set))
	for y := range set {
		out = append(out, y)
	}
	sort.Strings(out)
	return out
}

// Consequences returns the consequences of an exchange's record: each finalized BASIC
// or UNQUALIFIED evaluation means exchanging again; UNQUALIFIED in two consecutive
// academic years (unqualifiedYears: all the teacher's exchanges) ends the contract; a
// refusal costs the year's award or promotion and the annual grade; the attendance
// rule and the report-for-duty check add theirs.
func Consequences(x *Exchange, evals []*Evaluation, unqualifiedYears []string, att *AttendanceCheck, rep *ReportCheck) []*Consequence {
	var out []*Consequence
	for _, e := range evals {
		if e.Deleted || !e.Finalized || e.Grade == nil || (*e.Grade != GradeBasic && *e.Grade != GradeUnqualified) {
			continue
		}
		id := e.ID
		out = append(out, &Consequence{Kind: ConsequenceExchangeAgain, AcademicYear: EvaluationYear(e, x), EvaluationID: &id,
			Explanation: fmt.Sprintf("%s考核（%s）为%s，须再次交流。", periodLabel(e.Period), e.Term, GradeLabel(*e.Grade))})
	}
	for i := 1; i < len(unqualifiedYears); i++ {
		a, err1 := ParseAcademicYear(unqualifiedYears[i-1])
		b, err2 := ParseAcademicYear(unqualifiedYears[i])
		if err1 == nil && err2 == nil && b.Start() == a.Start()+1 {
			out = append(out, &Consequence{Kind: ConsequenceContractEnded, AcademicYear: string(b),
				Explanation: fmt.Sprintf("%s和%s两个学年考核均为不合格，解除聘用合同。", a, b)})
		}
	}
	if x.Status == StatusRefused {
		out = append(out,
			&Consequence{Kind: ConsequenceNoAwardOrPromotion, AcademicYear: x.AcademicYear,
				Explanation: fmt.Sprintf("拒不交流：%s学年不得评优评先、不得晋升职称。", x.AcademicYear)},
			&Consequence{Kind: ConsequenceGradeBelowQualified, AcademicYear: x.AcademicYear,
				Explanation: fmt.Sprintf("拒不交流：%s学年年度考核不得定为合格及以上等次。", x.AcademicYear)})
	}
	if att != nil && att.MustBeUnqualified {
		out = append(out, &Consequence{Kind: ConsequenceMustBeUnqualified, AcademicYear: x.AcademicYear, Explanation: att.Explanation})
	}
	if rep != nil {
		switch {
		case rep.ResignationCase:
			out = append(out, &Consequence{Kind: ConsequenceResignation, AcademicYear: x.AcademicYear, Explanation: rep.Explanation})
		case rep.Warning:
			out = append(out, &Consequence{Kind: ConsequenceNoShowWarning, AcademicYear: x.AcademicYear, Explanation: rep.Explanation})
		}
	}
	return out
}

func periodLabel(p EvaluationPeriod) string {
	return map[EvaluationPeriod]string{PeriodSemester: "学期", PeriodAnnual: "年度", PeriodEndOfExchange: "交流期满"}[p]
}

// LengthBasis says which minimum length applies to an exchange.
type LengthBasis string

// Minimum-length bases, from the most specific.
const (
	LengthPrincipal    LengthBasis = "PRINCIPAL"      // a principal: one term (principalTermYears)
	LengthGroup        LengthBasis = "GROUP"          // inside a school group (minYearsGroup)
	LengthUrbanToRural LengthBasis = "URBAN_TO_RURAL" // an urban school to a rural school or teaching point (minYearsUrbanToRural)
	LengthGeneral      LengthBasis = "GENERAL"        // any exchange (minYears)
)

// LengthCheck is the minimum-length rule of an exchange (交流期限): at least minYears;
// urban to rural at least minYearsUrbanToRural; inside a school group at least
// minYearsGroup; a principal one term, principalTermYears. The longest that applies is
// required. The planned period is counted in semesters: a semester counts when the
// planned period covers at least half of its days, and two semesters make a year (so
// 1 September to 15 July is one year, 1 September to 20 January half a year).
type LengthCheck struct {
	Basis            LengthBasis
	RequiredYears    int
	PlannedSemesters int
	Met              bool
	Explanation      string
}

// CheckLength applies the minimum-length rule of policy p to exchange x of a teacher in
// position pos; sending and receiving may be nil when unknown.
func (p PolicyParams) CheckLength(x *Exchange, pos Position, sending, receiving *School) *LengthCheck {
	c := new(LengthCheck)
	p.checkLength(x, pos, sending, receiving, c)
	return c
}

// checkLength is CheckLength into c.
func (p PolicyParams) checkLength(x *Exchange, pos Position, sending, receiving *School, c *LengthCheck) {
	*c = LengthCheck{Basis: LengthGeneral, RequiredYears: p.MinYears}
	need := func(b LengthBasis, years int) {
		if years > c.RequiredYears {
			c.Basis, c.RequiredYears = b, years
		}
	}
	if sending != nil && receiving != nil && sending.Locality == LocalityUrban &&
		(receiving.Locality == LocalityRural || receiving.Locality == LocalityTeachingPoint) {
		need(LengthUrbanToRural, p.MinYearsUrbanToRural)
	}
	if x.Mode == ModeGroupInternal || (sending != nil && receiving != nil && sending.GroupID != nil && receiving.GroupID != nil && *sending.GroupID == *receiving.GroupID) {
		need(LengthGroup, p.MinYearsGroup)
	}
	if pos == PositionPrincipal {
		need(LengthPrincipal, p.PrincipalTermYears)
	}
	if !x.PlannedStart.IsZero() && !x.PlannedEnd.Before(x.PlannedStart) {
		for y := AcademicYearOf(x.PlannedStart); y.Start() <= AcademicYearOf(x.PlannedEnd).Start(); y = y.Next() {
			for _, s := range y.Semesters() {
				from, to := maxDate(s.From, x.PlannedStart), minDate(s.To, x.PlannedEnd)
				if !to.Before(from) && 2*(to.DaysSince(from)+1) >= s.To.DaysSince(s.From)+1 {
					c.PlannedSemesters++
				}
			}
		}
	}
	c.Met = c.PlannedSemesters >= 2*c.RequiredYears
	rule := lengthRules[c.Basis]
	verdict := "，不足"
	if c.Met {
		verdict = "，符合"
	}
	// Every exchange has this one: without fmt.
	c.Explanation = "计划交流期" + x.PlannedStart.String() + "至" + x.PlannedEnd.String() + "，计" + strconv.Itoa(c.PlannedSemesters) + "个学期（" +
		strconv.FormatFloat(float64(c.PlannedSemesters)/2, 'g', -1, 64) + "学年）" + verdict + rule + "不少于" + strconv.Itoa(c.RequiredYears) + "年的规定。"
}

var lengthRules = map[LengthBasis]string{LengthPrincipal: "校长交流期限为一个任期", LengthGroup: "集团内交流期限",
	LengthUrbanToRural: "城区到农村学校交流期限", LengthGeneral: "交流期限"}

// Next returns the academic year after y.
func (y AcademicYear) Next() AcademicYear {
	return academicYearFrom(y.Start() + 1)
}

// ExchangeProgress is everything the rules say about one exchange as of a day.
type ExchangeProgress struct {
	ExchangeID          string
	TeacherID           string
	TeacherName         string
	SendingSchoolID     string
	SendingSchoolName   string
	ReceivingSchoolID   string
	ReceivingSchoolName string
	Mode                ExchangeMode
	Status              ExchangeStatus
	AsOf                Date
	// AcademicYear is the duty year; From..To the days counted.
	AcademicYear       string
	From               Date
	To                 Date
	Duties             []*DutyProgress
	DutyStatus         DutyStatus
	Workload           *Workload
	Attendance         *AttendanceCheck
	Report             *ReportCheck
	Evaluations        []*EvaluationDue
	EvaluationsDue     int
	EvaluationsOverdue int
	EvaluationsDone    int
	Consequences       []*Consequence
	// Length is the minimum-length rule (交流期限) applied to the planned period.
	Length *LengthCheck
}

// ProgressInput is what ComputeProgress needs about one exchange.
type ProgressInput struct {
	Policy      PolicyParams
	Exchange    *Exchange
	TeacherName string
	Sending     *School
	Receiving   *School
	Activity    ExchangeActivity
	Evaluations []*Evaluation
	// UnqualifiedYears are the academic years the teacher was graded UNQUALIFIED in (all
	// exchanges), for the two-year rule.
	UnqualifiedYears []string
	AsOf             Date
	// Year, when set, is the academic year the duties are judged on (a dashboard or the
	// progress report of a year); otherwise the duty year of DutyWindow.
	Year AcademicYear
	// Position is the teacher's position (a principal's exchange lasts one term).
	Position Position
}

// ComputeProgress applies the progress rules to one exchange. The activity must have
// been counted over DutyWindow(exchange, asOf), or over YearWindow(in.Year, asOf) when
// in.Year is set.
func ComputeProgress(in ProgressInput) *ExchangeProgress {
	x, p := in.Exchange, in.Policy
	year, from, to := DutyWindow(x, in.AsOf)
	if in.Year != "" {
		year = in.Year
		from, to = YearWindow(year, in.AsOf)
	}
	// The progress and its checks are allocated together: thousands per dashboard.
	blk := &struct {
		pr     ExchangeProgress
		att    AttendanceCheck
		run    [2]Date
		report ReportCheck
		length LengthCheck
	}{}
	pr := &blk.pr
	*pr = ExchangeProgress{ExchangeID: x.ID, TeacherID: x.TeacherID, TeacherName: in.TeacherName,
		SendingSchoolID: x.SendingSchoolID, ReceivingSchoolID: x.ReceivingSchoolID, Mode: x.Mode, Status: x.Status,
		AsOf: in.AsOf, AcademicYear: string(year), From: from, To: to}
	if in.Sending != nil {
		pr.SendingSchoolName = in.Sending.Name
	}
	if in.Receiving != nil {
		pr.ReceivingSchoolName = in.Receiving.Name
	}
	a := in.Activity

	// Service days of the duty year: from the report (or planned start) to the planned end.
	start := x.PlannedStart
	if x.ReportedOn != nil {
		start = *x.ReportedOn
	}
	svcFrom, svcTo := maxDate(from, start), minDate(year.End(), x.PlannedEnd)
	total := svcTo.DaysSince(svcFrom) + 1
	elapsed := min(total, max(0, minDate(to, svcTo).DaysSince(svcFrom)+1))
	allMet, allOnTrack := true, true
	reqs := p.DutiesFor(x.Mode)
	duties := make([]DutyProgress, len(reqs))
	if len(reqs) > 0 {
		pr.Duties = make([]*DutyProgress, 0, len(reqs))
	}
	for i, req := range reqs {
		d := &duties[i]
		*d = DutyProgress{Duty: req.Duty, Label: DutyLabel(req.Duty), Required: req.Required, Done: a.done(req.Duty)}
		d.Met = d.Done >= d.Required
		switch {
		case total <= 0:
			d.ExpectedByNow = 0
		case req.Duty == DutySurveyReport:
			if elapsed >= total {
				d.ExpectedByNow = req.Required
			}
		default:
			d.ExpectedByNow = req.Required * elapsed / total
		}
		d.OnTrack = d.Done >= d.ExpectedByNow
		allMet = allMet && d.Met
		allOnTrack = allOnTrack && d.OnTrack
		pr.Duties = append(pr.Duties, d)
	}
	if FullTimeLike(x.Mode) {
		w := &Workload{Lessons: a.Lessons, Weeks: a.LessonWeeks}
		if in.Receiving != nil {
			w.Required = in.Receiving.AverageWeeklyLessons
		}
		if w.Weeks > 0 {
			v := float64(int(float64(w.Lessons)*100/float64(w.Weeks)+0.5)) / 100
			w.WeeklyLessons = &v
			if w.Required > 0 {
				met := float64(w.Lessons) >= w.Required*float64(w.Weeks)
				w.Met = &met
			}
		}
		pr.Workload = w
		if w.Met != nil && !*w.Met {
			allMet, allOnTrack = false, false
		}
	}
	switch {
	case x.Status != StatusActive && x.Status != StatusCompleted && x.Status != StatusApproved && x.Status != StatusPublished:
		pr.DutyStatus = DutyStatusNotApplicable
	case x.ReportedOn == nil || in.AsOf.Before(svcFrom):
		pr.DutyStatus = DutyStatusNotStarted
	case allMet:
		pr.DutyStatus = DutyStatusComplete
	case allOnTrack:
		pr.DutyStatus = DutyStatusOnTrack
	default:
		pr.DutyStatus = DutyStatusBehind
	}
	p.checkAttendance(a, &blk.att, &blk.run)
	p.checkReport(x, in.AsOf, &blk.report)
	pr.Attendance, pr.Report = &blk.att, &blk.report
	pr.Evaluations = EvaluationSchedule(x, in.Evaluations, in.AsOf)
	for _, e := range pr.Evaluations {
		switch e.State {
		case EvaluationStateDue:
			pr.EvaluationsDue++
		case EvaluationStateOverdue:
			pr.EvaluationsOverdue++
		case EvaluationStateDone:
			pr.EvaluationsDone++
		}
	}
	pr.Consequences = Consequences(x, in.Evaluations, in.UnqualifiedYears, pr.Attendance, pr.Report)
	p.checkLength(x, in.Position, in.Sending, in.Receiving, &blk.length)
	pr.Length = &blk.length
	return pr
}

// PairProgress is a mentoring pair's activities of its academic year against the
// policy's requirement (≥ mentoringActivities per pair per year).
type PairProgress struct {
	PairID        string
	MentorID      string
	MentorName    string
	MenteeID      string
	MenteeName    string
	SchoolID      *string
	Subject       string
	AcademicYear  string
	Status        PairStatus
	AsOf          Date
	From          Date
	To            Date
	Required      int
	Done          int
	Met           bool
	ExpectedByNow int
	OnTrack       bool
	ByKind        []*KindCount
}

// KindCount is a count of records of one kind.
type KindCount struct {
	Kind  string
	Label string
	Count int
}

// MentoringKindLabel returns the Chinese name of a mentoring activity kind.
func MentoringKindLabel(k MentoringKind) string {
	return map[MentoringKind]string{MentoringObserve: "听课", MentoringLessonTalk: "说课", MentoringCritique: "评课",
		MentoringJointPreparation: "集体备课", MentoringResearch: "教研"}[k]
}

// ComputePairProgress counts a pair's activities dated within its academic year up to
// asOf, by kind, against the requirement.
func ComputePairProgress(p PolicyParams, pair *MentoringPair, countsByKind map[MentoringKind]int, asOf Date) *PairProgress {
	pp := &PairProgress{PairID: pair.ID, MentorID: pair.MentorID, MenteeID: pair.MenteeID, SchoolID: pair.SchoolID,
		Subject: pair.Subject, AcademicYear: pair.AcademicYear, Status: pair.Status, AsOf: asOf, Required: p.MentoringActivities}
	y, err := ParseAcademicYear(pair.AcademicYear)
	if err != nil {
		y = AcademicYearOf(asOf)
	}
	pp.From, pp.To = YearWindow(y, asOf)
	for _, k := range Enums["MentoringKind"] {
		n := countsByKind[MentoringKind(k)]
		pp.Done += n
		pp.ByKind = append(pp.ByKind, &KindCount{Kind: k, Label: MentoringKindLabel(MentoringKind(k)), Count: n})
	}
	pp.Met = pp.Done >= pp.Required
	total := y.End().DaysSince(y.ReferenceDate()) + 1
	elapsed := min(total, max(0, pp.To.DaysSince(pp.From)+1))
	pp.ExpectedByNow = pp.Required * elapsed / total
	pp.OnTrack = pp.Done >= pp.ExpectedByNow
	return pp
}
