package postgres

// Queries of the policy views, for the benchmarks' EXPLAIN.
var (
	ActivityQuery   = activityQuery
	AbsenceRunQuery = absenceRunQuery
	BucketOf        = bucketOf
)
