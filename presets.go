package jiaoliu

import (
	"encoding/json"
	"sort"
)

// countyPlan holds the values of the county plan (文件 004, Chuandi): 6 years, 50/45,
// lesson delivery ≥ 8 lessons and critiques. The other presets differ from it only where
// their documents say so.
var countyPlan = PolicyParams{
	TenureYears: 6, CadreTenureYears: 10, MaleAgeLimit: 50, FemaleAgeLimit: 45,
	PrincipalMaleAgeLimit: 55, PrincipalFemaleAgeLimit: 50, FemaleLimitNotAboveMale: true,
	PrincipalMaxYears: 9, QualityShare: 15, GeneralShare: 10, FirstYearShare: 8, CadreShare: 15,
	BackboneShare: 20, MinYears: 1, MinYearsUrbanToRural: 2, MinYearsGroup: 3, PrincipalTermYears: 4,
	FeatureDeferralMaxYears: 3, FullTimeDemonstration: 4, FullTimeGuidance: 4, FullTimeResearch: 8,
	DeliveryLessons: 8, DeliveryCritiques: 8, SecondmentObservations: 20, SecondmentResearch: 16,
	MentoringActivities: 8, StaffParticipationShare: 30, SchoolSendShare: 8,
	AbsenceRunLimit: 10, AbsenceYearLimit: 15, NoShowWarningDays: 7, NoShowResignationDays: 15,
}

// presets are the policy values of the counties in the source documents.
var presets = map[string]PolicyParams{
	"CHUANDI": countyPlan,
	// Dalian 2019 (文件 000): 9 years; the obligation covers "男55周岁及以下，女50周岁及
	// 以下" (the domain table's 55/50, bounds included), principals alike; principals
	// after 3 terms of 3 years; backbone ≥ 20%.
	"DALIAN": with(countyPlan, func(p *PolicyParams) {
		p.TenureYears, p.MaleAgeLimit, p.FemaleAgeLimit = 9, 55, 50
		p.PrincipalMaleAgeLimit, p.PrincipalFemaleAgeLimit = 55, 50
	}),
	// Yulin (文件 002): 6 years, 50/45, principals after 8 years, backbone ≥ 30%, and at
	// least 3 academic years away.
	"YULIN": with(countyPlan, func(p *PolicyParams) {
		p.PrincipalMaxYears, p.BackboneShare = 8, 30
		p.MinYears, p.MinYearsUrbanToRural = 3, 3
	}),
}

func with(p PolicyParams, change func(*PolicyParams)) PolicyParams {
	change(&p)
	return p
}

// PresetNames returns the names of the policy presets, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Preset returns the parameters of a named preset.
func Preset(name string) (PolicyParams, bool) {
	p, ok := presets[name]
	return p, ok
}

// Fields returns the parameters as raw op fields, keyed by GraphQL name.
func (p PolicyParams) Fields() map[string]any {
	b, _ := json.Marshal(p)
	out := map[string]any{}
	_ = json.Unmarshal(b, &out)
	return out
}
