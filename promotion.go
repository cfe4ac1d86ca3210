package jiaoliu

import (
	"fmt"
	"sort"
)

// DaysPerYear is how many days of service count as one year in the promotion rules.
const DaysPerYear = 365

// ServicePeriod is one period of a teacher's service at a school, as the promotion
// rules see it.
type ServicePeriod struct {
	SchoolID   string
	SchoolName string
	Locality   Locality
	Tier       Tier
	From       Date
	// To is the last day of service (the end of the stint, or the day judged).
	To   Date
	Days int
	// RuralOrWeak says the period counts as rural or weak-school experience; Basis says
	// why: RURAL (a rural school or teaching point), WEAK (a weak school), GROUP_BRANCH
	// (a branch campus served from the group's main campus).
	RuralOrWeak bool
	Basis       string
}

// PromotionRule is one promotion prerequisite: whether it is met and what is missing.
type PromotionRule struct {
	Met         bool
	Requirement string
	Missing     []string
	Explanation string
}

// PromotionCheck says whether a teacher's history of schools satisfies the promotion
// prerequisites: the senior title (≥1 year at a rural or weak school), awards (2+
// schools with ≥2 years each, or ≥3 years rural or weak) and new principals (2+
// schools and ≥3 years rural or weak).
type PromotionCheck struct {
	TeacherID           string
	TeacherName         string
	AsOf                Date
	History             []*ServicePeriod
	Schools             int
	SchoolsWithTwoYears int
	RuralOrWeakDays     int
	SeniorTitle         *PromotionRule
	Award               *PromotionRule
	Principal           *PromotionRule
	// RefusedYear is the academic year of asOf when the teacher refused to rotate in it:
	// no award or promotion that year.
	RefusedYear *string
}

// PromotionInput is what CheckPromotion needs.
type PromotionInput struct {
	Teacher *Teacher
	Stints  []*SchoolStint
	// Schools holds the teacher's current school and every school of the stints.
	Schools map[string]*School
	// Groups holds the school groups of those schools, for the main campus.
	Groups map[string]*SchoolGroup
	// Exchanges are the teacher's exchanges (for refusals).
	Exchanges []*Exchange
	AsOf      Date
}

type span struct{ from, to Date }

// unionDays returns the number of days covered by the spans, overlaps counted once.
func unionDays(spans []span) int {
	sort.Slice(spans, func(i, j int) bool { return spans[i].from.Before(spans[j].from) })
	days := 0
	var cur *span
	for i := range spans {
		s := spans[i]
		if cur != nil && !s.from.After(cur.to.AddDays(1)) {
			if s.to.After(cur.to) {
				cur.to = s.to
			}
			continue
		}
		if cur != nil {
			days += cur.to.DaysSince(cur.from) + 1
		}
		cur = &s
	}
	if cur != nil {
		days += cur.to.DaysSince(cur.from) + 1
	}
	return days
}

// CheckPromotion applies the promotion prerequisites to a teacher's history as of a
// day. The history is the teacher's school stints (a completed exchange is recorded as
// one), plus the current school from the day joined when no open stint records it. A
// year of service is 365 days, overlapping periods counted once. A branch campus of a
// school group served by a teacher from the group's main campus counts as weak-school
// experience; serving the main campus from a branch counts as another school, as every
// campus is its own school here.
func CheckPromotion(in PromotionInput) *PromotionCheck {
	t := in.Teacher
	pc := &PromotionCheck{TeacherID: t.ID, TeacherName: t.Name, AsOf: in.AsOf}
	stints := make([]*SchoolStint, 0, len(in.Stints)+1)
	current := false
	for _, s := range in.Stints {
		if s.Deleted {
			continue
		}
		stints = append(stints, s)
		if s.SchoolID == t.SchoolID && s.EndDate == nil {
			current = true
		}
	}
	if !current && !t.JoinedSchoolOn.IsZero() {
		stints = append(stints, &SchoolStint{TeacherID: t.ID, SchoolID: t.SchoolID, StartDate: t.JoinedSchoolOn})
	}
	sort.SliceStable(stints, func(i, j int) bool { return stints[i].StartDate.Before(stints[j].StartDate) })

	// mainCampus reports whether the teacher served the main campus of group g before day d
	// or serves it now.
	servedMain := func(main string, d Date) bool {
		if t.SchoolID == main {
			return true
		}
		for _, s := range stints {
			if s.SchoolID == main && s.StartDate.Before(d) {
				return true
			}
		}
		return false
	}
	perSchool := map[string][]span{}
	var ruralWeak []span
	for _, s := range stints {
		to := in.AsOf
		if s.EndDate != nil && s.EndDate.Before(to) {
			to = *s.EndDate
		}
		if to.Before(s.StartDate) {
			continue
		}
		sp := &ServicePeriod{SchoolID: s.SchoolID, From: s.StartDate, To: to, Days: to.DaysSince(s.StartDate) + 1}
		if sc := in.Schools[s.SchoolID]; sc != nil {
			sp.SchoolName, sp.Locality, sp.Tier = sc.Name, sc.Locality, sc.Tier
			switch {
			case sc.Locality == LocalityRural || sc.Locality == LocalityTeachingPoint:
				sp.RuralOrWeak, sp.Basis = true, "RURAL"
			case sc.Tier == TierWeak:
				sp.RuralOrWeak, sp.Basis = true, "WEAK"
			case sc.GroupID != nil:
				if g := in.Groups[*sc.GroupID]; g != nil && g.MainSchoolID != nil && *g.MainSchoolID != sc.ID && servedMain(*g.MainSchoolID, s.StartDate) {
					sp.RuralOrWeak, sp.Basis = true, "GROUP_BRANCH"
				}
			}
		}
		pc.History = append(pc.History, sp)
		perSchool[s.SchoolID] = append(perSchool[s.SchoolID], span{s.StartDate, to})
		if sp.RuralOrWeak {
			ruralWeak = append(ruralWeak, span{s.StartDate, to})
		}
	}
	pc.Schools = len(perSchool)
	for _, spans := range perSchool {
		if unionDays(spans) >= 2*DaysPerYear {
			pc.SchoolsWithTwoYears++
		}
	}
	pc.RuralOrWeakDays = unionDays(ruralWeak)

	y := AcademicYearOf(in.AsOf)
	for _, x := range in.Exchanges {
		if !x.Deleted && x.Status == StatusRefused && x.AcademicYear == string(y) {
			ys := string(y)
			pc.RefusedYear = &ys
		}
	}
	rw := pc.RuralOrWeakDays
	refusal := func(r *PromotionRule) {
		if pc.RefusedYear != nil {
			r.Met = false
			r.Missing = append(r.Missing, fmt.Sprintf("%s学年拒不交流，当年不得评优评先和晋升职称", *pc.RefusedYear))
		}
	}

	senior := &PromotionRule{Requirement: "在农村学校或薄弱学校任教满1年", Met: rw >= DaysPerYear}
	if !senior.Met {
		senior.Missing = append(senior.Missing, fmt.Sprintf("农村或薄弱学校任教经历还差%d天（已有%d天，需满%d天）", DaysPerYear-rw, rw, DaysPerYear))
	}
	refusal(senior)

	award := &PromotionRule{Requirement: "在2所及以上学校各任教满2年，或在农村学校、薄弱学校任教满3年",
		Met: pc.SchoolsWithTwoYears >= 2 || rw >= 3*DaysPerYear}
	if !award.Met {
		award.Missing = append(award.Missing,
			fmt.Sprintf("任教满2年的学校只有%d所（需2所）", pc.SchoolsWithTwoYears),
			fmt.Sprintf("或农村、薄弱学校任教经历还差%d天（已有%d天，需满%d天）", 3*DaysPerYear-rw, rw, 3*DaysPerYear))
	}
	refusal(award)

	principal := &PromotionRule{Requirement: "在2所及以上学校任职任教，且在农村学校、薄弱学校任教满3年",
		Met: pc.Schools >= 2 && rw >= 3*DaysPerYear}
	if pc.Schools < 2 {
		principal.Missing = append(principal.Missing, fmt.Sprintf("只在%d所学校任教（需2所及以上）", pc.Schools))
	}
	if rw < 3*DaysPerYear {
		principal.Missing = append(principal.Missing, fmt.Sprintf("农村、薄弱学校任教经历还差%d天（已有%d天，需满%d天）", 3*DaysPerYear-rw, rw, 3*DaysPerYear))
	}
	for _, r := range []*PromotionRule{senior, award, principal} {
		if r.Met {
			r.Explanation = "符合：" + r.Requirement + "。"
		} else {
			r.Explanation = "不符合：" + r.Requirement + "。"
		}
	}
	pc.SeniorTitle, pc.Award, pc.Principal = senior, award, principal
	return pc
}
