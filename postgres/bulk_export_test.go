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
