package postgres

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/jiaoliu/jiaoliu"
)

// fieldOrders caches, per entity, the indexes of its fields sorted by name.
var fieldOrders sync.Map // *jiaoliu.Entity → []int

func fieldOrder(def *jiaoliu.Entity) []int {
	if o, ok := fieldOrders.Load(def); ok {
		return o.([]int)
	}
	order := make([]int, len(def.Fields))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		switch x, y := def.Fields[a].Name, def.Fields[b].Name; {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	fieldOrders.Store(def, order)
	return order
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string escaped as encoding/json escapes it:
// quotes, backslashes and control characters; <, > and & as \u003c, \u003e, \u0026;
// U+2028 and U+2029; invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// loadQueries caches, per entity, the query load reads a page's records of it with.
var loadQueries sync.Map // *jiaoliu.Entity → string

// recordTextQuery returns load's query for the records of def whose ids are $1: the id
// (a uuid, which lib/pq hands over as the bytes it read), the version, deleted, and
// every field as its text output typed cstring. lib/pq converts text, dates and
// integers into Go values, a string or a time.Time allocated per column; a cstring it
// hands over as the bytes it read, which scan into sql.RawBytes without a copy. Per
// kind these bytes are what appendRawRecordJSON reads.
func recordTextQuery(def *jiaoliu.Entity) string {
	if q, ok := loadQueries.Load(def); ok {
		return q.(string)
	}
	var b strings.Builder
	b.WriteString("SELECT t.id, t.version::text::cstring, t.deleted")
	for _, f := range def.Fields {
		b.WriteString(", t.")
		b.WriteString(f.Column())
		b.WriteString("::text::cstring")
	}
	b.WriteString(" FROM " + def.Table + " t WHERE t.id = ANY($1::uuid[])")
	q := b.String()
	loadQueries.Store(def, q)
	return q
}

// appendRecordHead appends a pulled record's wire JSON up to its first field:
// sync/wire.Record's members in their order, then the opening of its fields.
func appendRecordHead(b []byte, def *jiaoliu.Entity, id, version string, deleted bool) []byte {
	b = append(b, `{"entity":`...)
	b = appendJSONString(b, def.Name)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"version":`...)
	b = appendJSONString(b, version)
	b = append(b, `,"deleted":`...)
	b = strconv.AppendBool(b, deleted)
	return append(b, `,"fields":{`...)
}

// appendFieldName appends the name of the n-th field written (from 0) and its colon.
func appendFieldName(b []byte, n int, name string) []byte {
	if n > 0 {
		b = append(b, ',')
	}
	b = appendJSONString(b, name)
	return append(b, ':')
}

// appendRawRecordJSON is appendRecordJSON of a record scanned as recordTextQuery
// reads it: each field's text output in raw (nil for NULL). It writes the bytes
// appendRecordJSON writes for the same values scanned into scanHolders' holders
// (TestRawRecordJSONIsRecordJSON, through PostgreSQL, for every column of every
// entity).
func appendRawRecordJSON(b []byte, def *jiaoliu.Entity, id, version string, deleted bool, raw []sql.RawBytes) ([]byte, error) {
	b = appendRecordHead(b, def, id, version, deleted)
	for n, i := range fieldOrder(def) {
		f := def.Fields[i]
		b = appendFieldName(b, n, f.Name)
		v := raw[i]
		if v == nil { // NULL: what the typed path writes for it, by kind
			switch {
			case f.Kind == jiaoliu.KindStrings:
				b = append(b, "[]"...)
			case !f.Nullable && (f.Kind == jiaoliu.KindString || f.Kind == jiaoliu.KindText):
				b = append(b, `""`...)
			default:
				b = append(b, "null"...)
			}
			continue
		}
		var s string // v's bytes, valid until the next row is scanned
		if len(v) > 0 {
			s = unsafe.String(&v[0], len(v))
		}
		// The kinds as scanHolders gives them holders.
		switch f.Kind {
		case jiaoliu.KindInt:
			x, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", def.Name, f.Name, err)
			}
			b = strconv.AppendInt(b, x, 10)
		case jiaoliu.KindFloat:
			x, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", def.Name, f.Name, err)
			}
			if j, err := json.Marshal(x); err == nil {
				b = append(b, j...)
			} else {
				b = append(b, "null"...) // NaN and infinities are refused by the schema's CHECKs
			}
		case jiaoliu.KindBool:
			if s != "true" && s != "false" {
				return nil, fmt.Errorf("%s.%s: bool %q", def.Name, f.Name, s)
			}
			b = append(b, s...)
		case jiaoliu.KindDate:
			d, err := jiaoliu.ParseDate(s)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", def.Name, f.Name, err)
			}
			if d.IsZero() {
				b = append(b, "null"...)
			} else {
				b = append(b, '"')
				b = append(b, d.String()...)
				b = append(b, '"')
			}
		case jiaoliu.KindStrings:
			var l jiaoliu.StringList
			if err := l.Scan([]byte(v)); err != nil {
				return nil, fmt.Errorf("%s.%s: %w", def.Name, f.Name, err)
			}
			b = append(b, '[')
			for k, s := range l {
				if k > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, s)
			}
			b = append(b, ']')
		default:
			b = appendJSONString(b, s)
		}
	}
	return append(b, '}', '}'), nil
}
