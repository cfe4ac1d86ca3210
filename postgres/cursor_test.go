package postgres

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestCursorsAreTheJSONOfCursor: encodeCursor writes what json.Marshal and base64
// write, for values it writes itself and for those it leaves to json.Marshal, and
// decodeCursor reads them back.
func TestCursorsAreTheJSONOfCursor(t *testing.T) {
	id := "0b6e3c2a-55f1-4c8e-9a53-2f1d7c9e8b10"
	for _, v := range []string{"2026-10-15", "", "42", "王芳", "双河五小", `a "quoted" name`, `back\slash`, "<b>&", "tab\there",
		"\u2028", "\u2029", "\x7f", "bad \xff utf-8", strings.Repeat("王", 40), strings.Repeat("x", 90), strings.Repeat("y", 300)} {
		b, _ := json.Marshal(cursor{V: v, ID: id})
		want := base64.RawURLEncoding.EncodeToString(b)
		got := encodeCursor(v, id)
		if got != want {
			t.Errorf("cursor of %q: %s, json.Marshal's %s", v, got, want)
		}
		// (JSON has no invalid UTF-8: json.Marshal writes U+FFFD; PostgreSQL's text is valid.)
		if c, err := decodeCursor(got); err != nil || utf8.ValidString(v) && c.V != v || c.ID != id {
			t.Errorf("cursor of %q reads back as %+v, %v", v, c, err)
		}
	}
}

func BenchmarkEncodeCursor(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		encodeCursor("2026-10-15", "0b6e3c2a-55f1-4c8e-9a53-2f1d7c9e8b10")
	}
}
