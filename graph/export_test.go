package graph

// SetPruneColumns turns reading only the selected columns on or off, and returns the
// previous setting.
func SetPruneColumns(on bool) bool {
	prev := pruneColumns
	pruneColumns = on
	return prev
}

// SetDirectLists turns direct lists on or off, and returns the previous setting.
func SetDirectLists(on bool) bool {
	prev := directLists
	directLists = on
	return prev
}

// DirectListed is the number of lists written directly so far.
func DirectListed() int64 { return directListed.Load() }
