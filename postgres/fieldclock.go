package postgres

import (
	"encoding/json"
	"fmt"
	"strings"
)

// A record's field clock (its field_hlc column) holds, for each field a write set, the
// HLC of that write; jiaoliu.Merge compares a pushed field's HLC with it. Written as
// {"field": "hlc", …} it was two thirds of a created lesson's row: ten HLCs of ~55 bytes
// (the device's id is their node), all the same, each under its field's name — 49 MB of
// a 71 MB table of 50,000 lessons, and 5 µs of PostgreSQL's 15 to COPY each row into it.
//
// So it is stored compactly: the HLC most fields share under "*", the names of those
// fields, sorted and joined by commas, under "*fields", and any other field under its
// own name, as before. A created record's clock is then
//
//	{"*": "1795512922416-61a8-890d4e84-…", "*fields": "className,date,…,topic"}
//
// (19 MB for the same 50,000 lessons). The fields are named, not implied ("every field
// but those listed"), so a field an entity gains later has no HLC in its older records,
// as it had none before. decodeClock reads both forms; rows written before stay as they
// are until their record is written again.
const (
	clockShared       = "*"
	clockSharedFields = "*fields"
)

// appendClock appends clock (field name → HLC) as JSON in its stored form. Fields whose
// names could not be listed (a comma, a leading "*"; never a field of an entity) are
// written under their own names.
func appendClock(b []byte, clock map[string]string) []byte {
	var fixed [24]clockEntry
	es := fixed[:0]
	for k, v := range clock {
		// Insertion sort by name (a clock has a few dozen fields at most): slices.SortFunc
		// measured 1.5× the whole encoding's time, on every created record.
		i := len(es)
		es = append(es, clockEntry{})
		for ; i > 0 && es[i-1].k > k; i-- {
			es[i] = es[i-1]
		}
		es[i] = clockEntry{k: k, v: v, listable: listable(k)}
	}
	shared := sharedHLC(es)
	for i := range es {
		es[i].listed = shared != "" && es[i].listable && es[i].v == shared
	}
	b = append(b, '{')
	first := true
	if shared != "" {
		b = append(b, `"*":`...)
		b = appendJSONString(b, shared)
		b = append(b, `,"*fields":"`...)
		n := 0
		for _, e := range es {
			if e.listed {
				if n > 0 {
					b = append(b, ',')
				}
				b = append(b, e.k...) // listable: JSON as it is
				n++
			}
		}
		b = append(b, '"')
		first = false
	}
	for _, e := range es {
		if e.listed {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, e.k)
		b = append(b, ':')
		b = appendJSONString(b, e.v)
	}
	return append(b, '}')
}

// clockEntry is a field of a clock being written: its name, its HLC, whether its name
// can be listed under "*fields", and whether it is.
type clockEntry struct {
	k, v             string
	listable, listed bool
}

// clockJSON is appendClock's text.
func clockJSON(clock map[string]string) string {
	return string(appendClock(nil, clock))
}

// sharedHLC returns the HLC that most of the fields of es (sorted by name) have, if at
// least two listable ones have it, else "" (of two as common, the greater).
func sharedHLC(es []clockEntry) string {
	best, most := "", 1
	for i, e := range es {
		if e.v == "" || e.v == best || !e.listable {
			continue
		}
		n := 1
		for _, o := range es[i+1:] {
			if o.v == e.v && o.listable {
				n++
			}
		}
		if n > most || (n == most && most > 1 && e.v > best) {
			best, most = e.v, n
		}
		if most >= len(es)-i {
			break // no later value can be as common
		}
	}
	return best
}

// listable reports whether a field name can be listed under "*fields".
func listable(name string) bool {
	if name == "" || name[0] == '*' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= 0x20 || c >= 0x7f || c == ',' || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// decodeClock reads a stored field clock, in either form (see appendClock).
func decodeClock(raw []byte) (map[string]string, error) {
	clock := map[string]string{}
	if err := json.Unmarshal(raw, &clock); err != nil {
		return nil, fmt.Errorf("field clock: %w", err)
	}
	shared, ok := clock[clockShared]
	if !ok {
		return clock, nil
	}
	names := clock[clockSharedFields]
	delete(clock, clockShared)
	delete(clock, clockSharedFields)
	for name := range strings.SplitSeq(names, ",") {
		if _, own := clock[name]; !own && name != "" {
			clock[name] = shared
		}
	}
	return clock, nil
}

// DecodeFieldClock returns the HLC of each field of a record's stored field clock (its
// field_hlc column, as text), for tests and tools that read the table.
func DecodeFieldClock(raw string) (map[string]string, error) {
	return decodeClock([]byte(raw))
}

// EncodeFieldClock returns clock as the write path stores it in field_hlc.
func EncodeFieldClock(clock map[string]string) string {
	return clockJSON(clock)
}
