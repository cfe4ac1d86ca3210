package jiaoliu_test

import (
	"testing"

	"github.com/jiaoliu/jiaoliu"
)

const year = jiaoliu.AcademicYear("2026-2027")

func d(s string) jiaoliu.Date { return jiaoliu.MustDate(s) }

func dp(s string) *jiaoliu.Date { v := d(s); return &v }

func preset(tb testing.TB, name string) jiaoliu.PolicyParams {
	tb.Helper()
	p, ok := jiaoliu.Preset(name)
	if !ok {
		tb.Fatalf("no preset %s", name)
	}
	return p
}

// teacher returns an employed teacher; options change it.
func teacher(gender jiaoliu.Gender, birth, joined string, opts ...func(*jiaoliu.Teacher)) *jiaoliu.Teacher {
	t := &jiaoliu.Teacher{ID: "t1", Name: "张三", Gender: gender, BirthDate: d(birth), JoinedSchoolOn: d(joined),
		Employed: true, Position: jiaoliu.PositionTeacher, BackboneLevel: jiaoliu.BackboneNone, SchoolID: "s1"}
	for _, o := range opts {
		o(t)
	}
	return t
}

func position(p jiaoliu.Position, leadership string) func(*jiaoliu.Teacher) {
	return func(t *jiaoliu.Teacher) {
		t.Position = p
		if leadership != "" {
			t.LeadershipSince = dp(leadership)
		}
	}
}

func deferral(reason jiaoliu.DeferralReason, from, to string, approved bool) *jiaoliu.Deferral {
	return &jiaoliu.Deferral{ID: "d-" + from + to, TeacherID: "t1", Reason: reason, StartsOn: d(from), ExpiresOn: d(to), Approved: approved}
}

func TestDecideEligibility(t *testing.T) {
	yulin := preset(t, "YULIN")     // 6 years, male ≤ 50, female ≤ 45, principals 8 years, ≤ 55/50
	dalian := preset(t, "DALIAN")   // 9 years, male ≤ 55, female ≤ 50, cadres 10 years, principals 9 years
	chuandi := preset(t, "CHUANDI") // 6 years, 50/45, principals 9 years
	for _, c := range []struct {
		name      string
		p         jiaoliu.PolicyParams
		t         *jiaoliu.Teacher
		deferrals []*jiaoliu.Deferral
		status    jiaoliu.EligibilityStatus
		rule      jiaoliu.EligibilityRule
		age       int
		years     int
	}{
		// Ages in full years on 1 September 2026; limits inclusive.
		{"turns 50 on the reference date: within the male limit of 50", yulin,
			teacher(jiaoliu.GenderMale, "1976-09-01", "2008-09-01"), nil, jiaoliu.EligibilityMustRotate, jiaoliu.RuleTenure, 50, 18},
		{"turns 51 on the reference date: above 50", yulin,
			teacher(jiaoliu.GenderMale, "1975-09-01", "2008-09-01"), nil, jiaoliu.EligibilityExempt, jiaoliu.RuleAboveAgeLimit, 51, 18},
		{"turns 51 the day after: still 50", yulin,
			teacher(jiaoliu.GenderMale, "1975-09-02", "2008-09-01"), nil, jiaoliu.EligibilityMustRotate, jiaoliu.RuleTenure, 50, 18},
		{"born 1976-09-02 is 49", yulin,
			teacher(jiaoliu.GenderMale, "1976-09-02", "2010-09-01"), nil, jiaoliu.EligibilityMustRotate, jiaoliu.RuleTenure, 49, 16},
		{"a woman of 50 is above the female limit of 45", yulin,
			teacher(jiaoliu.GenderFemale, "1976-09-01", "2004-09-01"), nil, jiaoliu.EligibilityExempt, jiaoliu.RuleAboveAgeLimit, 50, 22},
		{"a woman of exactly 45 is within", yulin,
			teacher(jiaoliu.GenderFemale, "1981-09-01", "2004-09-01"), nil, jiaoliu.EligibilityMustRotate, jiaoliu.RuleTenure, 45, 22},
		// Dalian (文件 000, the domain table's "55/50 (Dalian)"): "男55周岁及以下，女50周岁及以下".
		{"Dalian 男55周岁及以下: a man of exactly 55 is within", dalian,
			teacher(jiaoliu.GenderMale, "1971-09-01", "2004-09-01"), nil, jiaoliu.EligibilityMustRotate, jiaoliu.RuleTenure, 55, 22},
		{"Dalian: a man of 56 is exempt", dalian,
			teacher(jiaoliu.GenderMale, "1970-09-01", "2004-09-01"), nil, jiaoliu.EligibilityExempt, jiaoliu.RuleAboveAgeLimit, 56, 22},
		{"Dalian 女50周岁及以下: a woman of exactly 50 is within", dalian,
			teacher(jiaoliu.GenderFemale, "1976-09-01", "2004-09-01"), nil, jiaoliu.EligibilityMustRotate, jiaoliu.RuleTenure, 50, 22},
		{"Dalian: a woman of 51 is exempt", dalian,
			teacher(jiaoliu.GenderFemale, "1975-09-01", "2004-09-01"), nil, jiaoliu.EligibilityExempt, jiaoliu.RuleAboveAgeLimit, 51, 22},

		// Tenure 满6年: joined on or before 2020-09-01.
		{"exactly 6 years", yulin,
			teacher(jiaoliu.GenderFemale, "1992-03-08", "2020-09-01"), nil, jiaoliu.EligibilityMustRotate, jiaoliu.RuleTenure, 34, 6},
		{"5 years and 364 days", yulin,
			teacher(jiaoliu.GenderMale, "1993-12-11", "2020-09-02"), nil, jiaoliu.EligibilityMayVolunteer, jiaoliu.RuleTenureNotReached, 32, 5},
		{"Dalian: 8 years is not 9", dalian,
			teacher(jiaoliu.GenderMale, "1985-01-01", "2018-09-01"), nil, jiaoliu.EligibilityMayVolunteer, jiaoliu.RuleTenureNotReached, 41, 8},
		{"Dalian: exactly 9 years", dalian,
			teacher(jiaoliu.GenderMale, "1985-01-01", "2017-09-01"), nil, jiaoliu.EligibilityMustRotate, jiaoliu.RuleTenure, 41, 9},
		{"joined after the reference date", yulin,
			teacher(jiaoliu.GenderMale, "1998-01-01", "2026-09-15"), nil, jiaoliu.EligibilityMayVolunteer, jiaoliu.RuleTenureNotReached, 28, 0},

		// Employment.
		{"not employed (非在编在岗)", yulin,
			teacher(jiaoliu.GenderMale, "1980-01-01", "2008-09-01", func(t *jiaoliu.Teacher) { t.Employed = false }),
			nil, jiaoliu.EligibilityExempt, jiaoliu.RuleNotEmployed, 46, 18},

		// Deferrals run on the reference date, both ends included.
		{"deferral expiring the day before the reference date", yulin,
			teacher(jiaoliu.GenderFemale, "1990-01-01", "2015-09-01"),
			[]*jiaoliu.Deferral{deferral(jiaoliu.DeferralNursing, "2025-09-01", "2026-08-31", true)},
			jiaoliu.EligibilityMustRotate, jiaoliu.RuleTenure, 36, 11},
		{"deferral expiring on the reference date", yulin,
			teacher(jiaoliu.GenderFemale, "1990-01-01", "2015-09-01"),
			[]*jiaoliu.Deferral{deferral(jiaoliu.DeferralNursing, "2025-09-01", "2026-09-01", true)},
			jiaoliu.EligibilityDeferred, jiaoliu.RuleDeferral, 36, 11},
		{"deferral starting the day after the reference date", yulin,
			teacher(jiaoliu.GenderFemale, "1990-01-01", "2015-09-01"),
			[]*jiaoliu.Deferral{deferral(jiaoliu.DeferralPregnancy, "2026-09-02", "2027-06-01", true)},
			jiaoliu.EligibilityMustRotate, jiaoliu.RuleTenure, 36, 11},
		{"deferral not approved", yulin,
			teacher(jiaoliu.GenderFemale, "1990-01-01", "2015-09-01"),
			[]*jiaoliu.Deferral{deferral(jiaoliu.DeferralMedical, "2026-01-01", "2027-06-01", false)},
			jiaoliu.EligibilityMustRotate, jiaoliu.RuleTenure, 36, 11},
		{"feature-program deferral capped at 3 years", yulin,
			teacher(jiaoliu.GenderFemale, "1990-01-01", "2015-09-01"),
			[]*jiaoliu.Deferral{deferral(jiaoliu.DeferralFeatureProgramLead, "2023-08-31", "2027-08-31", true)},
			jiaoliu.EligibilityMustRotate, jiaoliu.RuleTenure, 36, 11},
		{"feature-program deferral within 3 years", yulin,
			teacher(jiaoliu.GenderFemale, "1990-01-01", "2015-09-01"),
			[]*jiaoliu.Deferral{deferral(jiaoliu.DeferralFeatureProgramLead, "2023-09-01", "2026-09-01", true)},
			jiaoliu.EligibilityDeferred, jiaoliu.RuleDeferral, 36, 11},

		// Principals and cadres.
		{"principal 8 years in post (Yulin: 8)", yulin,
			teacher(jiaoliu.GenderMale, "1972-01-01", "2018-09-01", position(jiaoliu.PositionPrincipal, "2018-09-01")),
			nil, jiaoliu.EligibilityMustRotate, jiaoliu.RulePrincipalTerm, 54, 8},
		{"principal 8 years in post (Chuandi: 9)", chuandi,
			teacher(jiaoliu.GenderMale, "1972-01-01", "2018-09-01", position(jiaoliu.PositionPrincipal, "2018-09-01")),
			nil, jiaoliu.EligibilityMayVolunteer, jiaoliu.RuleTenureNotReached, 54, 8},
		{"principal above the principals' limit of 55", yulin,
			teacher(jiaoliu.GenderMale, "1970-01-01", "2010-09-01", position(jiaoliu.PositionPrincipal, "2010-09-01")),
			nil, jiaoliu.EligibilityExempt, jiaoliu.RuleAboveAgeLimit, 56, 16},
		{"principal at the school 10 years, in post 3: cadre tenure", yulin,
			teacher(jiaoliu.GenderMale, "1975-01-01", "2016-09-01", position(jiaoliu.PositionPrincipal, "2023-09-01")),
			nil, jiaoliu.EligibilityMustRotate, jiaoliu.RuleCadreTenure, 51, 10},
		{"middle manager 9 years: below the cadre tenure of 10", yulin,
			teacher(jiaoliu.GenderFemale, "1985-01-01", "2017-09-01", position(jiaoliu.PositionMiddleManager, "")),
			nil, jiaoliu.EligibilityMayVolunteer, jiaoliu.RuleTenureNotReached, 41, 9},
		{"vice principal 10 years", yulin,
			teacher(jiaoliu.GenderMale, "1980-01-01", "2016-09-01", position(jiaoliu.PositionVicePrincipal, "2019-09-01")),
			nil, jiaoliu.EligibilityMustRotate, jiaoliu.RuleCadreTenure, 46, 10},
		{"a deferred centre-school principal", yulin,
			teacher(jiaoliu.GenderMale, "1972-04-11", "2016-09-01", position(jiaoliu.PositionPrincipal, "2016-09-01")),
			[]*jiaoliu.Deferral{deferral(jiaoliu.DeferralCentreSchoolHead, "2026-07-01", "2027-08-31", true)},
			jiaoliu.EligibilityDeferred, jiaoliu.RuleDeferral, 54, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := jiaoliu.DecideEligibility(c.p, year, c.t, c.deferrals)
			if e.Status != c.status || e.Rule != c.rule {
				t.Fatalf("status=%s rule=%s, want %s %s (%s)", e.Status, e.Rule, c.status, c.rule, e.Explanation())
			}
			if e.Age != c.age || e.YearsAtSchool != c.years {
				t.Fatalf("age=%d years=%d, want %d %d", e.Age, e.YearsAtSchool, c.age, c.years)
			}
			if e.Explanation() == "" {
				t.Fatal("no explanation")
			}
			if c.status == jiaoliu.EligibilityDeferred && (e.DeferralReason == nil || e.DeferralExpiresOn == nil) {
				t.Fatal("a deferred teacher needs the reason and expiry")
			}
		})
	}
}

func TestMinimumCount(t *testing.T) {
	for _, c := range []struct {
		share float64
		n     int
		want  int
	}{
		{15, 7, 2}, {15, 13, 2}, {15, 14, 3}, {10, 14, 2}, {15, 20, 3}, {10, 10, 1}, {10, 11, 2},
		{8, 25, 2}, {8, 12, 1}, {12.5, 8, 1}, {12.5, 9, 2}, {20, 5, 1}, {30, 10, 3}, {15, 0, 0}, {0, 10, 0}, {100, 3, 3},
	} {
		if got := jiaoliu.MinimumCount(c.share, c.n); got != c.want {
			t.Errorf("MinimumCount(%g%%, %d)=%d, want %d", c.share, c.n, got, c.want)
		}
	}
}

func TestSchoolTarget(t *testing.T) {
	p := preset(t, "CHUANDI")
	for _, c := range []struct {
		loc   jiaoliu.Locality
		tier  jiaoliu.Tier
		first bool
		basis jiaoliu.TargetBasis
		share float64
	}{
		{jiaoliu.LocalityUrban, jiaoliu.TierQuality, false, jiaoliu.TargetQuality, 15},
		{jiaoliu.LocalityTown, jiaoliu.TierQuality, false, jiaoliu.TargetQuality, 15},
		{jiaoliu.LocalityUrban, jiaoliu.TierGeneral, false, jiaoliu.TargetUrban, 15},
		{jiaoliu.LocalityTown, jiaoliu.TierGeneral, false, jiaoliu.TargetGeneral, 10},
		{jiaoliu.LocalityRural, jiaoliu.TierWeak, false, jiaoliu.TargetNone, 0},
		{jiaoliu.LocalityTown, jiaoliu.TierGeneral, true, jiaoliu.TargetFirstYear, 8},
		{jiaoliu.LocalityUrban, jiaoliu.TierQuality, true, jiaoliu.TargetFirstYear, 8},
	} {
		p.FirstYear = c.first
		basis, share := p.SchoolTarget(&jiaoliu.School{Locality: c.loc, Tier: c.tier})
		got := 0.0
		if share != nil {
			got = *share
		}
		if basis != c.basis || got != c.share {
			t.Errorf("%s %s first=%v: %s %g, want %s %g", c.loc, c.tier, c.first, basis, got, c.basis, c.share)
		}
	}
}

// TestPresetsFollowTheDomainTable checks every preset against the values of the domain
// document's policy table for its county.
func TestPresetsFollowTheDomainTable(t *testing.T) {
	type v = map[string]any
	common := v{"cadreTenureYears": 10.0, "qualityShare": 15.0, "generalShare": 10.0, "firstYearShare": 8.0, "cadreShare": 15.0,
		"principalMaleAgeLimit": 55.0, "principalFemaleAgeLimit": 50.0, "femaleLimitNotAboveMale": true,
		"minYearsUrbanToRural": 2.0, "minYearsGroup": 3.0, "principalTermYears": 4.0, "featureDeferralMaxYears": 3.0,
		"fullTimeDemonstration": 4.0, "fullTimeGuidance": 4.0, "fullTimeResearch": 8.0, "deliveryLessons": 8.0, "deliveryCritiques": 8.0,
		"secondmentObservations": 20.0, "secondmentResearch": 16.0, "mentoringActivities": 8.0,
		"staffParticipationShare": 30.0, "schoolSendShare": 8.0, "absenceRunLimit": 10.0, "absenceYearLimit": 15.0,
		"noShowWarningDays": 7.0, "noShowResignationDays": 15.0, "minYears": 1.0, "backboneShare": 20.0, "firstYear": false}
	for name, want := range map[string]v{
		// 6 years (Yulin, Chuandi); 50/45 (county plan); principals 3 terms of 3 years.
		"CHUANDI": {"tenureYears": 6.0, "maleAgeLimit": 50.0, "femaleAgeLimit": 45.0, "principalMaxYears": 9.0},
		// 9 years (Dalian 2019); 55/50 (Dalian); 3 terms of 3 years; backbone ≥ 20%.
		"DALIAN": {"tenureYears": 9.0, "maleAgeLimit": 55.0, "femaleAgeLimit": 50.0, "principalMaxYears": 9.0},
		// 6 years; 50/45; principals 8 years; backbone ≥ 30%; ≥ 3 academic years.
		"YULIN": {"tenureYears": 6.0, "maleAgeLimit": 50.0, "femaleAgeLimit": 45.0, "principalMaxYears": 8.0,
			"backboneShare": 30.0, "minYears": 3.0, "minYearsUrbanToRural": 3.0},
	} {
		t.Run(name, func(t *testing.T) {
			got := preset(t, name).Fields()
			for k, w := range common {
				if _, own := want[k]; !own {
					want[k] = w
				}
			}
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s=%v, want %v", k, got[k], w)
				}
			}
			if len(got) != len(want) {
				t.Errorf("preset has %d parameters, the table %d: every parameter needs its value here", len(got), len(want))
			}
		})
	}
}
