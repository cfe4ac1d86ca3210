package jiaoliu_test

import (
	"fmt"
	"testing"

	"github.com/jiaoliu/jiaoliu"
)

// BenchmarkComputeProgress applies the progress rules to a district's worth of
// exchanges of every mode (2,000, as in the dashboards' generated district), each with
// its evaluations, as a dashboard of another day does: the Go part of that dashboard.
func BenchmarkComputeProgress(b *testing.B) {
	p := preset(b, "CHUANDI")
	modes := []jiaoliu.ExchangeMode{jiaoliu.ModeFullTime, jiaoliu.ModeItinerant, jiaoliu.ModeLessonDelivery, jiaoliu.ModeSecondment, jiaoliu.ModeGroupInternal}
	group := "g"
	sending := &jiaoliu.School{ID: "s", Name: "城关一小", Locality: jiaoliu.LocalityUrban, GroupID: &group}
	receiving := &jiaoliu.School{ID: "r", Name: "朱家沟小学", Locality: jiaoliu.LocalityRural, AverageWeeklyLessons: 12}
	grade := jiaoliu.GradeBasic
	var inputs []jiaoliu.ProgressInput
	for i := range 2000 {
		x := &jiaoliu.Exchange{ID: fmt.Sprintf("x%d", i), TeacherID: fmt.Sprintf("t%d", i), Mode: modes[i%len(modes)], Status: jiaoliu.StatusActive,
			AcademicYear: "2026-2027", PlannedStart: d("2026-09-01"), PlannedEnd: d("2028-07-15"), ReportedOn: dp("2026-09-0" + fmt.Sprint(1+i%9))}
		evals := []*jiaoliu.Evaluation{{ID: x.ID + "e1", ExchangeID: x.ID, Period: jiaoliu.PeriodSemester, Term: "2026-2027-1", Finalized: i%3 > 0}}
		if i%50 == 0 {
			evals[0].Grade = &grade
		}
		inputs = append(inputs, jiaoliu.ProgressInput{Policy: p, Exchange: x, TeacherName: "李老师", Sending: sending, Receiving: receiving,
			Activity: jiaoliu.ExchangeActivity{ExchangeID: x.ID, Lessons: 200 + i%40, LessonWeeks: 20, DemonstrationLessons: i % 4, GuidanceLessons: i % 5,
				ResearchActivities: i % 7, Present: 100, Absent: i % 12, LongestAbsentRun: jiaoliu.AbsenceRun{Length: i % 7, From: d("2026-11-02"), To: d("2026-11-10")}},
			Evaluations: evals, AsOf: d("2027-03-15"), Year: "2026-2027"})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, in := range inputs {
			jiaoliu.ComputeProgress(in)
		}
	}
}
