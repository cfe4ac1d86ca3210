package hlc_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// lease is a persisted high-water mark for tests: renew moves it to want.
type lease struct {
	mu     sync.Mutex
	limit  int64
	calls  int
	err    error
	called chan struct{}
}

func (l *lease) renew(want int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	defer func() {
		select {
		case l.called <- struct{}{}:
		default:
		}
	}()
	if l.err != nil {
		return 0, l.err
	}
	l.limit = max(l.limit, want)
	return l.limit, nil
}

func (l *lease) get() (limit int64, calls int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit, l.calls
}

func mustParse(t *testing.T, s string) hlc.Timestamp {
	t.Helper()
	ts, err := hlc.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestLeaseBoundsTheClock(t *testing.T) {
	var wall atomic.Int64
	wall.Store(1_000_000)
	l := &lease{limit: 1_010_000, called: make(chan struct{}, 1)}
	c := hlc.NewClockWithSource("n", wall.Load)
	c.SetLease(l.limit, 10*time.Second, l.renew)

	// Well within the lease: no renewal.
	if ts := mustParse(t, c.Now()); ts.Wall != 1_000_000 {
		t.Fatalf("wall=%d", ts.Wall)
	}
	if _, calls := l.get(); calls != 0 {
		t.Fatalf("%d renewals within the lease", calls)
	}
	// Within half a lease of the limit: renewed in the background, Now does not wait.
	wall.Store(1_006_000)
	if ts := mustParse(t, c.Now()); ts.Wall != 1_006_000 {
		t.Fatalf("wall=%d", ts.Wall)
	}
	<-l.called
	if limit, _ := l.get(); limit != 1_016_000 {
		t.Fatalf("limit=%d, want 1016000", limit)
	}
	// Idle for longer than the lease: Now renews first, and is not held at the old limit.
	wall.Store(5_000_000)
	if ts := mustParse(t, c.Now()); ts.Wall != 5_000_000 {
		t.Fatalf("wall=%d after the idle time", ts.Wall)
	}
	if limit, _ := l.get(); limit < 5_000_000 {
		t.Fatalf("issued 5000000 beyond the persisted limit %d", limit)
	}
}

func TestLeaseRenewalFails(t *testing.T) {
	var wall atomic.Int64
	wall.Store(1_000_000)
	l := &lease{limit: 1_010_000, called: make(chan struct{}, 1), err: errors.New("database away")}
	c := hlc.NewClockWithSource("n", wall.Load)
	c.SetLease(l.limit, 10*time.Second, l.renew)
	wall.Store(1_020_000)
	prev := ""
	for i := range 100 {
		s := c.Now()
		ts := mustParse(t, s)
		if ts.Wall != 1_010_000 || s <= prev {
			t.Fatalf("Now()#%d=%s after %s: want increasing timestamps at the limit 1010000", i, s, prev)
		}
		prev = s
	}
	if _, calls := l.get(); calls != 1 {
		t.Fatalf("%d renewals, want 1 (then a pause)", calls)
	}
	// The database is back: after the pause the clock catches up.
	l.mu.Lock()
	l.err = nil
	l.mu.Unlock()
	time.Sleep(1100 * time.Millisecond)
	if ts := mustParse(t, c.Now()); ts.Wall != 1_020_000 {
		t.Fatalf("wall=%d once renewals work again", ts.Wall)
	}
}

// TestRestartWithWallClockBehind is the restart the lease is for: the new clock's wall
// clock is an hour behind the old one's; seeded with the persisted limit, it issues
// larger timestamps than the old one.
func TestRestartWithWallClockBehind(t *testing.T) {
	l := &lease{called: make(chan struct{}, 1)}
	before := hlc.NewClockWithSource("n", func() int64 { return 7_200_000 })
	before.SetLease(0, 10*time.Second, l.renew)
	var last string
	for range 1000 {
		last = before.Now()
	}
	limit, _ := l.get()
	after := hlc.NewClockWithSource("n", func() int64 { return 7_200_000 - 3_600_000 })
	after.Observe(hlc.Timestamp{Wall: limit, Counter: 0xffff})
	after.SetLease(limit, 10*time.Second, l.renew)
	if got := after.Now(); got <= last {
		t.Fatalf("after the restart Now()=%s, not after %s", got, last)
	}
}

func TestObserveAheadOfTheLeaseRenews(t *testing.T) {
	l := &lease{limit: 1_010_000, called: make(chan struct{}, 1)}
	c := hlc.NewClockWithSource("n", func() int64 { return 1_000_000 })
	c.SetLease(l.limit, 10*time.Second, l.renew)
	c.Update("0000001300000-0000-device") // a device 5 minutes ahead
	<-l.called
	ts := mustParse(t, c.Now())
	if limit, _ := l.get(); ts.Wall != 1_300_000 || limit < ts.Wall {
		t.Fatalf("Now() wall %d, limit %d", ts.Wall, limit)
	}
}
