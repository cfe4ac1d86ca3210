package postgres

import "github.com/jiaoliu/jiaoliu"

// Queries of the policy views, for the benchmarks' EXPLAIN.
var (
	ActivityQuery   = activityQuery
	AbsenceRunQuery = absenceRunQuery
	BucketOf        = bucketOf
)

// SetProbeBroadLists switches the per-row scope lookup of broad lists and returns a
// function that restores it.
func SetProbeBroadLists(on bool) func() {
	old := probeBroadLists
	probeBroadLists = on
	return func() { probeBroadLists = old }
}

// SessionCheckEvery is how long a session is kept without reading its user again.
const SessionCheckEvery = sessionCheckEvery

// DashboardKept reports whether the district views keep the parts of the district's
// dashboard of year as of asOf (its eligibility and quotas, the progress of its
// exchanges and its pairs).
func DashboardKept(s *Store, district string, y jiaoliu.AcademicYear, asOf jiaoliu.Date) bool {
	key := district + "//" + string(y)
	s.views.mu.Lock()
	defer s.views.mu.Unlock()
	return s.views.rules[key] != nil && s.views.progress[key+"@"+asOf.String()] != nil && s.views.pairs[key+"@"+asOf.String()] != nil
}
