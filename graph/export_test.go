package graph

// SetPruneColumns turns reading only the selected columns on or off, and returns the
// previous setting.
func SetPruneColumns(on bool) bool {
	prev := pruneColumns
	pruneColumns = on
	return prev
}
