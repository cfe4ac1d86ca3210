// Package hlc implements the hybrid logical clock of the sync protocol: timestamps of
// the form WWWWWWWWWWWWW-CCCC-NODE (wall milliseconds, 13 digits; a counter, 4 hex
// digits; the writer's node id) that compare as strings.
package hlc

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Timestamp is a parsed HLC.
type Timestamp struct {
	Wall    int64 // milliseconds since the Unix epoch
	Counter uint16
	Node    string
}

// String formats t as the protocol's string form.
func (t Timestamp) String() string {
	return fmt.Sprintf("%013d-%04x-%s", t.Wall, t.Counter, t.Node)
}

// Parse parses an HLC string, checking every part of its form.
func Parse(s string) (Timestamp, error) {
	if len(s) < 20 || s[13] != '-' || s[18] != '-' {
		return Timestamp{}, fmt.Errorf("hlc %q: want WWWWWWWWWWWWW-CCCC-NODE", s)
	}
	// Digits only: ParseInt would take a sign, and HLCs compare as strings.
	if strings.Trim(s[:13], "0123456789") != "" {
		return Timestamp{}, fmt.Errorf("hlc %q: bad wall time", s)
	}
	wall, err := strconv.ParseInt(s[:13], 10, 64)
	if err != nil || wall < 0 {
		return Timestamp{}, fmt.Errorf("hlc %q: bad wall time", s)
	}
	c := s[14:18]
	if strings.ToLower(c) != c {
		return Timestamp{}, fmt.Errorf("hlc %q: counter must be lowercase hex", s)
	}
	counter, err := strconv.ParseUint(c, 16, 16)
	if err != nil {
		return Timestamp{}, fmt.Errorf("hlc %q: bad counter", s)
	}
	node := s[19:]
	if node == "" || len(node) > 64 {
		return Timestamp{}, fmt.Errorf("hlc %q: node id must be 1..64 characters", s)
	}
	return Timestamp{Wall: wall, Counter: uint16(counter), Node: node}, nil
}

// Clock is a hybrid logical clock for one node. It is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	node   string
	now    func() int64
	offset int64 // added to the wall clock (devices correct by the server's time)
	last   Timestamp
}

// NewClock returns a clock for node reading the system's wall clock.
func NewClock(node string) *Clock {
	return &Clock{node: node, now: func() int64 { return time.Now().UnixMilli() }}
}

// NewClockWithSource returns a clock reading wall milliseconds from now (for tests and
// simulated skew).
func NewClockWithSource(node string, now func() int64) *Clock {
	return &Clock{node: node, now: now}
}

// SetOffset sets a correction in milliseconds added to the wall clock.
func (c *Clock) SetOffset(ms int64) {
	c.mu.Lock()
	c.offset = ms
	c.mu.Unlock()
}

// WallNow returns the corrected wall time in milliseconds.
func (c *Clock) WallNow() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now() + c.offset
}

// Now returns a new timestamp, larger than every timestamp this clock issued or saw.
func (c *Clock) Now() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := c.now() + c.offset
	if wall > c.last.Wall {
		c.last = Timestamp{Wall: wall, Node: c.node}
	} else {
		c.tick()
	}
	c.last.Node = c.node
	return c.last.String()
}

// Update moves the clock past a timestamp received from elsewhere. Malformed input is
// ignored (it cannot be compared meaningfully).
func (c *Clock) Update(remote string) {
	r, err := Parse(remote)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Wall > c.last.Wall || (r.Wall == c.last.Wall && r.Counter > c.last.Counter) {
		c.last = Timestamp{Wall: r.Wall, Counter: r.Counter, Node: c.node}
	}
}

func (c *Clock) tick() {
	if c.last.Counter == 0xffff {
		// The counter is exhausted within one millisecond: borrow the next millisecond.
		c.last.Wall++
		c.last.Counter = 0
		return
	}
	c.last.Counter++
}
