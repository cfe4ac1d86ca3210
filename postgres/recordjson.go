package postgres

import (
	"database/sql"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/jiaoliu/jiaoliu"
)

// appendRecordJSON appends a pulled record in its wire form (sync/wire.Record:
// entity, id, version, deleted, fields) straight from the scanned holders of
// scanHolders. The bytes are those encoding/json writes for the same record — the
// struct's keys in their order, fields in the order of their names, strings escaped
// the same way — without building a map
// and sorting its keys per record: a bootstrap encodes 100,000 of them.
func appendRecordJSON(b []byte, def *jiaoliu.Entity, id, version string, deleted bool, holders []any) []byte {
	b = append(b, `{"entity":`...)
	b = appendJSONString(b, def.Name)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"version":`...)
	b = appendJSONString(b, version)
	b = append(b, `,"deleted":`...)
	b = strconv.AppendBool(b, deleted)
	b = append(b, `,"fields":{`...)
	for n, i := range fieldOrder(def) {
		if n > 0 {
			b = append(b, ',')
		}
		f := def.Fields[i]
		b = appendJSONString(b, f.Name)
		b = append(b, ':')
		switch h := holders[i].(type) {
		case *sql.NullInt64:
			if !h.Valid {
				b = append(b, "null"...)
			} else {
				b = strconv.AppendInt(b, h.Int64, 10)
			}
		case *sql.NullFloat64:
			if !h.Valid {
				b = append(b, "null"...)
			} else if v, err := json.Marshal(h.Float64); err == nil {
				b = append(b, v...)
			} else {
				b = append(b, "null"...) // NaN and infinities are refused by the schema's CHECKs
			}
		case *sql.NullBool:
			if !h.Valid {
				b = append(b, "null"...)
			} else {
				b = strconv.AppendBool(b, h.Bool)
			}
		case *sql.Null[jiaoliu.Date]:
			if !h.Valid || h.V.IsZero() {
				b = append(b, "null"...)
			} else {
				b = append(b, '"')
				b = append(b, h.V.String()...)
				b = append(b, '"')
			}
		case *jiaoliu.StringList:
			b = append(b, '[')
			for k, s := range *h {
				if k > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, s)
			}
			b = append(b, ']')
		case *sql.NullString:
			switch {
			case h.Valid:
				b = appendJSONString(b, h.String)
			case !f.Nullable && (f.Kind == jiaoliu.KindString || f.Kind == jiaoliu.KindText):
				b = append(b, `""`...)
			default:
				b = append(b, "null"...)
			}
		}
	}
	return append(b, '}', '}')
}

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
