package syncserver

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// A device bootstrapping pulls page after page, asking for the next once the last has
// arrived: the server reading a page and the device applying the one before would take
// turns, each idle while the other works. So a session that has sent a page with more
// to come reads the next one while the device applies it; the device's next message,
// when it is a pull of exactly that page (the cursor just sent, the same limit, the
// same scope), is answered from it.
//
// The page read ahead is the answer the device would have had a moment earlier: pages
// are read by cursor (postgres.Store.Pull), and what changes meanwhile comes in later
// pages. It is dropped, and the message read as before, when anything else comes first
// (a push, so that the device's own changes are read after it), when the session's
// scope changes (the reset is on its way; the page is of the old scope), when the device
// does not ask within ReadAheadWait, and when the session ends. The server reads at
// most ReadAheadPages pages ahead at once: each holds a read transaction while it is
// read and up to a message of memory until it is asked for, so thousands of devices
// bootstrapping at once neither double the server's reads nor its memory (their pages
// are then simply not read ahead).

// readAhead is a page read ahead for a session.
type readAhead struct {
	key    string // the scope of the actor it was read for (scopeKey)
	cursor string
	limit  int
	ready  chan struct{} // closed when p is set
	p      page
	// panicked is set, before ready is closed, when reading the page panicked.
	panicked bool
	cancel   context.CancelFunc
	timer    *time.Timer
	refs     atomic.Int32 // the reader and the session; the slot is given back at 0
	slots    chan struct{}
	drop     sync.Once
}

// readAhead starts reading the page after the one just sent to actor (cursor), unless
// the server already reads as many pages ahead as it may.
func (c *conn) readAhead(actor *jiaoliu.Actor, cursor string, limit int) {
	s := c.srv
	slots := s.aheadSlots
	if slots == nil || c.over() {
		return
	}
	select {
	case slots <- struct{}{}:
	default:
		return
	}
	ctx, cancel := context.WithCancel(jiaoliu.NewContextWithActor(s.hardCtx, actor))
	ra := &readAhead{key: scopeKey(actor), cursor: cursor, limit: limit, ready: make(chan struct{}), cancel: cancel, slots: slots}
	ra.refs.Store(2)
	ra.timer = time.AfterFunc(s.ReadAheadWait, func() { c.dropReadAhead(ra) })
	c.mu.Lock()
	old := c.ahead
	c.ahead = ra
	c.mu.Unlock()
	old.discard()
	s.wg.Add(1) // Shutdown waits for the read, which uses the store
	go func() {
		defer s.wg.Done()
		defer ra.unref()
		defer close(ra.ready)
		defer func() {
			// A panic of the store is not the server's end: the page is not read
			// ahead, and the pull, read when it comes, meets it where a panic is
			// answered (handle).
			if p := recover(); p != nil {
				c.log().Error("sync read ahead panic", "panic", p, "stack", string(debug.Stack()))
				ra.panicked = true
			}
		}()
		ra.p = s.readPage(ctx, &wire.Pull{Cursor: cursor, Limit: limit})
	}()
	if c.over() { // the session ended meanwhile: its end may have missed ra
		c.dropReadAhead(ra)
	}
}

// takeReadAhead returns the session's page read ahead, if any, and forgets it: the
// caller uses it (answer) or drops it (discard).
func (c *conn) takeReadAhead() *readAhead {
	c.mu.Lock()
	defer c.mu.Unlock()
	ra := c.ahead
	c.ahead = nil
	return ra
}

// dropReadAhead drops ra if it is still the session's page read ahead.
func (c *conn) dropReadAhead(ra *readAhead) {
	c.mu.Lock()
	mine := c.ahead == ra
	if mine {
		c.ahead = nil
	}
	c.mu.Unlock()
	if mine {
		ra.discard()
	}
}

// answers reports whether ra is the page m asks for, read for an actor of the same
// scope as actor.
func (ra *readAhead) answers(m *wire.Pull, actor *jiaoliu.Actor) bool {
	return ra != nil && ra.cursor == m.Cursor && ra.limit == m.Limit && ra.key == scopeKey(actor)
}

// page waits for the page and returns it, or false when reading it panicked; the
// session is done with ra.
func (ra *readAhead) page() (page, bool) {
	<-ra.ready
	p, ok := ra.p, !ra.panicked
	ra.discard()
	return p, ok
}

// discard gives ra up: its read is canceled if still running, and its slot given back
// once the read has returned. Safe on nil and more than once.
func (ra *readAhead) discard() {
	if ra == nil {
		return
	}
	ra.drop.Do(func() {
		ra.cancel()
		ra.timer.Stop()
		ra.unref()
	})
}

func (ra *readAhead) unref() {
	if ra.refs.Add(-1) == 0 {
		ra.p = page{} // the memory goes with the slot
		<-ra.slots
	}
}
