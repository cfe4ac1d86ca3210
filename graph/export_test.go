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

// SetPlainPOST makes the handlers made afterwards serve POST with gqlgen's transport.
func SetPlainPOST(on bool) { plainPOST = on }

// DataWrites is the number of responses the POST transport wrote around their data.
func DataWrites() int64 { return dataWrites.Load() }

// SetJoinedRefs turns reading references with the page on or off, and returns the
// previous setting.
func SetJoinedRefs(on bool) bool {
	prev := joinedRefs
	joinedRefs = on
	return prev
}

// LoadedByID is the number of records resolvers asked their loaders for so far, rather
// than finding them read ahead with a page.
func LoadedByID() int64 { return loadedByID.Load() }
