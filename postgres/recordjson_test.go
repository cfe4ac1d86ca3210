package postgres

import (
	"bytes"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// holdersOf fills scan holders of def from a seed: every kind, with nulls, empty
// strings and lists, and the given string in every text field.
func holdersOf(def *jiaoliu.Entity, str string, seed int) []any {
	hs := scanHolders(def)
	for i, h := range hs {
		valid := (seed+i)%3 != 0
		switch h := h.(type) {
		case *sql.NullInt64:
			h.Int64, h.Valid = int64(seed*7919-i), valid
		case *sql.NullFloat64:
			h.Float64, h.Valid = float64(seed)/7+1e-7*float64(i), valid
		case *sql.NullBool:
			h.Bool, h.Valid = seed%2 == 0, valid
		case *sql.Null[jiaoliu.Date]:
			h.V, h.Valid = jiaoliu.NewDate(2026, 9, 1).AddDays(seed+i), valid
		case *jiaoliu.StringList:
			if valid {
				*h = jiaoliu.StringList{str, "市级骨干"}
			} else if seed%2 == 0 {
				*h = nil
			}
		case *sql.NullString:
			h.String, h.Valid = str, valid
		}
	}
	return hs
}

// checkRecordJSON compares appendRecordJSON with encoding/json's encoding of the same
// wire.Record, byte for byte.
func checkRecordJSON(t *testing.T, def *jiaoliu.Entity, str string, seed int) {
	t.Helper()
	hs := holdersOf(def, str, seed)
	id, version, deleted := "0e0c1a2b-0000-4000-8000-00000000000"+string(rune('0'+seed%10)), "12345", seed%4 == 0
	want, err := json.Marshal(wire.Record{Entity: def.Name, ID: id, Version: version, Deleted: deleted, Fields: jsonFields(recordFrom(def, hs))})
	if err != nil {
		t.Fatal(err)
	}
	got := appendRecordJSON(nil, def, id, version, deleted, hs)
	if !bytes.Equal(got, want) {
		t.Fatalf("%s %q:\n got %s\nwant %s", def.Name, str, got, want)
	}
}

func TestRecordJSON(t *testing.T) {
	strs := []string{"", "王芳", `quote " back \ slash`, "<b>&amp;</b>", "tab\tnew\nline\rcr\b\f\x00\x1f\x7f",
		"\u2028\u2029", "bad \xff\xfe utf8", "emoji 🧑‍🏫"}
	for _, name := range jiaoliu.EntityOrder {
		def := jiaoliu.Entities[name]
		for seed, s := range strs {
			checkRecordJSON(t, def, s, seed)
		}
	}
}

func FuzzRecordJSON(f *testing.F) {
	f.Add("王芳", 3)
	f.Add("<\u2028\xff", 4)
	f.Fuzz(func(t *testing.T, s string, seed int) {
		if seed < 0 {
			seed = -seed
		}
		for _, name := range []string{"lesson", "teacher", "exchange", "attendance"} {
			checkRecordJSON(t, jiaoliu.Entities[name], s, seed%1000)
		}
	})
}

// jsonFields converts a record's canonical values to the JSON-ready ones encoding/json
// encodes as appendRecordJSON must: the reference it is checked against (pulls built
// these maps per record until session 19).
func jsonFields(rec jiaoliu.Record) map[string]any {
	out := make(map[string]any, len(rec))
	for k, v := range rec {
		switch x := v.(type) {
		case jiaoliu.Date:
			if x.IsZero() {
				out[k] = nil
			} else {
				out[k] = x.String()
			}
		case jiaoliu.StringList:
			if x == nil {
				x = jiaoliu.StringList{}
			}
			out[k] = []string(x)
		default:
			out[k] = v
		}
	}
	return out
}

// appendRecordJSON appends a pulled record in its wire form (sync/wire.Record:
// entity, id, version, deleted, fields) from the holders of scanHolders: how pulls
// encoded records until they scanned the columns' text (appendRawRecordJSON). Its
// bytes are those encoding/json writes for the same record (TestRecordJSON); it is the
// reference TestRawRecordJSONIsRecordJSON checks the pull's encoder against.
func appendRecordJSON(b []byte, def *jiaoliu.Entity, id, version string, deleted bool, holders []any) []byte {
	b = appendRecordHead(b, def, id, version, deleted)
	for n, i := range fieldOrder(def) {
		f := def.Fields[i]
		b = appendFieldName(b, n, f.Name)
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

// TestRawRecordJSONIsRecordJSON: for every field of every entity, PostgreSQL's text
// output of a value of the field's column type, scanned as load scans it
// (recordTextQuery) and encoded by appendRawRecordJSON, gives the bytes that the same
// value scanned through lib/pq into scanHolders' holders gives appendRecordJSON: what
// pulls sent before. Values: nulls, empty strings and lists, escapes, HTML characters,
// U+2028, non-ASCII, negative and large integers, both booleans, dates.
func TestRawRecordJSONIsRecordJSON(t *testing.T) {
	db := pgtest.NewDB(t)
	strs := []string{"", "王芳", `quote " back \ slash`, "<b>&amp;</b>", "tab\tnew\nline\rcr\b\f\x01\x1f\x7f",
		"\u2028\u2029", "emoji 🧑‍🏫", "  leading and trailing  "}
	for _, name := range jiaoliu.EntityOrder {
		def := jiaoliu.Entities[name]
		types := make([]string, len(def.Fields))
		for i, f := range def.Fields {
			if err := db.Get(&types[i], `SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
				WHERE a.attrelid = $1::regclass AND a.attname = $2 AND NOT a.attisdropped`, def.Table, f.Column()); err != nil {
				t.Fatalf("%s.%s: column %s of %s: %v", name, f.Name, f.Column(), def.Table, err)
			}
		}
		typed := make([]string, len(def.Fields))
		text := make([]string, len(def.Fields))
		for i := range def.Fields {
			typed[i] = fmt.Sprintf("$%d::%s", i+1, types[i])
			text[i] = fmt.Sprintf("($%d::%s)::text::cstring", i+1, types[i])
		}
		for seed, str := range strs {
			hs := holdersOf(def, str, seed)
			args := make([]any, len(hs))
			for i, f := range def.Fields {
				if f.Kind == jiaoliu.KindID {
					if ns := hs[i].(*sql.NullString); ns.Valid {
						ns.String = fmt.Sprintf("0e0c1a2b-0000-4000-8000-%012d", seed*1000+i)
					}
				}
				v, err := hs[i].(driver.Valuer).Value()
				if err != nil {
					t.Fatal(err)
				}
				args[i] = v
			}
			want := scanHolders(def)
			if err := db.QueryRow("SELECT "+strings.Join(typed, ", "), args...).Scan(want...); err != nil {
				t.Fatalf("%s %q typed: %v", name, str, err)
			}
			rows, err := db.Query("SELECT "+strings.Join(text, ", "), args...)
			if err != nil {
				t.Fatalf("%s %q as text: %v", name, str, err)
			}
			raw := make([]sql.RawBytes, len(def.Fields))
			dest := make([]any, len(raw))
			for i := range raw {
				dest[i] = &raw[i]
			}
			if !rows.Next() {
				t.Fatalf("%s %q: no row", name, str)
			}
			if err := rows.Scan(dest...); err != nil {
				t.Fatalf("%s %q as text: %v", name, str, err)
			}
			id, version, deleted := "0e0c1a2b-0000-4000-8000-000000000001", "12345", seed%2 == 0
			got, err := appendRawRecordJSON(nil, def, id, version, deleted, raw)
			rows.Close()
			if err != nil {
				t.Fatalf("%s %q: %v", name, str, err)
			}
			if exp := appendRecordJSON(nil, def, id, version, deleted, want); !bytes.Equal(got, exp) {
				t.Errorf("%s %q:\n got %s\nwant %s", name, str, got, exp)
			}
		}
	}
}
