package postgres_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// TestWarmDashboards: after WarmDashboards the store keeps the day's dashboard parts of
// the district (so its administrator's first call is not computed from nothing), and
// what the administrator then gets is what a store that warmed nothing answers.
func TestWarmDashboards(t *testing.T) {
	w := newPolicyWorld(t)
	today := weekdays[42] // a day of the world's year (Today() would leave it one day)
	y := jiaoliu.AcademicYearOf(today)
	if postgres.DashboardKept(w.store, w.district, y, today) {
		t.Fatal("kept before warming")
	}
	n, err := w.store.WarmDashboards(context.Background(), today)
	if err != nil {
		t.Logf("warm: %v", err) // the other district of the world may have no policy
	}
	if n == 0 || !postgres.DashboardKept(w.store, w.district, y, today) {
		t.Fatalf("warmed %d districts; dashboard of %s for %s kept: false", n, w.district, today)
	}
	got, err := w.store.DistrictDashboard(districtAdmin(w.district), w.district, y, today)
	if err != nil {
		t.Fatal(err)
	}
	fresh := postgres.NewStore(w.store.DB(), hlc.NewClock("fresh"), nil)
	want, err := fresh.DistrictDashboard(districtAdmin(w.district), w.district, y, today)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("warmed store's dashboard differs from a fresh store's:\n%+v\n%+v", got, want)
	}
}
