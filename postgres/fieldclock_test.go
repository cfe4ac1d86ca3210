package postgres

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"
)

// A created lesson's clock: one HLC for each field the create set.
func createdClock(hlc string) map[string]string {
	c := map[string]string{}
	for _, k := range []string{"exchangeId", "date", "period", "gradeLevel", "className", "subject", "kind", "topic", "minutes", "deviceId"} {
		c[k] = hlc
	}
	return c
}

func TestFieldClockRoundTrip(t *testing.T) {
	const h1, h2 = "1795512922416-61a8-890d4e84-6d3d-e205-da27-8706d33a57af", "1795512999999-0000-server"
	created := createdClock(h1)
	edited := maps.Clone(created)
	edited["kind"], edited["notes"] = h2, h2
	tied := map[string]string{"a": h1, "b": h1, "c": h2, "d": h2}
	odd := maps.Clone(created)
	odd["with,comma"], odd["*star"], odd["*"], odd["*fields"], odd["引号\"\\"], odd[""], odd["empty"] = h1, h1, h1, h1, h1, h1, ""
	for name, c := range map[string]map[string]string{
		"created": created, "edited": edited, "tied": tied, "odd": odd, "none": {}, "one": {"topic": h1},
		"all different": {"a": "1", "b": "2", "c": "3"}, "strange values": {"a": "x\"\\\n\u2028<>&", "b": "x\"\\\n\u2028<>&"},
	} {
		raw := appendClock(nil, c)
		if !json.Valid(raw) {
			t.Fatalf("%s: %s is not JSON", name, raw)
		}
		back, err := decodeClock(raw)
		if err != nil {
			t.Fatalf("%s: %s: %v", name, raw, err)
		}
		if name == "odd" {
			continue // keys that are no field's name: see below
		}
		if !maps.Equal(back, c) {
			t.Errorf("%s: %v stored as %s reads back as %v", name, c, raw, back)
		}
	}
	// The stored form of a create names its HLC once; an edit keeps the create's as the
	// shared one; of two as common, the choice does not depend on the map's order.
	if raw := clockJSON(created); strings.Count(raw, h1) != 1 || !strings.Contains(raw, `"*fields":"className,date,deviceId,exchangeId,gradeLevel,kind,minutes,period,subject,topic"`) {
		t.Errorf("created: %s", raw)
	}
	if raw := clockJSON(edited); !strings.HasPrefix(raw, `{"*":"`+h1+`"`) || !strings.Contains(raw, `"kind":"`+h2+`","notes":"`+h2+`"`) {
		t.Errorf("edited: %s", raw)
	}
	for range 20 {
		if a, b := clockJSON(tied), clockJSON(maps.Clone(tied)); a != b || !strings.HasPrefix(a, `{"*":"`+h2) {
			t.Fatalf("tied: %s, then %s", a, b)
		}
	}
	// Rows written before the compact form read as they did.
	old, _ := json.Marshal(created)
	if back, err := decodeClock(old); err != nil || !maps.Equal(back, created) {
		t.Errorf("former form: %v, %v", back, err)
	}
}

// FuzzFieldClock: any clock whose names are field names (no leading "*") reads back as
// it was written. (JSON holds only valid UTF-8: other bytes are written as U+FFFD, in
// the former form too; HLCs and field names are ASCII.)
func FuzzFieldClock(f *testing.F) {
	f.Add("exchangeId,date,period,topic", "1795512922416-61a8-dev", "kind,notes", "1795512999999-0000-server")
	f.Add("a,b", "x", "c,d", "x")
	f.Add("a,,b", "", "c\"\\,d", "y")
	f.Fuzz(func(t *testing.T, names1, hlc1, names2, hlc2 string) {
		if !utf8.ValidString(names1) || !utf8.ValidString(hlc1) || !utf8.ValidString(names2) || !utf8.ValidString(hlc2) {
			return
		}
		c := map[string]string{}
		for _, set := range []struct{ names, hlc string }{{names1, hlc1}, {names2, hlc2}} {
			for name := range strings.SplitSeq(set.names, ",") {
				if !strings.HasPrefix(name, "*") {
					c[name] = set.hlc
				}
			}
		}
		raw := appendClock(nil, c)
		back, err := decodeClock(raw)
		if err != nil {
			t.Fatalf("%v stored as %s: %v", c, raw, err)
		}
		if !maps.Equal(back, c) {
			t.Fatalf("%v stored as %s reads back as %v", c, raw, back)
		}
	})
}

// BenchmarkAppendClock encodes a created lesson's field clock, as every pushed create
// does.
func BenchmarkAppendClock(b *testing.B) {
	clock := createdClock("1795512922416-61a8-890d4e84-6d3d-e205-da27-8706d33a57af")
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = appendClock(buf[:0], clock)
	}
}
