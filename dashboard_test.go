package jiaoliu_test

import (
	"fmt"
	"testing"

	"github.com/jiaoliu/jiaoliu"
)

func alertKinds(list []*jiaoliu.Alert) map[string]int {
	out := map[string]int{}
	for _, a := range list {
		out[a.Kind]++
	}
	return out
}

// TestTierShareAlert checks "quality and weak schools each at most 30% of a district's
// schools": 3 of 10 is within, 4 of 10 is not.
func TestTierShareAlert(t *testing.T) {
	for _, c := range []struct {
		quality, weak, general int
		want                   int
	}{
		{3, 3, 4, 0},
		{4, 3, 3, 1},
		{3, 4, 3, 1},
		{4, 4, 2, 2},
	} {
		t.Run(fmt.Sprintf("%d quality %d weak of %d", c.quality, c.weak, c.quality+c.weak+c.general), func(t *testing.T) {
			rep := &jiaoliu.QuotaReport{ReverseFlow: &jiaoliu.ReverseFlow{Holds: true}, Totals: &jiaoliu.QuotaTotals{}}
			for tier, n := range map[jiaoliu.Tier]int{jiaoliu.TierQuality: c.quality, jiaoliu.TierWeak: c.weak, jiaoliu.TierGeneral: c.general} {
				for range n {
					rep.Schools = append(rep.Schools, &jiaoliu.SchoolQuota{Tier: tier, Met: true})
				}
			}
			if got := alertKinds(jiaoliu.Alerts(nil, rep))["TIER_SHARE_EXCEEDED"]; got != c.want {
				t.Fatalf("TIER_SHARE_EXCEEDED alerts=%d, want %d", got, c.want)
			}
		})
	}
	t.Run("a school administrator's view has no district balance", func(t *testing.T) {
		rep := &jiaoliu.QuotaReport{Schools: []*jiaoliu.SchoolQuota{{Tier: jiaoliu.TierQuality, Met: true}}}
		if got := alertKinds(jiaoliu.Alerts(nil, rep))["TIER_SHARE_EXCEEDED"]; got != 0 {
			t.Fatalf("alerts=%d", got)
		}
	})
}

// TestExchangeTooShortAlert checks that an exchange planned shorter than the policy's
// minimum length is flagged while it can still be changed or is under way.
func TestExchangeTooShortAlert(t *testing.T) {
	p := preset(t, "YULIN") // ≥ 3 academic years
	for _, c := range []struct {
		status jiaoliu.ExchangeStatus
		end    string
		want   int
	}{
		{jiaoliu.StatusActive, "2027-07-15", 1},
		{jiaoliu.StatusProposed, "2027-07-15", 1},
		{jiaoliu.StatusActive, "2029-07-15", 0},
		{jiaoliu.StatusCancelled, "2027-07-15", 0},
		{jiaoliu.StatusCompleted, "2027-07-15", 0},
	} {
		t.Run(fmt.Sprintf("%s until %s", c.status, c.end), func(t *testing.T) {
			x := &jiaoliu.Exchange{ID: "x", TeacherID: "t", Status: c.status, Mode: jiaoliu.ModeFullTime, AcademicYear: "2026-2027",
				PlannedStart: d("2026-09-01"), PlannedEnd: d(c.end), ReportedOn: dp("2026-09-01")}
			pr := jiaoliu.ComputeProgress(jiaoliu.ProgressInput{Policy: p, Exchange: x, AsOf: d("2026-11-01")})
			if got := alertKinds(jiaoliu.Alerts([]*jiaoliu.ExchangeProgress{pr}, nil))["EXCHANGE_TOO_SHORT"]; got != c.want {
				t.Fatalf("EXCHANGE_TOO_SHORT alerts=%d, want %d (%s)", got, c.want, pr.Length.Explanation)
			}
		})
	}
}
