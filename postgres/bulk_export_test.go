package postgres

// SetBulk turns the write path's bulk path on or off for a test and returns a function
// that restores it.
func SetBulk(on bool) (restore func()) {
	old := minBulk
	if on {
		minBulk = 4
	} else {
		minBulk = 1 << 30
	}
	return func() { minBulk = old }
}

// BulkCounts returns how many ops the bulk path applied, and how many it gave back
// because the database refused their run, since the process started.
func BulkCounts() (applied, refused int64) { return bulkApplied.Load(), bulkRefused.Load() }

// SetMinBulk sets the shortest run the bulk path takes (1: every op it can) and returns
// a function that restores it.
func SetMinBulk(n int) (restore func()) {
	old := minBulk
	minBulk = n
	return func() { minBulk = old }
}

// SetLockFirst turns on or off the locking of a batch's records and natural keys before
// its ops are applied, and returns a function that restores it.
func SetLockFirst(on bool) (restore func()) {
	old := lockFirst
	lockFirst = on
	return func() { lockFirst = old }
}

// ApplyRetries returns how many times Apply ran a batch again since the process started.
func ApplyRetries() int64 { return applyRetries.Load() }

// SetApplyFault makes f run at the start of every attempt of Apply (its error is the
// attempt's) and returns a function that removes it.
func SetApplyFault(f func(attempt int) error) (restore func()) {
	old := applyFault
	applyFault = f
	return func() { applyFault = old }
}

// SeenRetries returns how many batches taken for new were run again, their opIds looked
// up first.
func SeenRetries() int64 { return seenRetries.Load() }
