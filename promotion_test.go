package jiaoliu_test

import (
	"testing"

	"github.com/jiaoliu/jiaoliu"
)

func TestCheckPromotion(t *testing.T) {
	group := "grp"
	main := "main"
	schools := map[string]*jiaoliu.School{
		"urban":  {ID: "urban", Name: "北海小学", Locality: jiaoliu.LocalityUrban, Tier: jiaoliu.TierQuality},
		"urban2": {ID: "urban2", Name: "西街小学", Locality: jiaoliu.LocalityUrban, Tier: jiaoliu.TierQuality},
		"rural":  {ID: "rural", Name: "熊楼小学", Locality: jiaoliu.LocalityRural, Tier: jiaoliu.TierGeneral},
		"weak":   {ID: "weak", Name: "宋楼小学", Locality: jiaoliu.LocalityTown, Tier: jiaoliu.TierWeak},
		"main":   {ID: "main", Name: "双河五小", Locality: jiaoliu.LocalityUrban, Tier: jiaoliu.TierQuality, GroupID: &group},
		"branch": {ID: "branch", Name: "柳山小学", Locality: jiaoliu.LocalityTown, Tier: jiaoliu.TierGeneral, GroupID: &group},
	}
	groups := map[string]*jiaoliu.SchoolGroup{group: {ID: group, MainSchoolID: &main}}
	stint := func(school, from, to string) *jiaoliu.SchoolStint {
		s := &jiaoliu.SchoolStint{SchoolID: school, StartDate: d(from)}
		if to != "" {
			s.EndDate = dp(to)
		}
		return s
	}
	check := func(current, joined string, stints ...*jiaoliu.SchoolStint) *jiaoliu.PromotionCheck {
		return jiaoliu.CheckPromotion(jiaoliu.PromotionInput{
			Teacher: &jiaoliu.Teacher{ID: "t", Name: "王芳", SchoolID: current, JoinedSchoolOn: d(joined)},
			Stints:  stints, Schools: schools, Groups: groups, AsOf: d("2026-11-22"),
		})
	}

	t.Run("364 days at a rural school: no senior title", func(t *testing.T) {
		pc := check("urban", "2020-09-01", stint("rural", "2019-09-01", "2020-08-29"))
		if pc.RuralOrWeakDays != 364 || pc.SeniorTitle.Met || len(pc.SeniorTitle.Missing) == 0 {
			t.Fatalf("days=%d senior=%+v", pc.RuralOrWeakDays, pc.SeniorTitle)
		}
	})
	t.Run("365 days at a weak school: senior title", func(t *testing.T) {
		pc := check("urban", "2020-09-01", stint("weak", "2019-09-01", "2020-08-30"))
		if pc.RuralOrWeakDays != 365 || !pc.SeniorTitle.Met {
			t.Fatalf("days=%d senior=%+v", pc.RuralOrWeakDays, pc.SeniorTitle)
		}
	})
	t.Run("awards: two schools with two years each", func(t *testing.T) {
		pc := check("urban", "2020-09-01", stint("urban2", "2016-09-01", "2018-08-31"))
		if pc.Schools != 2 || pc.SchoolsWithTwoYears != 2 || !pc.Award.Met || pc.Principal.Met {
			t.Fatalf("check=%+v award=%+v principal=%+v", pc, pc.Award, pc.Principal)
		}
	})
	t.Run("awards: a day short of two years at the second school", func(t *testing.T) {
		pc := check("urban", "2020-09-01", stint("urban2", "2016-09-01", "2018-08-30"))
		if pc.SchoolsWithTwoYears != 1 || pc.Award.Met {
			t.Fatalf("check=%+v award=%+v", pc, pc.Award)
		}
	})
	t.Run("new principal: two schools and three years rural", func(t *testing.T) {
		pc := check("urban", "2020-09-01", stint("rural", "2017-09-01", "2020-08-31"))
		if !pc.Principal.Met || !pc.Award.Met || !pc.SeniorTitle.Met {
			t.Fatalf("principal=%+v award=%+v", pc.Principal, pc.Award)
		}
	})
	t.Run("main campus to branch counts as weak-school experience", func(t *testing.T) {
		pc := check("main", "2015-09-01", stint("main", "2015-09-01", ""), stint("branch", "2024-09-01", "2025-08-31"))
		if pc.RuralOrWeakDays != 365 || !pc.SeniorTitle.Met {
			t.Fatalf("days=%d history=%+v", pc.RuralOrWeakDays, pc.History)
		}
	})
	t.Run("branch to main is another school, not weak-school experience", func(t *testing.T) {
		pc := check("branch", "2018-09-01", stint("main", "2022-09-01", "2024-08-31"))
		if pc.RuralOrWeakDays != 0 || pc.Schools != 2 || pc.SchoolsWithTwoYears != 2 {
			t.Fatalf("check=%+v", pc)
		}
	})
	t.Run("overlapping periods count once", func(t *testing.T) {
		pc := check("urban", "2020-09-01", stint("rural", "2018-09-01", "2019-08-31"), stint("rural", "2019-03-01", "2019-08-31"))
		if pc.RuralOrWeakDays != 365 {
			t.Fatalf("days=%d", pc.RuralOrWeakDays)
		}
	})
	t.Run("refusal this year blocks promotion and awards", func(t *testing.T) {
		pc := jiaoliu.CheckPromotion(jiaoliu.PromotionInput{
			Teacher: &jiaoliu.Teacher{ID: "t", SchoolID: "urban", JoinedSchoolOn: d("2020-09-01")},
			Stints:  []*jiaoliu.SchoolStint{stint("rural", "2015-09-01", "2020-08-31")},
			Schools: schools, Groups: groups, AsOf: d("2026-11-22"),
			Exchanges: []*jiaoliu.Exchange{{Status: jiaoliu.StatusRefused, AcademicYear: "2026-2027"}},
		})
		if pc.RefusedYear == nil || pc.SeniorTitle.Met || pc.Award.Met {
			t.Fatalf("senior=%+v award=%+v", pc.SeniorTitle, pc.Award)
		}
	})
}
