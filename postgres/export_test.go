package postgres

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
