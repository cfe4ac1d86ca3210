package hlc_test

import (
	"testing"

	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

func TestClockMonotonicWhenWallStands(t *testing.T) {
	c := hlc.NewClockWithSource("n1", func() int64 { return 1767225600000 })
	prev := ""
	for i := 0; i < 70000; i++ { // past the 16-bit counter
		ts := c.Now()
		if ts <= prev {
			t.Fatalf("Now()=%q not after %q", ts, prev)
		}
		prev = ts
	}
}

func TestClockMovesPastRemote(t *testing.T) {
	c := hlc.NewClockWithSource("a", func() int64 { return 1000 })
	c.Update("9999999999999-00ff-b")
	if got, want := c.Now(), "9999999999999-0100-a"; got != want {
		t.Fatalf("Now()=%q, want %q", got, want)
	}
	c.Update("not an hlc") // ignored
	if got := c.Now(); got != "9999999999999-0101-a" {
		t.Fatalf("Now()=%q after malformed update", got)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"1767225600000-0000-tab-7", true},
		{"1767225600000-00A0-tab", false},
		{"1767225600000-0000-", false},
		{"176722560000-0000-x", false},
		{"abcdefghijklm-0000-x", false},
		{"", false},
	} {
		ts, err := hlc.Parse(tc.in)
		if (err == nil) != tc.ok {
			t.Fatalf("Parse(%q) err=%v, want ok=%v", tc.in, err, tc.ok)
		}
		if tc.ok && ts.String() != tc.in {
			t.Fatalf("round trip %q → %q", tc.in, ts.String())
		}
	}
}
