package jiaoliu_test

import (
	"fmt"
	"testing"

	"github.com/jiaoliu/jiaoliu"
)

// quotaWorld builds a district: a quality school with n eligible teachers, a general
// school and a weak school, and the exchanges given.
type quotaWorld struct {
	in       jiaoliu.QuotaInput
	teachers map[string]*jiaoliu.Teacher
	n        int
}

func newQuotaWorld(t *testing.T, eligibleAtQuality int) *quotaWorld {
	p := preset(t, "CHUANDI")
	policy := &jiaoliu.Policy{DistrictID: "dist", AcademicYear: string(year), PolicyParams: p}
	schools := []*jiaoliu.School{
		{ID: "q", Name: "北海小学", Locality: jiaoliu.LocalityUrban, Tier: jiaoliu.TierQuality},
		{ID: "g", Name: "川底中心小学", Locality: jiaoliu.LocalityTown, Tier: jiaoliu.TierGeneral},
		{ID: "w", Name: "熊楼小学", Locality: jiaoliu.LocalityRural, Tier: jiaoliu.TierWeak},
	}
	w := &quotaWorld{teachers: map[string]*jiaoliu.Teacher{}}
	byID := map[string]*jiaoliu.School{}
	for _, s := range schools {
		byID[s.ID] = s
	}
	w.in = jiaoliu.QuotaInput{Policy: policy, Year: year, Schools: schools, Teachers: w.teachers, SchoolsByID: byID}
	for range eligibleAtQuality {
		w.teacher("q", jiaoliu.EligibilityMustRotate, jiaoliu.BackboneNone, jiaoliu.PositionTeacher)
	}
	return w
}

func (w *quotaWorld) teacher(school string, status jiaoliu.EligibilityStatus, backbone jiaoliu.BackboneLevel, pos jiaoliu.Position) string {
	w.n++
	id := fmt.Sprintf("t%d", w.n)
	w.teachers[id] = &jiaoliu.Teacher{ID: id, SchoolID: school, BackboneLevel: backbone, Position: pos}
	w.in.Eligibility = append(w.in.Eligibility, &jiaoliu.Eligibility{TeacherID: id, SchoolID: school, Status: status, Cadre: jiaoliu.IsCadre(pos)})
	return id
}

func (w *quotaWorld) exchange(teacher, from, to string, status jiaoliu.ExchangeStatus) {
	w.in.Exchanges = append(w.in.Exchanges, &jiaoliu.Exchange{ID: fmt.Sprintf("x%d", len(w.in.Exchanges)), TeacherID: teacher,
		SendingSchoolID: from, ReceivingSchoolID: to, AcademicYear: string(year), Status: status})
}

func (w *quotaWorld) school(rep *jiaoliu.QuotaReport, id string) *jiaoliu.SchoolQuota {
	for _, q := range rep.Schools {
		if q.SchoolID == id {
			return q
		}
	}
	return nil
}

func TestQuotaShare(t *testing.T) {
	for _, c := range []struct {
		eligible, rotating, minimum int
		met                         bool
	}{
		{7, 1, 2, false}, // 15% of 7 eligible = 2
		{7, 2, 2, true},
		{13, 2, 2, true},
		{14, 2, 3, false},
		{20, 3, 3, true},
		{0, 0, 0, true},
	} {
		t.Run(fmt.Sprintf("%d of %d", c.rotating, c.eligible), func(t *testing.T) {
			w := newQuotaWorld(t, c.eligible)
			for i := range c.rotating {
				w.exchange(fmt.Sprintf("t%d", i+1), "q", "w", jiaoliu.StatusActive)
			}
			q := w.school(jiaoliu.ComputeQuotas(w.in), "q")
			if q.Eligible != c.eligible || q.Rotating != c.rotating || q.Minimum != c.minimum || q.Met != c.met {
				t.Fatalf("quota=%+v", q)
			}
		})
	}
	t.Run("general school: ceil(10% of 14) = 2", func(t *testing.T) {
		w := newQuotaWorld(t, 0)
		for range 14 {
			w.teacher("g", jiaoliu.EligibilityMustRotate, jiaoliu.BackboneNone, jiaoliu.PositionTeacher)
		}
		w.exchange("t1", "g", "w", jiaoliu.StatusPublished)
		q := w.school(jiaoliu.ComputeQuotas(w.in), "g")
		if q.Minimum != 2 || q.Met || q.Shortfall != 1 || *q.TargetShare != 10 {
			t.Fatalf("quota=%+v", q)
		}
	})
}

func TestQuotaCounting(t *testing.T) {
	w := newQuotaWorld(t, 10)
	// Counting statuses only; a teacher counts once however many exchanges.
	w.exchange("t1", "q", "w", jiaoliu.StatusApproved)
	w.exchange("t2", "q", "w", jiaoliu.StatusPublished)
	w.exchange("t3", "q", "w", jiaoliu.StatusActive)
	w.exchange("t4", "q", "w", jiaoliu.StatusCompleted)
	w.exchange("t4", "q", "g", jiaoliu.StatusActive)
	for _, s := range []jiaoliu.ExchangeStatus{jiaoliu.StatusProposed, jiaoliu.StatusDeferred, jiaoliu.StatusRefused, jiaoliu.StatusCancelled, jiaoliu.StatusTerminated} {
		w.exchange("t5", "q", "w", s)
	}
	// A volunteer who is not eligible counts as rotating.
	vol := w.teacher("q", jiaoliu.EligibilityMayVolunteer, jiaoliu.BackboneNone, jiaoliu.PositionTeacher)
	w.exchange(vol, "q", "w", jiaoliu.StatusActive)
	w.in.Exchanges[len(w.in.Exchanges)-1].Volunteer = true
	// An exchange of another year does not count.
	w.in.Exchanges = append(w.in.Exchanges, &jiaoliu.Exchange{TeacherID: "t6", SendingSchoolID: "q", ReceivingSchoolID: "w", AcademicYear: "2025-2026", Status: jiaoliu.StatusCompleted})
	// A deferred teacher is not eligible.
	w.teacher("q", jiaoliu.EligibilityDeferred, jiaoliu.BackboneNone, jiaoliu.PositionTeacher)

	rep := jiaoliu.ComputeQuotas(w.in)
	q := w.school(rep, "q")
	if q.Eligible != 10 || q.Deferred != 1 || q.Rotating != 5 || q.Volunteers != 1 || q.Staff != 12 {
		t.Fatalf("quota=%+v", q)
	}
	if *q.Share != 50 || q.Minimum != 2 || !q.Met {
		t.Fatalf("share=%v minimum=%d met=%v", *q.Share, q.Minimum, q.Met)
	}
	if rep.Totals.Rotating != 5 || rep.Totals.Eligible != 10 {
		t.Fatalf("totals=%+v", rep.Totals)
	}
	if w.school(rep, "w").TargetShare != nil || !w.school(rep, "w").Met {
		t.Fatalf("weak school has no target: %+v", w.school(rep, "w"))
	}
}

func TestBackboneShareAndReverseFlow(t *testing.T) {
	for _, c := range []struct {
		name       string
		down, up   int
		holds      bool
		backbone   int
		rotating   int
		backboneOK bool
	}{
		{"none either way: equal fails", 0, 0, false, 0, 0, true},
		{"equal fails", 1, 1, false, 2, 2, true},
		{"more down than up holds", 2, 1, true, 3, 3, true},
		{"more up than down fails", 1, 2, false, 3, 3, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newQuotaWorld(t, 0)
			for range c.down {
				id := w.teacher("q", jiaoliu.EligibilityMustRotate, jiaoliu.BackboneCounty, jiaoliu.PositionTeacher)
				w.exchange(id, "q", "w", jiaoliu.StatusActive)
			}
			for range c.up {
				id := w.teacher("g", jiaoliu.EligibilityMayVolunteer, jiaoliu.BackboneSchool, jiaoliu.PositionTeacher)
				w.exchange(id, "g", "q", jiaoliu.StatusActive)
			}
			rep := jiaoliu.ComputeQuotas(w.in)
			rf := rep.ReverseFlow
			if rf.QualityToLower != c.down || rf.LowerToQuality != c.up || rf.Holds != c.holds {
				t.Fatalf("reverse flow=%+v", rf)
			}
			if rep.Totals.BackboneRotating != c.backbone || rep.Totals.Rotating != c.rotating || rep.Totals.BackboneMet != c.backboneOK {
				t.Fatalf("totals=%+v", rep.Totals)
			}
		})
	}
	t.Run("backbone share 20% of 6 rotating needs 2", func(t *testing.T) {
		w := newQuotaWorld(t, 6)
		for i := range 6 {
			w.exchange(fmt.Sprintf("t%d", i+1), "q", "w", jiaoliu.StatusActive)
		}
		w.teachers["t1"].BackboneLevel = jiaoliu.BackboneCity
		rep := jiaoliu.ComputeQuotas(w.in)
		q := w.school(rep, "q")
		if q.BackboneRotating != 1 || q.BackboneMinimum != 2 || q.BackboneMet {
			t.Fatalf("quota=%+v", q)
		}
		w.teachers["t2"].BackboneLevel = jiaoliu.BackboneSchool
		if q := w.school(jiaoliu.ComputeQuotas(w.in), "q"); !q.BackboneMet || *q.BackboneShare != 33.33 {
			t.Fatalf("quota=%+v", q)
		}
	})
}

func TestCadreQuota(t *testing.T) {
	w := newQuotaWorld(t, 0)
	for range 7 {
		w.teacher("q", jiaoliu.EligibilityMustRotate, jiaoliu.BackboneNone, jiaoliu.PositionMiddleManager)
	}
	w.exchange("t1", "q", "w", jiaoliu.StatusActive)
	rep := jiaoliu.ComputeQuotas(w.in)
	if c := rep.Cadre; c.Eligible != 7 || c.Rotating != 1 || c.Minimum != 2 || c.Met {
		t.Fatalf("cadre=%+v", c)
	}
	w.exchange("t2", "q", "g", jiaoliu.StatusApproved)
	if c := jiaoliu.ComputeQuotas(w.in).Cadre; !c.Met {
		t.Fatalf("cadre=%+v", c)
	}
}

// TestQuotaVolunteerCountsOnce checks that a teacher with two counting exchanges of the
// year, the second a volunteer one (个人申报), counts once as rotating and once as a
// volunteer, whatever the order of the exchanges.
func TestQuotaVolunteerCountsOnce(t *testing.T) {
	w := newQuotaWorld(t, 3)
	w.exchange("t1", "q", "w", jiaoliu.StatusApproved)
	w.exchange("t1", "q", "g", jiaoliu.StatusActive)
	w.in.Exchanges[1].Volunteer = true
	rep := jiaoliu.ComputeQuotas(w.in)
	if q := w.school(rep, "q"); q.Rotating != 1 || q.Volunteers != 1 || rep.Totals.Volunteers != 1 {
		t.Fatalf("rotating=%d volunteers=%d district volunteers=%d", q.Rotating, q.Volunteers, rep.Totals.Volunteers)
	}
}
