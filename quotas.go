package jiaoliu

import (
	"fmt"
	"sort"
)

// TargetBasis says which share of the policy a school's rotation target comes from.
type TargetBasis string

// Target bases.
const (
	TargetQuality   TargetBasis = "QUALITY"    // a quality school: qualityShare
	TargetUrban     TargetBasis = "URBAN"      // an urban school that is not quality: qualityShare
	TargetGeneral   TargetBasis = "GENERAL"    // a general school outside the city: generalShare
	TargetFirstYear TargetBasis = "FIRST_YEAR" // the policy's first year: firstYearShare for every school with a target
	TargetNone      TargetBasis = "NONE"       // a weak school outside the city: it receives, no sending target
)

// SchoolTarget returns the basis and the share (percent) of a school's rotation target
// under policy p: quality or urban schools qualityShare, general schools generalShare,
// and in the first year firstYearShare for both; weak schools outside the city have none.
func (p PolicyParams) SchoolTarget(s *School) (TargetBasis, *float64) {
	var basis TargetBasis
	var share float64
	switch {
	case s.Tier == TierQuality:
		basis, share = TargetQuality, p.QualityShare
	case s.Locality == LocalityUrban:
		basis, share = TargetUrban, p.QualityShare
	case s.Tier == TierGeneral:
		basis, share = TargetGeneral, p.GeneralShare
	default:
		return TargetNone, nil
	}
	if p.FirstYear {
		basis, share = TargetFirstYear, p.FirstYearShare
	}
	return basis, &share
}

// SchoolQuota is one school's rotation quota for an academic year: how many of its
// teachers must rotate, how many rotate (as the sending school), and the shares.
type SchoolQuota struct {
	SchoolID   string
	SchoolName string
	Locality   Locality
	Tier       Tier
	// Staff counts the live teachers whose current school this is.
	Staff int
	// Eligible counts the teachers who must rotate (MUST_ROTATE); Deferred those deferred.
	Eligible int
	Deferred int
	// Rotating counts the school's teachers with an exchange of the year in status
	// APPROVED, PUBLISHED, ACTIVE or COMPLETED from this school, volunteers included,
	// each teacher once; Volunteers counts those who applied.
	Rotating   int
	Volunteers int
	// TargetShare is the percentage of eligible teachers that must rotate (nil: none);
	// Minimum = ceil(TargetShare × Eligible); Share = Rotating ÷ Eligible.
	TargetBasis TargetBasis
	TargetShare *float64
	Minimum     int
	Share       *float64
	Met         bool
	Shortfall   int
	// Backbone teachers among those rotating, against the policy's backboneShare.
	BackboneRotating int
	BackboneShare    *float64
	BackboneMinimum  int
	BackboneMet      bool
	// Cadres (principals, vice principals, middle managers) who must rotate and rotate.
	CadreEligible int
	CadreRotating int
	CadreMinimum  int
	CadreMet      bool
	// SendMinimum = ceil(schoolSendShare × Staff): a school sends at least that many.
	SendMinimum int
	SendMet     bool
	// Backbone teachers this school sent down (a quality school to general or weak
	// schools) and up (a general or weak school to quality schools).
	BackboneSentDown int
	BackboneSentUp   int
}

// ReverseFlow is the check against reverse flow (逆交流): backbone teachers sent from
// quality to general or weak schools must be strictly more than those sent the other way.
type ReverseFlow struct {
	QualityToLower int
	LowerToQuality int
	Holds          bool
	Explanation    string
}

// CadreQuota is the district's cadre quota: cadres rotating against cadreShare of the
// cadres who must rotate.
type CadreQuota struct {
	Eligible    int
	Rotating    int
	TargetShare float64
	Minimum     int
	Share       *float64
	Met         bool
}

// QuotaTotals sums the schools' quotas for the district. Rotating counts each teacher
// once; Minimum is the sum of the schools' minimums.
type QuotaTotals struct {
	Schools              int
	Staff                int
	Eligible             int
	Deferred             int
	Rotating             int
	Volunteers           int
	Minimum              int
	Share                *float64
	SchoolsWithTarget    int
	SchoolsMeetingTarget int
	SchoolsBelowTarget   int
	BackboneRotating     int
	BackboneShare        *float64
	BackboneTarget       float64
	BackboneMinimum      int
	BackboneMet          bool
	// Participation: teachers rotating in every mode against staffParticipationShare of
	// the staff.
	ParticipationTarget  float64
	ParticipationMinimum int
	ParticipationShare   *float64
	ParticipationMet     bool
}

// QuotaReport is the quota of every school of a district (or of one school, for a school
// administrator) with the district's totals, reverse-flow check and cadre quota.
type QuotaReport struct {
	DistrictID    string
	AcademicYear  string
	ReferenceDate Date
	Policy        *Policy
	Schools       []*SchoolQuota
	Totals        *QuotaTotals
	ReverseFlow   *ReverseFlow
	Cadre         *CadreQuota
}

// RotatingExchanges returns, of the exchanges of academic year y, those that count
// towards rotation (APPROVED, PUBLISHED, ACTIVE or COMPLETED, not deleted).
func RotatingExchanges(exchanges []*Exchange, y AcademicYear) []*Exchange {
	var out []*Exchange
	for _, x := range exchanges {
		if !x.Deleted && x.AcademicYear == string(y) && x.Status.CountsAsRotating() {
			out = append(out, x)
		}
	}
	return out
}

// QuotaInput is what ComputeQuotas needs: the policy, the schools to report on, every
// teacher concerned (the schools' teachers and the exchange teachers), their
// eligibility, and the exchanges of the year from those schools.
type QuotaInput struct {
	Policy      *Policy
	Year        AcademicYear
	Schools     []*School
	Teachers    map[string]*Teacher
	Eligibility []*Eligibility
	Exchanges   []*Exchange
	// SchoolsByID holds every school the exchanges refer to (for the tiers of receiving
	// schools outside Schools).
	SchoolsByID map[string]*School
}

// ComputeQuotas computes the quota report. Counting follows the domain document: a
// school's rotating count is the number of distinct teachers with an exchange of the
// year from that school in a counting status; shares are exact ceilings.
func ComputeQuotas(in QuotaInput) *QuotaReport {
	p := in.Policy.PolicyParams
	rep := &QuotaReport{DistrictID: in.Policy.DistrictID, AcademicYear: string(in.Year), ReferenceDate: in.Year.ReferenceDate(), Policy: in.Policy}
	bySchool := map[string]*SchoolQuota{}
	for _, s := range in.Schools {
		q := &SchoolQuota{SchoolID: s.ID, SchoolName: s.Name, Locality: s.Locality, Tier: s.Tier}
		q.TargetBasis, q.TargetShare = p.SchoolTarget(s)
		bySchool[s.ID] = q
		rep.Schools = append(rep.Schools, q)
	}
	for _, t := range in.Teachers {
		if q := bySchool[t.SchoolID]; q != nil && !t.Deleted {
			q.Staff++
		}
	}
	for _, e := range in.Eligibility {
		q := bySchool[e.SchoolID]
		if q == nil {
			continue
		}
		switch e.Status {
		case EligibilityMustRotate:
			q.Eligible++
			if e.Cadre {
				q.CadreEligible++
			}
		case EligibilityDeferred:
			q.Deferred++
		}
	}

	type key struct{ school, teacher string }
	seen, volunteered := map[key]bool{}, map[key]bool{}
	district := map[string]bool{}
	districtBackbone, districtCadre, districtVolunteer := map[string]bool{}, map[string]bool{}, map[string]bool{}
	down, up := map[string]bool{}, map[string]bool{}
	for _, x := range RotatingExchanges(in.Exchanges, in.Year) {
		q := bySchool[x.SendingSchoolID]
		if q == nil {
			continue
		}
		t := in.Teachers[x.TeacherID]
		backbone, cadre := t != nil && IsBackbone(t.BackboneLevel), t != nil && IsCadre(t.Position)
		k := key{x.SendingSchoolID, x.TeacherID}
		if x.Volunteer && !volunteered[k] {
			// A volunteer once, whichever of the teacher's exchanges says so.
			volunteered[k] = true
			q.Volunteers++
		}
		if !seen[k] {
			seen[k] = true
			q.Rotating++
			if backbone {
				q.BackboneRotating++
			}
			if cadre {
				q.CadreRotating++
			}
		}
		district[x.TeacherID] = true
		if backbone {
			districtBackbone[x.TeacherID] = true
		}
		if cadre {
			districtCadre[x.TeacherID] = true
		}
		if x.Volunteer {
			districtVolunteer[x.TeacherID] = true
		}
		if !backbone {
			continue
		}
		from, to := in.SchoolsByID[x.SendingSchoolID], in.SchoolsByID[x.ReceivingSchoolID]
		if from == nil || to == nil {
			continue
		}
		switch {
		case from.Tier == TierQuality && to.Tier != TierQuality:
			if !down[x.TeacherID] {
				q.BackboneSentDown++
			}
			down[x.TeacherID] = true
		case from.Tier != TierQuality && to.Tier == TierQuality:
			if !up[x.TeacherID] {
				q.BackboneSentUp++
			}
			up[x.TeacherID] = true
		}
	}

	tot := &QuotaTotals{Schools: len(rep.Schools), BackboneTarget: p.BackboneShare, ParticipationTarget: p.StaffParticipationShare}
	cadre := &CadreQuota{TargetShare: p.CadreShare}
	for _, q := range rep.Schools {
		q.Share = Ratio(q.Rotating, q.Eligible)
		q.Met = true
		if q.TargetShare != nil {
			q.Minimum = MinimumCount(*q.TargetShare, q.Eligible)
			q.Met = q.Rotating >= q.Minimum
			q.Shortfall = max(0, q.Minimum-q.Rotating)
			tot.SchoolsWithTarget++
			if q.Met {
				tot.SchoolsMeetingTarget++
			} else {
				tot.SchoolsBelowTarget++
			}
		}
		q.BackboneShare = Ratio(q.BackboneRotating, q.Rotating)
		q.BackboneMinimum = MinimumCount(p.BackboneShare, q.Rotating)
		q.BackboneMet = q.BackboneRotating >= q.BackboneMinimum
		q.CadreMinimum = MinimumCount(p.CadreShare, q.CadreEligible)
		q.CadreMet = q.CadreRotating >= q.CadreMinimum
		q.SendMinimum = MinimumCount(p.SchoolSendShare, q.Staff)
		q.SendMet = q.Rotating >= q.SendMinimum

		tot.Staff += q.Staff
		tot.Eligible += q.Eligible
		tot.Deferred += q.Deferred
		tot.Minimum += q.Minimum
		cadre.Eligible += q.CadreEligible
	}
	tot.Rotating, tot.Volunteers, tot.BackboneRotating = len(district), len(districtVolunteer), len(districtBackbone)
	tot.Share = Ratio(tot.Rotating, tot.Eligible)
	tot.BackboneShare = Ratio(tot.BackboneRotating, tot.Rotating)
	tot.BackboneMinimum = MinimumCount(p.BackboneShare, tot.Rotating)
	tot.BackboneMet = tot.BackboneRotating >= tot.BackboneMinimum
	tot.ParticipationMinimum = MinimumCount(p.StaffParticipationShare, tot.Staff)
	tot.ParticipationShare = Ratio(tot.Rotating, tot.Staff)
	tot.ParticipationMet = tot.Rotating >= tot.ParticipationMinimum
	rep.Totals = tot

	cadre.Rotating = len(districtCadre)
	cadre.Minimum = MinimumCount(p.CadreShare, cadre.Eligible)
	cadre.Share = Ratio(cadre.Rotating, cadre.Eligible)
	cadre.Met = cadre.Rotating >= cadre.Minimum
	rep.Cadre = cadre

	rf := &ReverseFlow{QualityToLower: len(down), LowerToQuality: len(up)}
	rf.Holds = rf.QualityToLower > rf.LowerToQuality
	if rf.Holds {
		rf.Explanation = fmt.Sprintf("优质学校向一般、薄弱学校交流骨干教师%d人，多于反向交流的%d人，没有逆交流。", rf.QualityToLower, rf.LowerToQuality)
	} else {
		rf.Explanation = fmt.Sprintf("优质学校向一般、薄弱学校交流骨干教师%d人，不多于反向交流的%d人，存在逆交流，须调整。", rf.QualityToLower, rf.LowerToQuality)
	}
	rep.ReverseFlow = rf
	sort.SliceStable(rep.Schools, func(i, j int) bool { return rep.Schools[i].SchoolName < rep.Schools[j].SchoolName })
	return rep
}
