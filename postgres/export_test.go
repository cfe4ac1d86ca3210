package postgres

import (
	"time"

	"github.com/jiaoliu/jiaoliu"
)

// Queries of the policy views, for the benchmarks' EXPLAIN.
var (
	ActivityQuery      = activityQuery
	AbsentRecordsQuery = absentRecordsQuery
	PairsFPQuery       = pairsFingerprintQuery
	PairDatesQuery     = pairDatesQuery
	EvaluationsQuery   = evaluationsQuery
)

// SetBlindRanges switches reading a broad page's date range through subqueries and
// returns a function that restores it.
func SetBlindRanges(on bool) func() {
	old := blindRanges
	blindRanges = on
	return func() { blindRanges = old }
}

// SetDistrictScopes switches reading a district reader's scope from the records'
// district_scopes (off: from the change log) and returns a function that restores it.
func SetDistrictScopes(on bool) func() {
	old := districtScopes
	districtScopes = on
	return func() { districtScopes = old }
}

// SetNarrowLists switches the by-exchange reading of narrow lists and returns a
// function that restores it.
func SetNarrowLists(on bool) func() {
	old := narrowLists
	narrowLists = on
	return func() { narrowLists = old }
}

// NarrowFallbacks is how many narrow pages were read the general way so far.
func NarrowFallbacks() int64 { return narrowFallbacks.Load() }

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

// PairInputLoads is how many times the pairs' activities were read so far.
func PairInputLoads() int64 { return pairInputLoads.Load() }

// WaitWriteStatements waits until no shared statement of the write path is being
// prepared (at most 10 s).
func WaitWriteStatements(s *Store) {
	for range 10000 {
		s.writeStmts.mu.Lock()
		n := len(s.writeStmts.pending)
		s.writeStmts.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
