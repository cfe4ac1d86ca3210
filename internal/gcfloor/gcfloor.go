// Package gcfloor keeps the garbage collector's heap goal above a floor.
//
// With GOGC=100 the runtime collects whenever the heap has doubled since the last
// collection. A server whose live heap is small (a few MiB between requests) therefore
// collects every few MiB allocated: serving a page of GraphQL allocates about 1 MiB, so
// the collector ran every few requests and took about a third of the server's CPU.
// Raising GOGC for the whole process would fix that but also multiply the memory of a
// server holding thousands of idle tablet connections, whose live heap is large.
//
// Start does what neither setting does alone: after each collection it sets GOGC so the
// next goal is the larger of what GOGC would give (live heap + (live heap + stacks +
// globals) × GOGC/100, the runtime's formula) and the floor. A small heap collects when
// it reaches the floor; a large one exactly as before.
// This is the "GC tuner" pattern (a finalizer that runs once per collection), with the
// runtime's own live-heap metric.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// DefaultMiB is the floor the server keeps unless told otherwise (GC_FLOOR_MIB): above a
// busy API server's live heap, below twice that of 10,000 idle sockets (BENCHMARKS.md).
const DefaultMiB = 64

// Percent returns the GOGC that makes the next heap goal at least floor bytes, and
// never less than base (the configured GOGC), for a live heap of live bytes and roots
// (goroutine stacks and globals) of roots bytes: the runtime's goal is
// live + (live + roots) × GOGC/100.
func Percent(live, roots, floor uint64, base int) int {
	if live == 0 || live >= floor {
		return base
	}
	p := int((floor - live) * 100 / (live + roots))
	return max(p, base)
}

// Start keeps the heap goal at least floor bytes until the returned stop is called. It
// does nothing (and stop does nothing) when floor is 0 or the collector is off (GOGC=off).
func Start(floor uint64) (stop func()) {
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if floor == 0 || base < 0 {
		return func() {}
	}
	t := &tuner{floor: floor, base: base, sample: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}}
	t.arm()
	t.tune() // the first goal, before any collection
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.stopped {
			t.stopped = true
			debug.SetGCPercent(base)
		}
	}
}

type tuner struct {
	floor uint64
	base  int

	mu      sync.Mutex
	sample  []metrics.Sample
	stopped bool
	last    int // the GOGC set last
}

// arm allocates a sentinel that becomes garbage at once: its finalizer runs after the
// next collection, tunes, and arms again.
func (t *tuner) arm() {
	s := new(sentinel)
	runtime.SetFinalizer(s, func(*sentinel) {
		if t.tune() {
			t.arm()
		}
	})
}

type sentinel struct{ _ [16]byte } // not zero-sized: finalizers need their own object

// tune sets GOGC for the live heap now; false once stopped.
func (t *tuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.sample)
	var v [3]uint64
	for i, s := range t.sample {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	p := Percent(v[0], v[1]+v[2], t.floor, t.base)
	if p != t.last {
		debug.SetGCPercent(p)
		t.last = p
	}
	return true
}
