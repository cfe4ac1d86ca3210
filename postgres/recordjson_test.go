package postgres

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"testing"

	"github.com/jiaoliu/jiaoliu"
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
