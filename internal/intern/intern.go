// Package intern keeps one copy of strings that many long-lived values repeat.
//
// Ten thousand idle tablet sessions each hold their user's ids and scope tokens
// ("t:<teacher>", "ps:<school>", "pd:<district>"): as read from PostgreSQL every session
// has its own copy, although a district's token is the same string for all its teachers
// and a teacher's for both of their tablets. Interned, the sessions share one.
package intern

import "sync"

// maxStrings bounds the table (about 5 MiB of ids and tokens when full): when full it
// starts over, so strings no session holds any more are not kept for ever. A county's
// connected tablets hold a few tens of thousands (a teacher's ids and tokens, shared
// by their tablets; a few hundred schools' and districts').
const maxStrings = 1 << 16

var table = struct {
	sync.RWMutex
	m map[string]string
}{m: map[string]string{}}

// String returns the table's copy of s, adding s when it has none.
func String(s string) string {
	if s == "" {
		return ""
	}
	table.RLock()
	v, ok := table.m[s]
	table.RUnlock()
	if ok {
		return v
	}
	table.Lock()
	defer table.Unlock()
	if v, ok := table.m[s]; ok {
		return v
	}
	if len(table.m) >= maxStrings {
		clear(table.m)
	}
	table.m[s] = s
	return s
}

// Strings replaces each element of ss by the table's copy and returns ss.
func Strings(ss []string) []string {
	for i, s := range ss {
		ss[i] = String(s)
	}
	return ss
}
