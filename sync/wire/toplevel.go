package wire

import "bytes"

// maxMembers is how many top-level members Decode's one pass keeps track of; a message
// with more (no message of the protocol has half as many) is decoded by decodeStrict.
const maxMembers = 16

// members are the top-level members of a message: where each one's key and value are.
type members struct {
	n    int
	list [maxMembers]struct{ keyStart, keyEnd, valStart, valEnd int }
}

// topLevel walks the top level of a message, an object, without decoding its values:
// it finds each member's key and value and returns the value of the last "type". ok is
// false when the walk finds something it does not expect (a key or "type" written with
// escapes, more than maxMembers members, not an object); Decode then leaves the message
// to decodeStrict. The walk only matches brackets and quotes: whether the values are
// valid JSON is for the decoder that reads them next.
func topLevel(data []byte) (typ []byte, ms members, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, ms, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return nil, ms, false // no "type"
	}
	for {
		if i >= len(data) || data[i] != '"' || ms.n == maxMembers {
			return nil, ms, false
		}
		keyEnd := stringEnd(data, i)
		if keyEnd < 0 || bytes.IndexByte(data[i+1:keyEnd], '\\') >= 0 {
			return nil, ms, false
		}
		m := &ms.list[ms.n]
		m.keyStart, m.keyEnd = i+1, keyEnd
		i = skipSpace(data, keyEnd+1)
		if i >= len(data) || data[i] != ':' {
			return nil, ms, false
		}
		i = skipSpace(data, i+1)
		m.valStart = i
		if i = skipValue(data, i); i < 0 {
			return nil, ms, false
		}
		m.valEnd = i
		ms.n++
		if i = skipSpace(data, i); i >= len(data) {
			return nil, ms, false
		}
		if data[i] == '}' {
			break
		}
		if data[i] != ',' {
			return nil, ms, false
		}
		i = skipSpace(data, i+1)
	}
	v, found := ms.value(data, "type")
	if !found || len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
		return nil, ms, false
	}
	return v[1 : len(v)-1], ms, true
}

// value returns the value of the last member named name (a later duplicate wins, as
// when decoding).
func (ms *members) value(data []byte, name string) ([]byte, bool) {
	for k := ms.n - 1; k >= 0; k-- {
		m := &ms.list[k]
		if string(data[m.keyStart:m.keyEnd]) == name {
			return data[m.valStart:m.valEnd], true
		}
	}
	return nil, false
}

// hasAll reports whether every one of names is a member whose value is not null.
func (ms *members) hasAll(data []byte, names []string) bool {
	for _, name := range names {
		if v, ok := ms.value(data, name); !ok || string(v) == "null" {
			return false
		}
	}
	return true
}

// skipValue returns the index just after the value that starts at data[i], or -1.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		if e := stringEnd(data, i); e >= 0 {
			return e + 1
		}
		return -1
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				e := stringEnd(data, i)
				if e < 0 {
					return -1
				}
				i = e
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	j := i // a number or a literal: up to the next delimiter
	for j < len(data) && !isDelimiter(data[j]) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// stringEnd returns the index of the quote that closes the string opening at data[i],
// or -1.
func stringEnd(data []byte, i int) int {
	for j := i + 1; ; {
		k := bytes.IndexByte(data[j:], '"')
		if k < 0 {
			return -1
		}
		q := j + k
		backslashes := 0
		for p := q - 1; p > i && data[p] == '\\'; p-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return q
		}
		j = q + 1
	}
}

func isDelimiter(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

func onlySpace(b []byte) bool { return skipSpace(b, 0) == len(b) }
