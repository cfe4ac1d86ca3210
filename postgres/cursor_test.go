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

// TestPageCursorsAreEncode: the cursors of a page's records are the bytes encode gives
// the same cursor, and decode back to it, for the bases a page has (a first range, one
// continuing between two snapshots, the system's scope) and positions with either part
// zero or large.
func TestPageCursorsAreEncode(t *testing.T) {
	bases := []syncCursor{
		{V: cursorVersion, Scope: "3f2a9c0d1e4b5a67", Hi: "1000:1012:1003,1007"},
		{V: cursorVersion, Scope: "3f2a9c0d1e4b5a67", Lo: "900:905:901", Hi: "1000:1000:"},
		{V: cursorVersion, Scope: "system", Lo: "7:7:", Hi: "18446744073709551000:18446744073709551615:"},
	}
	positions := []struct {
		txid uint64
		seq  int64
	}{{1001, 1}, {1001, 0}, {0, 5}, {18446744073709551615, 9223372036854775807}, {42, -3}}
	for _, base := range bases {
		p := newPageCursors(base)
		for _, pos := range positions {
			c := base
			c.Txid, c.Seq = pos.txid, pos.seq
			want := c.encode()
			got := p.at(pos.txid, pos.seq)
			if got != want {
				t.Errorf("%+v at (%d, %d): %s, encode's %s", base, pos.txid, pos.seq, got, want)
				continue
			}
			back, err := decodeSyncCursor(got)
			if pos.txid != 0 && (err != nil || back.Txid != pos.txid || back.Seq != pos.seq || back.Hi != base.Hi || back.Lo != base.Lo) {
				t.Errorf("%s decodes as %+v, %v", got, back, err)
			}
		}
	}
}

func BenchmarkPageCursors(b *testing.B) {
	base := syncCursor{V: cursorVersion, Scope: "3f2a9c0d1e4b5a67", Hi: "1000:1012:1003,1007"}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			c := base
			c.Txid, c.Seq = 1001, int64(i)+1
			_ = c.encode()
		}
	})
	b.Run("page", func(b *testing.B) {
		b.ReportAllocs()
		p := newPageCursors(base)
		for i := range b.N {
			_ = p.at(1001, int64(i)+1)
		}
	})
}
