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
//
// A clock kept in memory starts again from the wall clock after a restart: if the
// wall clock went backwards meanwhile, it would issue timestamps below those it
// issued before. SetLease prevents that: the clock then issues no wall time beyond a
// limit that its owner persisted (a lease), and has the owner move the limit forward
// before it gets there; Observe, at the next start, moves the clock past the
// persisted limit.
type Clock struct {
	mu     sync.Mutex
	node   string
	now    func() int64
	offset int64 // added to the wall clock (devices correct by the server's time)
	last   Timestamp

	// The lease (see SetLease); renew is nil without one.
	limit    int64 // no wall time beyond this is issued while it can be helped
	ahead    int64 // how far beyond the timestamps renewals move the limit (ms)
	renew    func(want int64) (int64, error)
	renewing bool       // an asynchronous renewal runs
	failedAt time.Time  // when a renewal last failed
	renewMu  sync.Mutex // serializes renewals
}

// renewBackoff is how long after a failed renewal the clock issues timestamps at its
// limit rather than wait for another renewal.
const renewBackoff = time.Second

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

// Node returns the clock's node id.
func (c *Clock) Node() string { return c.node }

// Last returns the largest timestamp the clock issued or saw (the zero Timestamp if
// none).
func (c *Clock) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Now returns a new timestamp, larger than every timestamp this clock issued or saw.
// With a lease (SetLease), its wall time stays within the limit: when the wall clock
// has passed the limit (the clock was idle longer than the lease), Now renews the
// lease first and waits for it; if that fails, it counts on at the limit.
func (c *Clock) Now() string {
	c.mu.Lock()
	if c.renew != nil {
		switch next := c.nextWall(); {
		case next > c.limit && time.Since(c.failedAt) >= renewBackoff:
			c.mu.Unlock()
			c.extend(next)
			c.mu.Lock()
		case next > c.limit-c.ahead/2:
			c.extendAsync(next)
		}
	}
	wall := c.now() + c.offset
	if c.renew != nil && wall > c.limit {
		wall = c.limit // counted on at the limit: see SetLease
	}
	if wall > c.last.Wall {
		c.last = Timestamp{Wall: wall, Node: c.node}
	} else {
		c.tick()
	}
	c.last.Node = c.node
	s := c.last.String()
	c.mu.Unlock()
	return s
}

// nextWall returns the wall time of the timestamp Now would issue; c.mu must be held.
func (c *Clock) nextWall() int64 {
	wall := c.now() + c.offset
	switch {
	case wall > c.last.Wall:
		return wall
	case c.last.Counter == 0xffff:
		return c.last.Wall + 1
	}
	return c.last.Wall
}

// Update moves the clock past a timestamp received from elsewhere. Malformed input is
// ignored (it cannot be compared meaningfully).
func (c *Clock) Update(remote string) {
	r, err := Parse(remote)
	if err != nil {
		return
	}
	c.Observe(r)
}

// Observe moves the clock past t: every timestamp it issues afterwards is larger.
// Besides timestamps received from elsewhere, it seeds a clock at start with the
// limit of its last lease, as Timestamp{Wall: limit, Counter: 0xffff}.
func (c *Clock) Observe(t Timestamp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Wall > c.last.Wall || (t.Wall == c.last.Wall && t.Counter > c.last.Counter) {
		c.last = Timestamp{Wall: t.Wall, Counter: t.Counter, Node: c.node}
	}
	if c.renew != nil && c.last.Wall > c.limit-c.ahead/2 {
		// A timestamp ahead of the lease (a device's): cover the clock's next ones.
		c.extendAsync(c.nextWall())
	}
}

// SetLease bounds the clock by a lease: limit is a wall time (ms) its owner persisted,
// and renew persists a later one, at least want, and returns it. The clock issues no
// wall time beyond the limit, so an owner that at its next start seeds the clock with
// the persisted limit (Observe) never sees it issue a smaller timestamp than before,
// even if the wall clock went backwards. The clock renews the lease on a goroutine of
// its own when its timestamps come within ahead/2 of the limit, for ahead beyond them,
// so that Now does not wait; only after an idle time longer than the lease does Now
// wait for a renewal. Renewals run one at a time.
//
// When a renewal fails, Now counts on at the limit (the timestamps keep increasing,
// their wall time stands) and tries again a second later. Two cases go beyond the
// limit all the same, since a clock must not go backwards: a timestamp observed from
// elsewhere beyond it (a device's HLC ahead of the server's clock), until the renewal
// it starts is done, and 65,536 timestamps within one millisecond at the limit.
func (c *Clock) SetLease(limit int64, ahead time.Duration, renew func(want int64) (int64, error)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limit, c.ahead, c.renew = limit, ahead.Milliseconds(), renew
}

// extendAsync starts a renewal covering next unless one runs; c.mu must be held.
func (c *Clock) extendAsync(next int64) {
	if c.renewing || time.Since(c.failedAt) < renewBackoff {
		return
	}
	c.renewing = true
	go func() {
		c.extend(next)
		c.mu.Lock()
		c.renewing = false
		c.mu.Unlock()
	}()
}

// extend renews the lease, unless a renewal that ran meanwhile covers next.
func (c *Clock) extend(next int64) {
	c.renewMu.Lock()
	defer c.renewMu.Unlock()
	c.mu.Lock()
	covered := next <= c.limit-c.ahead/2
	want := max(next, c.last.Wall) + c.ahead
	renew := c.renew
	c.mu.Unlock()
	if covered {
		return
	}
	limit, err := renew(want)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.failedAt = time.Now()
		return
	}
	c.failedAt = time.Time{}
	c.limit = max(c.limit, limit)
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
