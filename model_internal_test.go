package jiaoliu

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"
)

// FuzzCanonicalUUID: an id field keeps a pushed id as it came exactly when parsing it
// and writing it again would give it back unchanged.
func FuzzCanonicalUUID(f *testing.F) {
	for _, s := range []string{
		"9b2f1c3e-0000-4000-8000-000000000001", "9B2F1C3E-0000-4000-8000-000000000001",
		"{9b2f1c3e-0000-4000-8000-000000000001}", "urn:uuid:9b2f1c3e-0000-4000-8000-000000000001",
		"9b2f1c3e000040008000000000000001", "9b2f1c3e-0000-4000-8000-00000000000g",
		"9b2f1c3e-0000-4000-8000+000000000001", "9b2f1c3e00-00-4000-8000-000000000001", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := uuid.Parse(s)
		want := err == nil && id.String() == s
		if got := canonicalUUID(s); got != want {
			t.Fatalf("canonicalUUID(%q) = %v, uuid.Parse and String give it back: %v", s, got, want)
		}
	})
}

// BenchmarkParseLesson parses a lesson's fields as a device pushes them (decoded from
// JSON, numbers as json.Number).
func BenchmarkParseLesson(b *testing.B) {
	raw := map[string]any{"exchangeId": "05f1c82f-774f-0c63-53d3-4152284396af", "date": "2026-12-05", "period": json.Number("4"),
		"gradeLevel": "三年级", "className": "三（2）班", "subject": "数学", "kind": "DEMONSTRATION", "topic": "分数的初步认识（第4课时）", "minutes": json.Number("40")}
	def := Entities["lesson"]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := def.Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}
