package gcfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const MiB = 1 << 20
	for _, c := range []struct {
		live, roots, floor uint64
		base, want         int
	}{
		{4 * MiB, 0, 64 * MiB, 100, 1500},        // goal 4 + 4×15 = 64 MiB
		{4 * MiB, 2 * MiB, 64 * MiB, 100, 1000},  // goal 4 + (4+2)×10 = 64 MiB
		{32 * MiB, 0, 64 * MiB, 100, 100},        // GOGC alone reaches the floor
		{30 * MiB, 40 * MiB, 64 * MiB, 100, 100}, // idle sockets: their stacks count too
		{100 * MiB, 0, 64 * MiB, 100, 100},       // above the floor: as configured
		{16 * MiB, 0, 64 * MiB, 400, 400},        // a larger GOGC is kept
		{0, 1 * MiB, 64 * MiB, 100, 100},         // no measurement yet
		{63 * MiB, 0, 64 * MiB, 100, 100},        // never below the configured GOGC
		{1 * MiB, 0, 64 * MiB, 50, 6300},         // goal 1 + 63 = 64 MiB
	} {
		if got := Percent(c.live, c.roots, c.floor, c.base); got != c.want {
			t.Errorf("Percent(%d MiB, %d MiB roots, %d MiB, %d) = %d, want %d", c.live/MiB, c.roots/MiB, c.floor/MiB, c.base, got, c.want)
		}
	}
}

// TestFloorFollowsTheLiveHeap runs the tuner in this process: with a small live heap
// GOGC goes up so the goal reaches the floor; once the live heap passes the floor
// GOGC comes back to the configured value; stop restores it.
func TestFloorFollowsTheLiveHeap(t *testing.T) {
	base := debug.SetGCPercent(100)
	defer debug.SetGCPercent(base)
	const floor = 256 << 20
	stop := Start(floor)
	defer stop()

	waitFor := func(what string, ok func(p int) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			runtime.GC()
			runtime.GC() // the finalizer of the first collection tunes after it
			time.Sleep(10 * time.Millisecond)
			p := debug.SetGCPercent(-1)
			debug.SetGCPercent(p)
			if ok(p) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: GOGC is %d", what, p)
			}
		}
	}
	waitFor("small heap", func(p int) bool { return p > 1000 })

	big := make([][]byte, 0, 320)
	for range 320 { // 320 MiB live, above the floor
		big = append(big, make([]byte, 1<<20))
	}
	waitFor("heap above the floor", func(p int) bool { return p == 100 })
	runtime.KeepAlive(big)
	big = nil

	waitFor("small heap again", func(p int) bool { return p > 1000 })
	stop()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("after stop GOGC is %d, want the configured 100", p)
	}
}

func TestOffOrZeroDoesNothing(t *testing.T) {
	base := debug.SetGCPercent(-1) // GOGC=off
	defer debug.SetGCPercent(base)
	Start(64 << 20)()
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Fatalf("GOGC=off became %d", p)
	}
	debug.SetGCPercent(100)
	Start(0)()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("floor 0 changed GOGC to %d", p)
	}
}
