package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jiaoliu/jiaoliu"
)

// WarmDashboards computes the dashboard of every district as of day (its academic
// year's) as the system, so that
// the parts the district views keep between calls (policy_cache.go) are ready before
// an administrator asks. Without it the first dashboard of a district after a start,
// and the first of each day (the activity, progress and pairs are kept per as-of day),
// is computed from nothing: 235-260 ms of CPU on the generated district, against
// 35-40 ms once its parts are kept. The parts are kept by scope, not by who asked, so
// the system's computation serves every administrator of the district. A district
// whose dashboard cannot be computed (no policy yet) is skipped; the count of those is
// returned with the first error.
func (s *Store) WarmDashboards(ctx context.Context, day jiaoliu.Date) (warmed int, err error) {
	ctx = jiaoliu.NewContextWithActor(ctx, jiaoliu.SystemActor)
	var ids []string
	if err := s.db.SelectContext(ctx, &ids, `SELECT id FROM districts WHERE NOT deleted ORDER BY id`); err != nil {
		return 0, fmt.Errorf("warm dashboards: %w", err)
	}
	var failed int
	var first error
	for _, id := range ids {
		if _, err := s.DistrictDashboard(ctx, id, jiaoliu.AcademicYearOf(day), day); err != nil {
			if ctx.Err() != nil {
				return warmed, ctx.Err()
			}
			failed++
			if first == nil {
				first = fmt.Errorf("warm dashboard of district %s: %w", id, err)
			}
			continue
		}
		warmed++
	}
	if first != nil {
		return warmed, fmt.Errorf("%d of %d districts: %w", failed, len(ids), first)
	}
	return warmed, nil
}

// KeepDashboardsWarm warms today's dashboards now and again just after each midnight in
// China (the default as-of day of the views changes then), until ctx ends.
func (s *Store) KeepDashboardsWarm(ctx context.Context) {
	for {
		start := time.Now()
		n, err := s.WarmDashboards(ctx, Today())
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.log.Info("dashboards not warmed", "warmed", n, "error", err.Error())
		} else {
			s.log.Debug("dashboards warmed", "districts", n, "duration", time.Since(start).Round(time.Millisecond).String())
		}
		now := time.Now().In(chinaTime)
		next := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 30, 0, chinaTime)
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
