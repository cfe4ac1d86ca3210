package wire

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/jiaoliu/jiaoliu"
)

// The two messages that carry records by the hundred, a device's push and a pull's
// changes, are read by the functions below rather than by encoding/json's reflection,
// which spent most of a push's decoding on building each op's map of fields (7.4 µs an
// op). They read JSON that json.Valid has accepted, and give up (ok false) on anything
// encoding/json would refuse or might read differently: a value of the wrong type, a
// null where Decode refuses one, a key spelled with escapes or other than ASCII that is
// not the field's exact name. Decode then decodes the message with encoding/json.
// FuzzDecodeAgreesWithStrict checks that both read every input alike.

// forMembers calls f with each member of the object that starts at data[i] (key
// unescaped only when it has no escapes; ok false otherwise) and returns the index
// after the object. f returns the index after the member's value.
func forMembers(data []byte, i int, f func(key []byte, v int) (int, bool)) (int, bool) {
	if data[i] != '{' {
		return 0, false
	}
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return i + 1, true
	}
	for {
		end := stringEnd(data, i)
		key := data[i+1 : end]
		if bytes.IndexByte(key, '\\') >= 0 {
			return 0, false
		}
		i = skipSpace(data, end+1) // at ':'
		next, ok := f(key, skipSpace(data, i+1))
		if !ok {
			return 0, false
		}
		i = skipSpace(data, next)
		if data[i] == '}' {
			return i + 1, true
		}
		i = skipSpace(data, i+1) // after ','
	}
}

// fieldOf returns the index among names of the struct field that key names, as
// encoding/json matches them (exactly, or equal under case folding), or -1. ok is false
// when Decode leaves the object to encoding/json: a field named twice (encoding/json
// would decode the second into what the first left), or a non-ASCII key that is not an
// exact match (its folding is encoding/json's to say). seen keeps the fields met.
func fieldOf(key []byte, names []string, seen *uint16) (idx int, ok bool) {
	idx = -1
	for k, name := range names {
		if string(key) == name {
			idx = k
			break
		}
	}
	if idx < 0 {
		for _, c := range key {
			if c >= utf8.RuneSelf {
				return -1, false
			}
		}
		for k, name := range names {
			if len(key) == len(name) && bytes.EqualFold(key, []byte(name)) {
				idx = k
				break
			}
		}
	}
	if idx >= 0 {
		if *seen&(1<<idx) != 0 {
			return -1, false
		}
		*seen |= 1 << idx
	}
	return idx, true
}

// stringAt reads the string that starts at data[i] (a quote); ok is false for another
// type. A null leaves *s as it is, as encoding/json does.
func stringAt(data []byte, i int, s *string) (int, bool) {
	switch data[i] {
	case 'n':
		return i + 4, true
	case '"':
	default:
		return 0, false
	}
	end := stringEnd(data, i)
	raw := data[i+1 : end]
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		*s = string(raw)
	} else if err := json.Unmarshal(data[i:end+1], s); err != nil {
		return 0, false
	}
	return end + 1, true
}

// boolAt reads the boolean at data[i]; a null leaves *b as it is.
func boolAt(data []byte, i int, b *bool) (int, bool) {
	switch data[i] {
	case 't':
		*b = true
		return i + 4, true
	case 'f':
		*b = false
		return i + 5, true
	case 'n':
		return i + 4, true
	}
	return 0, false
}

// intAt reads the integer at data[i]; a null leaves *n as it is.
func intAt(data []byte, i int, n *int) (int, bool) {
	if data[i] == 'n' {
		return i + 4, true
	}
	end := skipValue(data, i)
	v, err := strconv.ParseInt(string(data[i:end]), 10, 0)
	if err != nil {
		return 0, false
	}
	*n = int(v)
	return end, true
}

// valueAt reads any value as encoding/json does into an any with UseNumber.
func valueAt(data []byte, i int) (any, int, bool) {
	switch c := data[i]; {
	case c == '"':
		var s string
		next, ok := stringAt(data, i, &s)
		return s, next, ok
	case c == 't' || c == 'f':
		var b bool
		next, ok := boolAt(data, i, &b)
		return b, next, ok
	case c == 'n':
		return nil, i + 4, true
	case c == '{' || c == '[':
		end := skipValue(data, i)
		dec := json.NewDecoder(bytes.NewReader(data[i:end]))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, 0, false
		}
		return v, end, true
	}
	end := skipValue(data, i)
	return json.Number(data[i:end]), end, true
}

// fieldsAt reads an object of field values into *m (kept and added to if it exists, as
// encoding/json does; a null makes it nil).
func fieldsAt(data []byte, i int, m *map[string]any) (int, bool) {
	if data[i] == 'n' {
		*m = nil
		return i + 4, true
	}
	if *m == nil {
		*m = make(map[string]any, 12)
	}
	return forMembers(data, i, func(key []byte, v int) (int, bool) {
		name := string(key)
		if !utf8.Valid(key) {
			// encoding/json writes each invalid byte of a name as U+FFFD.
			if err := json.Unmarshal([]byte(`"`+name+`"`), &name); err != nil {
				return 0, false
			}
		}
		val, next, ok := valueAt(data, v)
		(*m)[name] = val
		return next, ok
	})
}

var opNames = []string{"opId", "kind", "entity", "id", "hlc", "fields"}

// opAt reads one op of a push.
func opAt(data []byte, i int, op *jiaoliu.Op) (int, bool) {
	return fieldsOf(data, i, opNames, func(k, v int) (int, bool) {
		if k == 5 {
			return fieldsAt(data, v, &op.Fields)
		}
		return stringAt(data, v, [...]*string{&op.OpID, &op.Kind, &op.Entity, &op.ID, &op.HLC}[k])
	})
}

// fieldsOf reads the object at data[i] into the struct whose JSON fields are names
// (matched as fieldOf matches them; other members skipped): read reads the value at v
// of the field names[k].
func fieldsOf(data []byte, i int, names []string, read func(k, v int) (int, bool)) (int, bool) {
	var seen uint16
	return forMembers(data, i, func(key []byte, v int) (int, bool) {
		k, ok := fieldOf(key, names, &seen)
		switch {
		case !ok:
			return 0, false
		case k < 0:
			return skipValue(data, v), true
		}
		return read(k, v)
	})
}

var recordNames = []string{"entity", "id", "version", "deleted", "fields"}

// recordAt reads one record of a changes message.
func recordAt(data []byte, i int, r *Record) (int, bool) {
	return fieldsOf(data, i, recordNames, func(k, v int) (int, bool) {
		switch k {
		case 3:
			return boolAt(data, v, &r.Deleted)
		case 4:
			return fieldsAt(data, v, &r.Fields)
		}
		return stringAt(data, v, [...]*string{&r.Entity, &r.ID, &r.Version}[k])
	})
}

// arrayAt reads the array at data[i], each element with elem (given its index and
// position), and reports its length. A null leaves the slice alone (n -1).
func arrayAt(data []byte, i int, elem func(k, at int) (int, bool)) (n int, next int, ok bool) {
	switch data[i] {
	case 'n':
		return -1, i + 4, true
	case '[':
	default:
		return 0, 0, false
	}
	i = skipSpace(data, i+1)
	if data[i] == ']' {
		return 0, i + 1, true
	}
	for ; ; n++ {
		if data[i] == 'n' { // a null element: Decode refuses a null op, and leaves the rest to encoding/json
			return 0, 0, false
		}
		if i, ok = elem(n, i); !ok {
			return 0, 0, false
		}
		i = skipSpace(data, i)
		if data[i] == ']' {
			return n + 1, i + 1, true
		}
		i = skipSpace(data, i+1)
	}
}

// readTop reads the top-level members ms of a message into its fields: read reads the
// value at v of the field names[f].
func readTop(data []byte, ms *members, names []string, read func(f, v int) bool) bool {
	var seen uint16
	for k := 0; k < ms.n; k++ {
		m := &ms.list[k]
		f, ok := fieldOf(data[m.keyStart:m.keyEnd], names, &seen)
		if ok && f >= 0 {
			ok = read(f, m.valStart)
		}
		if !ok {
			return false
		}
	}
	return true
}

// sliceAt reads the array at data[v] into *s, each element with elem (a null array
// makes *s nil, an empty one empty), and returns the index after it.
func sliceAt[T any](data []byte, v int, s *[]T, elem func(data []byte, at int, e *T) (int, bool)) (int, bool) {
	n, next, ok := arrayAt(data, v, func(k, at int) (int, bool) {
		var zero T
		*s = append(*s, zero)
		return elem(data, at, &(*s)[k])
	})
	if n < 0 {
		*s = nil
	} else if *s == nil {
		*s = []T{}
	}
	return next, ok
}

var pushNames = []string{"batchId", "ops", "schemaVersion"}

// decodePush reads a push from valid JSON whose top level is ms.
func decodePush(data []byte, ms *members) (*Push, bool) {
	p := &Push{}
	return p, readTop(data, ms, pushNames, func(f, v int) (ok bool) {
		switch f {
		case 0:
			_, ok = stringAt(data, v, &p.BatchID)
		case 1:
			_, ok = sliceAt(data, v, &p.Ops, opAt)
		default:
			_, ok = intAt(data, v, &p.SchemaVersion)
		}
		return ok
	})
}

var changesNames = []string{"records", "cursor", "more"}

// decodeChanges reads a changes message from valid JSON whose top level is ms.
func decodeChanges(data []byte, ms *members) (*Changes, bool) {
	c := &Changes{}
	return c, readTop(data, ms, changesNames, func(f, v int) (ok bool) {
		switch f {
		case 0:
			_, ok = sliceAt(data, v, &c.Records, recordAt)
		case 1:
			_, ok = stringAt(data, v, &c.Cursor)
		default:
			_, ok = boolAt(data, v, &c.More)
		}
		return ok
	})
}

var resultNames = []string{"opId", "status", "id", "version", "canonicalId", "code", "message", "hlc", "fields", "lost", "duplicate", "restamped"}

// resultAt reads one result of an ack.
func resultAt(data []byte, i int, r *jiaoliu.OpResult) (int, bool) {
	return fieldsOf(data, i, resultNames, func(k, v int) (int, bool) {
		switch k {
		case 8:
			return stringMapAt(data, v, &r.Fields)
		case 9:
			return sliceAt(data, v, &r.Lost, stringElem)
		case 10:
			return boolAt(data, v, &r.Duplicate)
		case 11:
			return boolAt(data, v, &r.Restamped)
		}
		return stringAt(data, v, [...]*string{&r.OpID, &r.Status, &r.ID, &r.Version, &r.CanonicalID, &r.Code, &r.Message, &r.HLC}[k])
	})
}

func stringElem(data []byte, at int, s *string) (int, bool) {
	if data[at] != '"' {
		return 0, false
	}
	return stringAt(data, at, s)
}

// stringMapAt reads an object of strings into *m (kept and added to if it exists, as
// encoding/json does; a null makes it nil). A null or other value in it: ok false.
func stringMapAt(data []byte, i int, m *map[string]string) (int, bool) {
	if data[i] == 'n' {
		*m = nil
		return i + 4, true
	}
	if *m == nil {
		*m = map[string]string{}
	}
	return forMembers(data, i, func(key []byte, v int) (int, bool) {
		if !utf8.Valid(key) || data[v] != '"' {
			return 0, false
		}
		var s string
		next, ok := stringAt(data, v, &s)
		(*m)[string(key)] = s
		return next, ok
	})
}

var ackNames = []string{"batchId", "results"}

// decodeAck reads an ack from valid JSON whose top level is ms.
func decodeAck(data []byte, ms *members) (*Ack, bool) {
	a := &Ack{}
	return a, readTop(data, ms, ackNames, func(f, v int) (ok bool) {
		if f == 0 {
			_, ok = stringAt(data, v, &a.BatchID)
		} else {
			_, ok = sliceAt(data, v, &a.Results, resultAt)
		}
		return ok
	})
}
