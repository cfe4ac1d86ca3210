package jiaoliu

import (
	"encoding/json"
	"sort"
)

// presets are the policy values of the counties in the source documents. Where a
// document is silent, the value of the county plan (文件 004) is used.
var presets = map[string]PolicyParams{
	// Dalian 2019 (文件 000): 9 years, 55/50, 3 terms of 3 years, backbone ≥ 20%.
	"DALIAN": {
		TenureYears: 9, CadreTenureYears: 10, MaleAgeLimit: 54, FemaleAgeLimit: 49,
		PrincipalMaleAgeLimit: 54, PrincipalFemaleAgeLimit: 49, FemaleLimitNotAboveMale: true,
		PrincipalMaxYears: 9, QualityShare: 15, GeneralShare: 10, FirstYearShare: 8, CadreShare: 15,
		BackboneShare: 20, MinYears: 1, MinYearsUrbanToRural: 2, MinYearsGroup: 3, PrincipalTermYears: 4,
		FeatureDeferralMaxYears: 3, FullTimeDemonstration: 4, FullTimeGuidance: 4, FullTimeResearch: 8,
		DeliveryLessons: 8, DeliveryCritiques: 8, SecondmentObservations: 20, SecondmentResearch: 16,
		MentoringActivities: 8, StaffParticipationShare: 30, SchoolSendShare: 8,
		AbsenceRunLimit: 10, AbsenceYearLimit: 15, NoShowWarningDays: 7, NoShowResignationDays: 15,
	},
	// Yulin (文件 002): 6 years, 50/45, principals 8 years, backbone ≥ 30%, ≥ 3 years.
	"YULIN": {
		TenureYears: 6, CadreTenureYears: 10, MaleAgeLimit: 50, FemaleAgeLimit: 45,
		PrincipalMaleAgeLimit: 55, PrincipalFemaleAgeLimit: 50, FemaleLimitNotAboveMale: true,
		PrincipalMaxYears: 8, QualityShare: 15, GeneralShare: 10, FirstYearShare: 8, CadreShare: 15,
		BackboneShare: 30, MinYears: 3, MinYearsUrbanToRural: 3, MinYearsGroup: 3, PrincipalTermYears: 4,
		FeatureDeferralMaxYears: 3, FullTimeDemonstration: 4, FullTimeGuidance: 4, FullTimeResearch: 8,
		DeliveryLessons: 8, DeliveryCritiques: 8, SecondmentObservations: 20, SecondmentResearch: 16,
		MentoringActivities: 8, StaffParticipationShare: 30, SchoolSendShare: 8,
		AbsenceRunLimit: 10, AbsenceYearLimit: 15, NoShowWarningDays: 7, NoShowResignationDays: 15,
	},
	// Chuandi county plan (文件 004): 6 years, 50/45, lesson delivery ≥ 8 lessons and critiques.
	"CHUANDI": {
		TenureYears: 6, CadreTenureYears: 10, MaleAgeLimit: 50, FemaleAgeLimit: 45,
		PrincipalMaleAgeLimit: 55, PrincipalFemaleAgeLimit: 50, FemaleLimitNotAboveMale: true,
		PrincipalMaxYears: 9, QualityShare: 15, GeneralShare: 10, FirstYearShare: 8, CadreShare: 15,
		BackboneShare: 20, MinYears: 1, MinYearsUrbanToRural: 2, MinYearsGroup: 3, PrincipalTermYears: 4,
		FeatureDeferralMaxYears: 3, FullTimeDemonstration: 4, FullTimeGuidance: 4, FullTimeResearch: 8,
		DeliveryLessons: 8, DeliveryCritiques: 8, SecondmentObservations: 20, SecondmentResearch: 16,
		MentoringActivities: 8, StaffParticipationShare: 30, SchoolSendShare: 8,
		AbsenceRunLimit: 10, AbsenceYearLimit: 15, NoShowWarningDays: 7, NoShowResignationDays: 15,
	},
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
