package syncserver

import (
	"sync"
	"time"
)

// pingSlots is the number of slots of the keepalive wheel: a session is pinged every
// PingInterval, each time within PingInterval/pingSlots of when it is due.
const pingSlots = 16

// keepalive pings the sessions past hello every PingInterval. Rather than a timer per
// session (thousands of idle tablets), one goroutine, which runs while there are
// sessions, visits one slot of sessions every PingInterval/pingSlots.
type keepalive struct {
	mu      sync.Mutex
	slots   [pingSlots]map[*conn]struct{}
	next    int // the slot visited next
	n       int // sessions in all slots
	running bool
}

// add starts pinging c: the first ping comes about PingInterval later.
func (k *keepalive) add(s *Server, c *conn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c.pinged {
		return
	}
	i := (k.next + pingSlots - 1) % pingSlots // the slot visited last: visited again last
	if k.slots[i] == nil {
		k.slots[i] = map[*conn]struct{}{}
	}
	k.slots[i][c] = struct{}{}
	c.pingSlot, c.pinged = uint8(i), true
	k.n++
	if !k.running {
		k.running = true
		go k.run(s)
	}
}

// remove stops pinging c.
func (k *keepalive) remove(c *conn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c.pinged {
		delete(k.slots[c.pingSlot], c)
		c.pinged = false
		k.n--
	}
}

// run visits the slots in turn until no session is left.
func (k *keepalive) run(s *Server) {
	t := time.NewTicker(max(s.PingInterval/pingSlots, time.Millisecond))
	defer t.Stop()
	for range t.C {
		k.mu.Lock()
		if k.n == 0 {
			k.running = false
			k.mu.Unlock()
			return
		}
		for c := range k.slots[k.next] {
			c.ping() // takes only c.qmu
		}
		k.next = (k.next + 1) % pingSlots
		k.mu.Unlock()
	}
}
