package jiaoliu

import (
	"context"
	"fmt"
	"sort"
)

// PolicyService answers the questions district and school administrators ask of the
// rules (see the domain document, "What administrators ask the system"). Every method
// reads as the actor of ctx: district administrators and auditors see their district,
// school administrators their school; teachers are refused district views with
// FORBIDDEN. Methods that judge a day take it as asOf.
type PolicyService interface {
	// Eligibility decides every teacher of a district (of one school when schoolID is
	// set, or for a school administrator). Returns NOT_FOUND without a policy for the year.
	Eligibility(ctx context.Context, districtID string, year AcademicYear, schoolID string) (*EligibilityList, error)
	// Quotas computes the quota report of a district for a year.
	Quotas(ctx context.Context, districtID string, year AcademicYear) (*QuotaReport, error)
	// ExchangeProgress applies the progress rules to the readable exchanges among ids;
	// unreadable ids are missing from the map.
	ExchangeProgress(ctx context.Context, ids []string, asOf Date) (map[string]*ExchangeProgress, error)
	// PairProgress counts the activities of the readable mentoring pairs among ids.
	PairProgress(ctx context.Context, ids []string, asOf Date) (map[string]*PairProgress, error)
	// PromotionCheck applies the promotion prerequisites to a readable teacher.
	PromotionCheck(ctx context.Context, teacherID string, asOf Date) (*PromotionCheck, error)
	// DistrictDashboard sums up a district's year as of a day.
	DistrictDashboard(ctx context.Context, districtID string, year AcademicYear, asOf Date) (*DistrictDashboard, error)
	// SchoolDashboard sums up a school's year as of a day.
	SchoolDashboard(ctx context.Context, schoolID string, year AcademicYear, asOf Date) (*SchoolDashboard, error)
}

// EligibilityList is the eligibility of every teacher of a district (or a school) for
// an academic year, with counts by status.
type EligibilityList struct {
	DistrictID    string
	SchoolID      *string
	AcademicYear  string
	ReferenceDate Date
	Policy        *Policy
	Summary       *EligibilitySummary
	Teachers      []*Eligibility
}

// EligibilitySummary counts eligibility decisions.
type EligibilitySummary struct {
	Teachers     int
	MustRotate   int
	MayVolunteer int
	Deferred     int
	Exempt       int
	// Volunteers counts the teachers with a volunteer (个人申报) exchange of the year.
	Volunteers int
	// Rotating counts the teachers with an exchange of the year that counts.
	Rotating         int
	MustRotateCadres int
	DeferredByReason []*KindCount
}

// Summarize counts a list of eligibility decisions.
func Summarize(list []*Eligibility) *EligibilitySummary {
	s := &EligibilitySummary{Teachers: len(list)}
	reasons := map[string]int{}
	for _, e := range list {
		switch e.Status {
		case EligibilityMustRotate:
			s.MustRotate++
			if e.Cadre {
				s.MustRotateCadres++
			}
		case EligibilityMayVolunteer:
			s.MayVolunteer++
		case EligibilityDeferred:
			s.Deferred++
			if e.DeferralReason != nil {
				reasons[string(*e.DeferralReason)]++
			}
		case EligibilityExempt:
			s.Exempt++
		}
		if e.Volunteer {
			s.Volunteers++
		}
		if e.Rotating {
			s.Rotating++
		}
	}
	for _, r := range Enums["DeferralReason"] {
		if n := reasons[r]; n > 0 {
			s.DeferredByReason = append(s.DeferredByReason, &KindCount{Kind: r, Label: DeferralReasonLabel(DeferralReason(r)), Count: n})
		}
	}
	return s
}

// ProgressSummary counts the progress of many exchanges.
type ProgressSummary struct {
	Exchanges          int
	ByStatus           []*KindCount
	ByMode             []*KindCount
	DutiesComplete     int
	DutiesOnTrack      int
	DutiesBehind       int
	DutiesNotStarted   int
	MustBeUnqualified  int
	AbsenceRunExceeded int
	AbsenceYearExceed  int
	NoShowWarnings     int
	ResignationCases   int
	LateReports        int
	EvaluationsDue     int
	EvaluationsOverdue int
	EvaluationsDone    int
	ExchangeAgain      int
	ContractEnded      int
	Refused            int
}

// SummarizeProgress counts a list of exchange progress reports.
func SummarizeProgress(list []*ExchangeProgress) *ProgressSummary {
	s := &ProgressSummary{Exchanges: len(list)}
	status, mode := map[string]int{}, map[string]int{}
	for _, p := range list {
		status[string(p.Status)]++
		mode[string(p.Mode)]++
		switch p.DutyStatus {
		case DutyStatusComplete:
			s.DutiesComplete++
		case DutyStatusOnTrack:
			s.DutiesOnTrack++
		case DutyStatusBehind:
			s.DutiesBehind++
		case DutyStatusNotStarted:
			s.DutiesNotStarted++
		}
		if p.Attendance != nil {
			if p.Attendance.MustBeUnqualified {
				s.MustBeUnqualified++
			}
			if p.Attendance.RunExceeded {
				s.AbsenceRunExceeded++
			}
			if p.Attendance.YearExceeded {
				s.AbsenceYearExceed++
			}
		}
		if p.Report != nil {
			switch p.Report.State {
			case ReportWarning:
				s.NoShowWarnings++
			case ReportResignationCase:
				s.ResignationCases++
			case ReportLate:
				s.LateReports++
			}
		}
		s.EvaluationsDue += p.EvaluationsDue
		s.EvaluationsOverdue += p.EvaluationsOverdue
		s.EvaluationsDone += p.EvaluationsDone
		again, ended := false, false
		for _, c := range p.Consequences {
			again = again || c.Kind == ConsequenceExchangeAgain
			ended = ended || c.Kind == ConsequenceContractEnded
		}
		if again {
			s.ExchangeAgain++
		}
		if ended {
			s.ContractEnded++
		}
		if p.Status == StatusRefused {
			s.Refused++
		}
	}
	for _, v := range Enums["ExchangeStatus"] {
		if n := status[v]; n > 0 {
			s.ByStatus = append(s.ByStatus, &KindCount{Kind: v, Label: ExchangeStatusLabel(ExchangeStatus(v)), Count: n})
		}
	}
	for _, v := range Enums["ExchangeMode"] {
		if n := mode[v]; n > 0 {
			s.ByMode = append(s.ByMode, &KindCount{Kind: v, Label: ExchangeModeLabel(ExchangeMode(v)), Count: n})
		}
	}
	return s
}

// PairSummary counts the progress of mentoring pairs.
type PairSummary struct {
	Pairs   int
	Met     int
	OnTrack int
	Behind  int
}

// SummarizePairs counts a list of pair progress reports.
func SummarizePairs(list []*PairProgress) *PairSummary {
	s := &PairSummary{Pairs: len(list)}
	for _, p := range list {
		switch {
		case p.Met:
			s.Met++
		case p.OnTrack:
			s.OnTrack++
		default:
			s.Behind++
		}
	}
	return s
}

// AlertSeverity orders alerts.
type AlertSeverity string

// Alert severities, most severe first.
const (
	SeverityCritical AlertSeverity = "CRITICAL"
	SeverityWarning  AlertSeverity = "WARNING"
	SeverityNotice   AlertSeverity = "NOTICE"
)

// Alert is one thing an administrator should act on.
type Alert struct {
	Kind       string
	Severity   AlertSeverity
	ExchangeID *string
	TeacherID  *string
	SchoolID   *string
	Message    string
}

// MaxAlerts bounds the alerts of a dashboard; the summaries count everything.
const MaxAlerts = 200

// Alerts lists what needs action: resignation cases, attendance making an evaluation
// UNQUALIFIED, contracts to end, no-show warnings, overdue evaluations, duties behind,
// schools below their target and reverse flow — most severe first, at most MaxAlerts.
func Alerts(progress []*ExchangeProgress, quotas *QuotaReport) []*Alert {
	var out []*Alert
	for _, p := range progress {
		x, t := p.ExchangeID, p.TeacherID
		add := func(kind string, sev AlertSeverity, msg string) {
			out = append(out, &Alert{Kind: kind, Severity: sev, ExchangeID: &x, TeacherID: &t, Message: p.TeacherName + "：" + msg})
		}
		for _, c := range p.Consequences {
			switch c.Kind {
			case ConsequenceResignation, ConsequenceMustBeUnqualified, ConsequenceContractEnded:
				add(string(c.Kind), SeverityCritical, c.Explanation)
			case ConsequenceNoShowWarning:
				add(string(c.Kind), SeverityWarning, c.Explanation)
			}
		}
		if p.EvaluationsOverdue > 0 {
			add("EVALUATION_OVERDUE", SeverityWarning, fmt.Sprintf("有%d项考核已逾期未完成。", p.EvaluationsOverdue))
		}
		if p.DutyStatus == DutyStatusBehind {
			add("DUTIES_BEHIND", SeverityNotice, "交流任务进度落后。")
		}
		if p.Length != nil && !p.Length.Met {
			switch p.Status {
			case StatusProposed, StatusApproved, StatusPublished, StatusActive:
				add("EXCHANGE_TOO_SHORT", SeverityNotice, p.Length.Explanation)
			}
		}
	}
	if quotas != nil {
		for _, q := range quotas.Schools {
			if !q.Met {
				s := q.SchoolID
				out = append(out, &Alert{Kind: "SCHOOL_BELOW_TARGET", Severity: SeverityWarning, SchoolID: &s,
					Message: fmt.Sprintf("%s：应交流%d人，按%.4g%%至少%d人，实际交流%d人，差%d人。", q.SchoolName, q.Eligible, *q.TargetShare, q.Minimum, q.Rotating, q.Shortfall)})
			}
		}
		if quotas.ReverseFlow != nil && !quotas.ReverseFlow.Holds && quotas.Totals != nil && quotas.Totals.Schools > 1 {
			out = append(out, &Alert{Kind: "REVERSE_FLOW", Severity: SeverityWarning, Message: quotas.ReverseFlow.Explanation})
		}
		if quotas.ReverseFlow != nil { // the district's view, not one school's
			out = append(out, tierShareAlerts(quotas.Schools)...)
		}
	}
	rank := map[AlertSeverity]int{SeverityCritical: 0, SeverityWarning: 1, SeverityNotice: 2}
	sort.SliceStable(out, func(i, j int) bool { return rank[out[i].Severity] < rank[out[j].Severity] })
	if len(out) > MaxAlerts {
		out = out[:MaxAlerts]
	}
	return out
}

// MaxTierSharePercent is the largest share of a district's schools that may be rated
// QUALITY, and the largest that may be rated WEAK (each at most 30%).
const MaxTierSharePercent = 30

// tierShareAlerts warns when more than MaxTierSharePercent of the schools are rated
// QUALITY or WEAK.
func tierShareAlerts(schools []*SchoolQuota) []*Alert {
	var out []*Alert
	for _, tier := range []Tier{TierQuality, TierWeak} {
		n := 0
		for _, q := range schools {
			if q.Tier == tier {
				n++
			}
		}
		if n*100 > MaxTierSharePercent*len(schools) {
			label := map[Tier]string{TierQuality: "优质", TierWeak: "薄弱"}[tier]
			out = append(out, &Alert{Kind: "TIER_SHARE_EXCEEDED", Severity: SeverityWarning,
				Message: fmt.Sprintf("%d所学校中%s学校%d所，超过%d%%，请重新认定学校类别。", len(schools), label, n, MaxTierSharePercent)})
		}
	}
	return out
}

// DistrictDashboard sums up a district's academic year as of a day.
type DistrictDashboard struct {
	DistrictID    string
	DistrictName  string
	AcademicYear  string
	AsOf          Date
	ReferenceDate Date
	Policy        *Policy
	Eligibility   *EligibilitySummary
	Quotas        *QuotaTotals
	ReverseFlow   *ReverseFlow
	Cadre         *CadreQuota
	// SchoolsBelowTarget lists the schools whose rotating count is below their minimum.
	SchoolsBelowTarget []*SchoolQuota
	Progress           *ProgressSummary
	Pairs              *PairSummary
	Alerts             []*Alert
}

// SchoolDashboard sums up a school's academic year as of a day: its quota, its
// teachers' eligibility, the exchanges it sends and receives, and its mentoring pairs.
type SchoolDashboard struct {
	SchoolID      string
	SchoolName    string
	DistrictID    string
	AcademicYear  string
	AsOf          Date
	ReferenceDate Date
	Policy        *Policy
	Quota         *SchoolQuota
	Eligibility   *EligibilitySummary
	Teachers      []*Eligibility
	Sent          []*ExchangeProgress
	Received      []*ExchangeProgress
	Progress      *ProgressSummary
	Pairs         []*PairProgress
	PairSummary   *PairSummary
	Alerts        []*Alert
}

// PublicListEntry is one line of the public list (公示) of an academic year's exchanges.
type PublicListEntry struct {
	ExchangeID          string
	TeacherID           string
	TeacherName         string
	Gender              Gender
	Title               Title
	Subjects            StringList
	BackboneLevel       BackboneLevel
	Position            Position
	SendingSchoolName   string
	ReceivingSchoolName string
	Mode                ExchangeMode
	PlannedStart        Date
	PlannedEnd          Date
	Volunteer           bool
	RelationMoves       bool
	Status              ExchangeStatus
}

// AttendanceSheet is a month of attendance (考勤) of exchange teachers: one row per
// exchange, one column per day.
type AttendanceSheet struct {
	Month string // "2026-11"
	Days  int
	Rows  []*AttendanceSheetRow
}

// AttendanceSheetRow is one exchange's month: Days[i] is the status of day i+1, or ""
// when there is no record.
type AttendanceSheetRow struct {
	ExchangeID          string
	TeacherName         string
	SendingSchoolName   string
	ReceivingSchoolName string
	Days                []AttendanceStatus
	Present             int
	Leave               int
	Sick                int
	Absent              int
}

// AttendanceQuery selects the exchanges of a monthly attendance sheet: one exchange, or
// those from or to a school, or those of a district's schools.
type AttendanceQuery struct {
	DistrictID string
	SchoolID   string
	ExchangeID string
}
