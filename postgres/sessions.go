package postgres

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/jiaoliu/jiaoliu"
)

// sessionCheckEvery is how long an authenticated session of an administrator or auditor is
// taken without reading the user again.
const sessionCheckEvery = 2 * time.Second

// maxSessions bounds the sessions kept; past it the cache starts again empty.
const maxSessions = 10_000

// sessionCache keeps, for a moment, the actors of recently authenticated session
// tokens, so that the several requests a screen sends at once cost one read of the
// user and their scope tokens instead of one each (the read was ~1 ms of PostgreSQL per
// GraphQL request). Only administrators and auditors: their scope tokens depend on the
// user's row alone, which changes only through this store (a password change or a
// disabled user), and every such change empties the cache once it has committed. A
// teacher's tokens follow their exchanges, and device tokens are the sync layer's,
// which authenticates per message and notices revocations by notification: neither is
// kept. On the other replicas a change is seen within sessionCheckEvery.
type sessionCache struct {
	gen atomic.Int64 // bumped by every change of a user
	mu  sync.Mutex
	m   map[string]sessionEntry
}

type sessionEntry struct {
	actor   jiaoliu.Actor
	gen     int64
	expires time.Time
}

// generation is read before the user is: an entry made from a read that a change may
// have overtaken is never used.
func (c *sessionCache) generation() int64 { return c.gen.Load() }

// get returns a copy of the actor of token, or nil.
func (c *sessionCache) get(token string) *jiaoliu.Actor {
	c.mu.Lock()
	e, ok := c.m[token]
	c.mu.Unlock()
	if !ok || e.gen != c.gen.Load() || time.Now().After(e.expires) {
		return nil
	}
	a := e.actor
	return &a
}

// put keeps a copy of the actor of token, read at generation gen.
func (c *sessionCache) put(token string, a *jiaoliu.Actor, gen int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxSessions {
		c.m = map[string]sessionEntry{}
	}
	c.m[token] = sessionEntry{actor: *a, gen: gen, expires: time.Now().Add(sessionCheckEvery)}
}

// forget drops every kept session (a user changed).
func (c *sessionCache) forget() {
	c.gen.Add(1)
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}
