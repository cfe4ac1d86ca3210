package hlc_test

import (
	"testing"

	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// FuzzParse feeds arbitrary strings to Parse, the decoder of every HLC a device sends.
// HLCs compare as strings, so an accepted HLC must be in its one canonical form:
// formatting what Parse returns gives back the input. Run longer with
//
//	go test ./sync/hlc -run '^$' -fuzz FuzzParse -fuzztime 30s
func FuzzParse(f *testing.F) {
	for _, s := range []string{"1767225600000-0000-tab-7", "1767225600000-ffff-server-x", "0000000000000-0000-n",
		"+767225600000-0000-n", "-767225600000-0000-n", "1767225600000-FFFF-n", "1767225600000-0000-", "176722560000-0000-n",
		"1767225600000-0000-" + string(make([]byte, 65)), "", "9999999999999-0001-\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := hlc.Parse(s)
		if err != nil {
			return
		}
		if got := ts.String(); got != s {
			t.Fatalf("Parse(%q) accepted a non-canonical HLC: it formats as %q", s, got)
		}
		if ts.Wall < 0 || ts.Node == "" || len(ts.Node) > 64 {
			t.Fatalf("Parse(%q) = %+v", s, ts)
		}
	})
}
