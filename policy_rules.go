package jiaoliu

import (
	"fmt"
	"math"
)

// This file holds the eligibility rule: who must rotate in an academic year. Every
// number comes from the district's Policy; every date is the academic year's reference
// date (1 September), so a decision never depends on the day it is computed. The
// counting conventions are those of the domain document ("How the rules are counted")
// and docs/policy.md.

// EligibilityStatus is the outcome of the eligibility rule for one teacher.
type EligibilityStatus string

// Eligibility outcomes.
const (
	// EligibilityMustRotate: the teacher is obliged to rotate this year (应交流).
	EligibilityMustRotate EligibilityStatus = "MUST_ROTATE"
	// EligibilityMayVolunteer: not obliged, but may apply (可个人申报).
	EligibilityMayVolunteer EligibilityStatus = "MAY_VOLUNTEER"
	// EligibilityDeferred: an approved deferral runs on the reference date (暂缓交流).
	EligibilityDeferred EligibilityStatus = "DEFERRED"
	// EligibilityExempt: outside the obligation (not employed, or above the age limit).
	EligibilityExempt EligibilityStatus = "EXEMPT"
)

// EligibilityRule names the rule that decided a teacher's eligibility.
type EligibilityRule string

// Eligibility rules, in the order they are applied.
const (
	RuleNotEmployed      EligibilityRule = "NOT_EMPLOYED"       // 非在编在岗
	RuleDeferral         EligibilityRule = "DEFERRAL"           // 暂缓交流
	RuleAboveAgeLimit    EligibilityRule = "ABOVE_AGE_LIMIT"    // 超过年龄上限
	RulePrincipalTerm    EligibilityRule = "PRINCIPAL_TERM"     // 校长任职年限届满
	RuleCadreTenure      EligibilityRule = "CADRE_TENURE"       // 干部在同一学校任职满N年
	RuleTenure           EligibilityRule = "TENURE"             // 在同一学校任教满N年
	RuleTenureNotReached EligibilityRule = "TENURE_NOT_REACHED" // 任教年限未满
)

// Eligibility is the decision of the eligibility rule for one teacher in one academic
// year, with the facts it was computed from; Explanation says why in Chinese.
type Eligibility struct {
	TeacherID     string
	TeacherName   string
	SchoolID      string
	SchoolName    string
	Gender        Gender
	Position      Position
	BackboneLevel BackboneLevel
	Employed      bool
	Status        EligibilityStatus
	Rule          EligibilityRule
	// ReferenceDate is 1 September of the academic year: ages and tenure are taken on it.
	ReferenceDate Date
	// Age is in full years (周岁) on the reference date; AgeLimit is the inclusive limit
	// that applies to the teacher's gender and position.
	Age      int
	AgeLimit int
	// YearsAtSchool are full years at the current school on the reference date;
	// TenureRequired is the tenure that obliges the teacher's position to rotate.
	YearsAtSchool  int
	TenureRequired int
	// LeadershipYears are a principal's full years in post at the school (nil for others);
	// LeadershipRequired is the policy's principalMaxYears.
	LeadershipYears    *int
	LeadershipRequired *int
	Cadre              bool
	Backbone           bool
	// Deferral is the approved deferral running on the reference date, if any.
	Deferral          *Deferral
	DeferralReason    *DeferralReason
	DeferralExpiresOn *Date
	// The teacher's exchange of the academic year (the one that counts, if several).
	ExchangeID     *string
	ExchangeStatus *ExchangeStatus
	Volunteer      bool
	// Rotating says the teacher counts as rotating this year (an exchange of the year
	// in status APPROVED, PUBLISHED, ACTIVE or COMPLETED).
	Rotating bool

	// The facts and parameters the explanation quotes.
	joinedSchoolOn                                   Date
	tenureYears, cadreTenureYears, principalMaxYears int
}

// IsCadre reports whether a position is a cadre (干部: principals, vice principals and
// middle managers), who follow the cadre tenure and the cadre share.
func IsCadre(p Position) bool { return p != PositionTeacher && p != "" }

// IsBackbone reports whether a backbone level makes a teacher a backbone teacher (骨干
// 教师): any designation from the school level up.
func IsBackbone(b BackboneLevel) bool { return b != BackboneNone && b != "" }

// AgeLimit returns the inclusive age limit of the obligation for a gender and position:
// principals have their own limits; everyone else the teachers'.
func (p PolicyParams) AgeLimit(g Gender, pos Position) int {
	if pos == PositionPrincipal {
		if g == GenderFemale {
			return p.PrincipalFemaleAgeLimit
		}
		return p.PrincipalMaleAgeLimit
	}
	if g == GenderFemale {
		return p.FemaleAgeLimit
	}
	return p.MaleAgeLimit
}

// EffectiveExpiry returns the last day a deferral runs: its expiry, capped for a
// feature-program lead (特色课程领衔教师) at maxYears after its start.
func (d *Deferral) EffectiveExpiry(featureMaxYears int) Date {
	exp := d.ExpiresOn
	if d.Reason == DeferralFeatureProgramLead && featureMaxYears > 0 {
		if capped := d.StartsOn.AddYears(featureMaxYears); exp.After(capped) {
			exp = capped
		}
	}
	return exp
}

// RunsOn reports whether an approved deferral covers day d (both ends included).
func (d *Deferral) RunsOn(day Date, featureMaxYears int) bool {
	return d.Approved && !d.Deleted && !day.Before(d.StartsOn) && !d.EffectiveExpiry(featureMaxYears).Before(day)
}

// RunningDeferral returns the approved deferral that runs on day d and lasts longest,
// or nil.
func RunningDeferral(deferrals []*Deferral, day Date, featureMaxYears int) *Deferral {
	var best *Deferral
	for _, d := range deferrals {
		if d.RunsOn(day, featureMaxYears) && (best == nil || d.EffectiveExpiry(featureMaxYears).After(best.EffectiveExpiry(featureMaxYears))) {
			best = d
		}
	}
	return best
}

// DecideEligibility applies the eligibility rule of policy p for academic year y to
// teacher t, given the teacher's deferrals. The rules, in order:
//
//  1. a teacher not employed (非在编在岗) is EXEMPT;
//  2. an approved deferral running on the reference date makes the teacher DEFERRED;
//  3. above the age limit (inclusive, 周岁 on the reference date) the teacher is EXEMPT;
//  4. a principal whose years in post at the school reach principalMaxYears, or a cadre
//     whose years at the school reach cadreTenureYears, MUST_ROTATE;
//  5. a teacher (position TEACHER) whose years at the school reach tenureYears
//     MUST_ROTATE;
//  6. anyone else MAY_VOLUNTEER.
//
// The exchange fields are left for the caller, which knows the year's exchanges.
func DecideEligibility(p PolicyParams, y AcademicYear, t *Teacher, deferrals []*Deferral) Eligibility {
	ref := y.ReferenceDate()
	e := Eligibility{
		TeacherID: t.ID, TeacherName: t.Name, SchoolID: t.SchoolID, Gender: t.Gender, Position: t.Position,
		BackboneLevel: t.BackboneLevel, Employed: t.Employed, ReferenceDate: ref,
		Age: ref.FullYearsSince(t.BirthDate), AgeLimit: p.AgeLimit(t.Gender, t.Position),
		YearsAtSchool: max(0, ref.FullYearsSince(t.JoinedSchoolOn)), Cadre: IsCadre(t.Position), Backbone: IsBackbone(t.BackboneLevel),
	}
	if t.JoinedSchoolOn.After(ref) {
		e.YearsAtSchool = 0
	}
	e.TenureRequired = p.TenureYears
	if e.Cadre {
		e.TenureRequired = p.CadreTenureYears
	}
	if t.Position == PositionPrincipal {
		since := t.JoinedSchoolOn
		if t.LeadershipSince != nil && t.LeadershipSince.After(since) {
			since = *t.LeadershipSince
		}
		ly := 0
		if !since.After(ref) {
			ly = ref.FullYearsSince(since)
		}
		req := p.PrincipalMaxYears
		e.LeadershipYears, e.LeadershipRequired = &ly, &req
	}
	e.joinedSchoolOn, e.principalMaxYears, e.cadreTenureYears, e.tenureYears = t.JoinedSchoolOn, p.PrincipalMaxYears, p.CadreTenureYears, p.TenureYears
	d := RunningDeferral(deferrals, ref, p.FeatureDeferralMaxYears)
	switch {
	case !t.Employed:
		e.Status, e.Rule = EligibilityExempt, RuleNotEmployed
	case d != nil:
		exp := d.EffectiveExpiry(p.FeatureDeferralMaxYears)
		reason := d.Reason
		e.Status, e.Rule, e.Deferral, e.DeferralReason, e.DeferralExpiresOn = EligibilityDeferred, RuleDeferral, d, &reason, &exp
	case e.Age > e.AgeLimit:
		e.Status, e.Rule = EligibilityExempt, RuleAboveAgeLimit
	case e.LeadershipYears != nil && *e.LeadershipYears >= p.PrincipalMaxYears:
		e.Status, e.Rule = EligibilityMustRotate, RulePrincipalTerm
	case e.Cadre && e.YearsAtSchool >= p.CadreTenureYears:
		e.Status, e.Rule = EligibilityMustRotate, RuleCadreTenure
	case !e.Cadre && e.YearsAtSchool >= p.TenureYears:
		e.Status, e.Rule = EligibilityMustRotate, RuleTenure
	default:
		e.Status, e.Rule = EligibilityMayVolunteer, RuleTenureNotReached
	}
	return e
}

// Explanation says why the rule decided as it did, in Chinese an administrator can
// read out. It is composed on demand: a district's dashboard decides thousands of
// teachers and explains none.
func (e *Eligibility) Explanation() string {
	who := fmt.Sprintf("%s（%s%s，%d周岁）", e.TeacherName, genderLabel(e.Gender), positionLabel(e.Position), e.Age)
	ref := e.ReferenceDate
	within := fmt.Sprintf("年龄%d周岁未超过%s上限%d周岁", e.Age, limitLabel(e.Gender, e.Position), e.AgeLimit)
	switch e.Rule {
	case RuleNotEmployed:
		return fmt.Sprintf("%s不是在编在岗人员，不在交流轮岗范围内。", who)
	case RuleDeferral:
		return fmt.Sprintf("%s因%s经批准暂缓交流，暂缓期%s至%s，%s仍在暂缓期内；期满后重新认定。",
			who, DeferralReasonLabel(e.Deferral.Reason), e.Deferral.StartsOn, *e.DeferralExpiresOn, ref)
	case RuleAboveAgeLimit:
		return fmt.Sprintf("%s截至%s年满%d周岁，超过%s交流年龄上限%d周岁（含），不作交流要求，可自愿申报。",
			who, ref, e.Age, limitLabel(e.Gender, e.Position), e.AgeLimit)
	case RulePrincipalTerm:
		return fmt.Sprintf("%s在本校任校长满%d年（截至%s已任职%d年，达到%d年的任职年限），%s，应当交流。",
			who, e.principalMaxYears, ref, *e.LeadershipYears, e.principalMaxYears, within)
	case RuleCadreTenure:
		return fmt.Sprintf("%s于%s到本校，截至%s在本校任职满%d年（干部满%d年应交流），%s，应当交流。",
			who, e.joinedSchoolOn, ref, e.YearsAtSchool, e.cadreTenureYears, within)
	case RuleTenure:
		return fmt.Sprintf("%s于%s到本校，截至%s在本校连续任教满%d年（满%d年应交流），%s，应当交流。",
			who, e.joinedSchoolOn, ref, e.YearsAtSchool, e.tenureYears, within)
	}
	switch {
	case e.LeadershipYears != nil:
		return fmt.Sprintf("%s在本校任校长%d年，未满%d年的任职年限；在本校%d年，未满干部%d年，本学年不作交流要求，可自愿申报。",
			who, *e.LeadershipYears, e.principalMaxYears, e.YearsAtSchool, e.cadreTenureYears)
	case e.Cadre:
		return fmt.Sprintf("%s于%s到本校，截至%s在本校%d年，未满干部%d年的任职年限，本学年不作交流要求，可自愿申报。",
			who, e.joinedSchoolOn, ref, e.YearsAtSchool, e.cadreTenureYears)
	}
	return fmt.Sprintf("%s于%s到本校，截至%s在本校任教%d年，未满%d年（须于%s前到校），本学年不作交流要求，可自愿申报。",
		who, e.joinedSchoolOn, ref, e.YearsAtSchool, e.tenureYears, ref.AddYears(-e.tenureYears).AddDays(1))
}

// MinimumCount returns the smallest whole number of people that is at least share
// percent of n: ceil(share × n / 100), computed exactly for shares given to two
// decimals (so 15% of 20 is 3, not 4 as float rounding would give).
func MinimumCount(sharePercent float64, n int) int {
	if n <= 0 || sharePercent <= 0 {
		return 0
	}
	bp := int64(math.Round(sharePercent * 100))
	return int((bp*int64(n) + 9999) / 10000)
}

// MeetsShare reports whether count is at least share percent of total, exactly.
func MeetsShare(count, total int, sharePercent float64) bool {
	return count >= MinimumCount(sharePercent, total)
}

// Ratio returns part ÷ whole as a percentage, or nil when whole is 0.
func Ratio(part, whole int) *float64 {
	if whole == 0 {
		return nil
	}
	r := math.Round(float64(part)*10000/float64(whole)) / 100
	return &r
}

func genderLabel(g Gender) string {
	if g == GenderFemale {
		return "女"
	}
	return "男"
}

func positionLabel(p Position) string {
	switch p {
	case PositionPrincipal:
		return "校长"
	case PositionVicePrincipal:
		return "副校长"
	case PositionMiddleManager:
		return "中层干部"
	}
	return "教师"
}

func limitLabel(g Gender, p Position) string {
	if p == PositionPrincipal {
		return genderLabel(g) + "校长"
	}
	return genderLabel(g) + "教师"
}

// DeferralReasonLabel returns the Chinese name of a deferral reason.
func DeferralReasonLabel(r DeferralReason) string {
	switch r {
	case DeferralPregnancy:
		return "怀孕"
	case DeferralNursing:
		return "哺乳期"
	case DeferralMedical:
		return "患病（持医院证明）"
	case DeferralFeatureProgramLead:
		return "担任特色课程领衔教师"
	case DeferralNearRetirement:
		return "距退休不足一个任期"
	case DeferralCentreSchoolHead:
		return "现任中心校校长"
	}
	return string(r)
}

// ExchangeModeLabel returns the Chinese name of an exchange mode.
func ExchangeModeLabel(m ExchangeMode) string {
	switch m {
	case ModeFullTime:
		return "全日制交流"
	case ModeLessonDelivery:
		return "送课交流"
	case ModeSecondment:
		return "挂职锻炼"
	case ModeItinerant:
		return "走教"
	case ModeGroupInternal:
		return "集团内交流"
	case ModePairedSupport:
		return "对口帮扶"
	}
	return string(m)
}

// ExchangeStatusLabel returns the Chinese name of an exchange status.
func ExchangeStatusLabel(s ExchangeStatus) string {
	switch s {
	case StatusProposed:
		return "已申报"
	case StatusApproved:
		return "已审批"
	case StatusPublished:
		return "已公示"
	case StatusActive:
		return "在岗"
	case StatusCompleted:
		return "已完成"
	case StatusDeferred:
		return "暂缓"
	case StatusRefused:
		return "拒不交流"
	case StatusCancelled:
		return "已取消"
	case StatusTerminated:
		return "已终止"
	}
	return string(s)
}
