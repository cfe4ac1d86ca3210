package postgres

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
)

// strange are strings the hand-written encoders of the write path must encode as
// encoding/json does.
var strange = []string{"", "plain", "分数的初步认识（第1课时）", `quote " and \ backslash`, "tab\tnewline\nreturn\r",
	"\x00\x01\x1f control", "<b>&amp;</b>", "line\u2028sep\u2029", "bad \xff utf-8", "emoji 😀", "{\"a\":1}", "NULL", "a,b"}

func TestEncodersAreEncodingJSON(t *testing.T) {
	same := func(t *testing.T, what string, mine []byte, want any) {
		t.Helper()
		var a, b any
		if err := json.Unmarshal(mine, &a); err != nil {
			t.Fatalf("%s: %s is not JSON: %v", what, mine, err)
		}
		raw, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: %s, encoding/json %s", what, mine, raw)
		}
	}
	for _, s := range strange {
		same(t, "string", appendJSONString(nil, s), s)
		if want, _ := json.Marshal(s); string(appendJSONString(nil, s)) != string(want) {
			t.Errorf("string %q: %s, encoding/json %s", s, appendJSONString(nil, s), want)
		}
		in := jiaoliu.Record{"topic": s, "period": int64(3), "date": jiaoliu.MustDate("2026-10-12"), "minutes": 40.5,
			"open": true, "none": nil, s: s}
		created, err := appendCreated(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{}
		for k, v := range in {
			want[k] = map[string]any{"new": v}
		}
		same(t, "created", created, want)
		// Byte for byte: audit_log.changes is json (migration 00020), which keeps the
		// text, and the per-op path writes json.Marshal's.
		if raw, _ := json.Marshal(want); string(created) != string(raw) {
			t.Errorf("created: %s, encoding/json %s", created, raw)
		}
		changes := map[string]any{"topic": map[string]any{"old": s, "new": "x"}, "deleted": map[string]any{"old": false, "new": true},
			s: map[string]any{"old": nil, "new": jiaoliu.Date{}}}
		got, err := appendChanges(nil, changes)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "changes", got, changes)
		if raw, _ := json.Marshal(changes); string(got) != string(raw) {
			t.Errorf("changes: %s, encoding/json %s", got, raw)
		}
		for _, r := range []jiaoliu.OpResult{
			{OpID: s, Status: jiaoliu.StatusApplied, ID: s, Version: "42"},
			{OpID: "o", Status: jiaoliu.StatusMerged, ID: "i", CanonicalID: "c", Lost: []string{s, "notes"}, Restamped: true, HLC: s},
			{OpID: "o", Status: jiaoliu.StatusRejected, Code: "validation_failed", Message: s, Fields: map[string]string{s: s}},
			{OpID: "o", Status: jiaoliu.StatusApplied, Duplicate: true},
		} {
			raw, err := encodeResult(r)
			if err != nil {
				t.Fatal(err)
			}
			same(t, "result", raw, r)
			if r.Fields == nil {
				if want, _ := json.Marshal(r); string(raw) != string(want) {
					t.Errorf("result %+v: %s, encoding/json %s", r, raw, want)
				}
			}
			var back jiaoliu.OpResult
			if err := json.Unmarshal(raw, &back); err != nil || (!reflect.DeepEqual(back, r) && !badUTF8(s)) {
				t.Errorf("result %+v came back %+v (%v)", r, back, err)
			}
		}
		// Array literals read back as pq reads them.
		for _, lit := range []string{arrayLiteral([]string{s, "b", s}), textArray(nil)} {
			var back pq.StringArray
			if err := back.Scan([]byte(lit)); err != nil {
				t.Errorf("array literal %q: %v", lit, err)
			}
		}
	}
}

func badUTF8(s string) bool { return !utf8.ValidString(s) }
