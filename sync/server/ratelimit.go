package syncserver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/hub"
)

// limiter holds what bounds the load a server takes from its devices and puts on its
// database: a token bucket of messages per device, the teachers' scope queries
// (scopes), and the logging of errors that come in floods (errs).
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time

	scopes scopeRefresher
	errs   errorLog
}

type bucket struct {
	tokens float64
	last   time.Time
}

// idleBucket is how long a bucket may go unused before it is forgotten (it is full
// again by then).
const idleBucket = 10 * time.Minute

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// allow takes a token from the device's bucket and reports whether there was one. A
// rate of zero or less disables limiting.
func (l *limiter) allow(device string) bool {
	if l.rate <= 0 {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.last) > idleBucket {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = now
	}
	b := l.buckets[device]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[device] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Bounds of the teachers' scope queries (see scopeRefresher).
var (
	// scopeRefreshInterval is the least time between two scope queries for one user;
	// a change during it is picked up by one query at its end.
	scopeRefreshInterval = time.Second
	// scopeRefreshWorkers is the most scope queries running at once.
	scopeRefreshWorkers = 4
	// scopeRefreshTimeout bounds one scope query.
	scopeRefreshTimeout = 10 * time.Second
)

// scopeRefresher recomputes the scope tokens of teachers' sessions after changes that
// may have changed them (see scopeTriggers), instead of one query per socket per
// change. The sessions of one user form a group (their tokens depend only on the
// user's role, district, school and teacher: scopeKey) with one hub subscription to
// those changes, whose notifications make one query for all. A group is queried at most once
// per scopeRefreshInterval, and a change that arrives during the interval or while
// the query runs gets one more query at its end, so no change is missed. At most
// scopeRefreshWorkers queries run at once, so a change that pokes every teacher (a
// "*" notification, the hub's listener reconnecting) queues the queries rather than
// taking the database's connections from pushes and pulls. The poke itself is sent at
// once, never held up by the query: a device that pulls before its reset arrives gets
// the reset from the pull (its cursor is of the old scope).
type scopeRefresher struct {
	mu      sync.Mutex
	users   map[string]*scopeUser
	queue   []*scopeUser
	workers int

	// The hub's calls (with the hub's lock held) only note the group here, for one
	// goroutine to request its query: r.mu is held while the hub is called (join,
	// drop), so the hub must not wait for it. kmu is taken last.
	kmu     sync.Mutex
	kicked  []*scopeUser
	kicking bool // the goroutine runs
}

// scopeUser is the sessions of one user, sharing their scope queries.
type scopeUser struct {
	key    string
	sub    *hub.Subscription // poked by the changes that may change the scope
	conns  []*conn
	kicked bool        // in scopeRefresher.kicked; guarded by kmu
	queued bool        // in the queue: its query has not started
	busy   bool        // its query runs
	again  bool        // a change arrived while the query ran
	last   time.Time   // when its last query started
	timer  *time.Timer // a query is due when the interval ends
}

// scopeKey identifies the users whose sessions read with the same tokens.
func scopeKey(a *jiaoliu.Actor) string {
	return string(a.Role) + "|" + a.DistrictID + "|" + a.SchoolID + "|" + a.TeacherID
}

// join adds c, a session of actor reading with tokens, to the group of its user and
// returns the group, or nil for a session whose scope needs no refreshes.
func (r *scopeRefresher) join(s *Server, c *conn, actor *jiaoliu.Actor, tokens []string) *scopeUser {
	triggers := scopeTriggers(actor, tokens)
	if triggers == nil {
		return nil
	}
	key := scopeKey(actor)
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.users[key]
	if u == nil {
		if r.users == nil {
			r.users = map[string]*scopeUser{}
		}
		// Without user and device: revocations concern the sessions' own subscriptions.
		u = &scopeUser{key: key}
		u.sub = s.hub.SubscribeFunc("", "", triggers, func(bool) { r.kick(s, u) })
		r.users[key] = u
	}
	u.conns = append(u.conns, c)
	return u
}

// leave removes c from its group u.
func (r *scopeRefresher) leave(u *scopeUser, c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u.conns = slices.DeleteFunc(u.conns, func(o *conn) bool { return o == c })
	r.drop(u)
}

// drop forgets u once it has no sessions and nothing of it is pending; r.mu must be
// held.
func (r *scopeRefresher) drop(u *scopeUser) {
	if len(u.conns) > 0 || u.queued || u.busy || r.users[u.key] != u {
		return
	}
	if u.timer != nil {
		u.timer.Stop()
		u.timer = nil
	}
	u.sub.Close()
	delete(r.users, u.key)
}

// kick notes that a change that may have changed u's scope was committed; it is
// called by the hub, so it only queues u for takeKicks.
func (r *scopeRefresher) kick(s *Server, u *scopeUser) {
	r.kmu.Lock()
	defer r.kmu.Unlock()
	if u.kicked {
		return
	}
	u.kicked = true
	r.kicked = append(r.kicked, u)
	if !r.kicking {
		r.kicking = true
		go r.takeKicks(s)
	}
}

// takeKicks requests the queries of the groups kick queued, until none is left.
func (r *scopeRefresher) takeKicks(s *Server) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("sync scope refresh panic", "panic", p)
			r.kmu.Lock()
			r.kicking = false
			r.kmu.Unlock()
		}
	}()
	for {
		r.kmu.Lock()
		us := r.kicked
		r.kicked = nil
		if len(us) == 0 {
			r.kicking = false
			r.kmu.Unlock()
			return
		}
		for _, u := range us {
			u.kicked = false
		}
		r.kmu.Unlock()
		for _, u := range us {
			r.request(s, u)
		}
	}
}

// request asks for u's scope to be recomputed: a change that may have changed it was
// committed.
func (r *scopeRefresher) request(s *Server, u *scopeUser) {
	if s.ctx.Err() != nil {
		return // shutting down: no more messages are handled
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.users[u.key] == u {
		r.schedule(s, u)
	}
}

// schedule queues u's query now, or at the end of its interval; r.mu must be held.
func (r *scopeRefresher) schedule(s *Server, u *scopeUser) {
	switch {
	case u.queued, u.timer != nil:
		return // a query that has not started yet sees the change
	case u.busy:
		u.again = true
		return
	}
	if wait := scopeRefreshInterval - time.Since(u.last); wait > 0 {
		u.timer = time.AfterFunc(wait, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if u.timer == nil {
				return // dropped
			}
			u.timer = nil
			r.enqueue(s, u)
		})
		return
	}
	r.enqueue(s, u)
}

// enqueue queues u's query and starts a worker if fewer than the limit run; r.mu must
// be held.
func (r *scopeRefresher) enqueue(s *Server, u *scopeUser) {
	u.queued = true
	r.queue = append(r.queue, u)
	if r.workers < scopeRefreshWorkers {
		r.workers++
		go r.work(s)
	}
}

// work runs queued queries until the queue is empty.
func (r *scopeRefresher) work(s *Server) {
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.workers--
			r.queue = nil
			r.mu.Unlock()
			return
		}
		u := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		u.queued = false
		if len(u.conns) == 0 {
			r.drop(u)
			r.mu.Unlock()
			continue
		}
		u.busy, u.last = true, time.Now()
		c := u.conns[0]
		r.mu.Unlock()

		tokens, actor, err := r.query(s, c)

		r.mu.Lock()
		u.busy = false
		conns := slices.Clone(u.conns)
		if u.again {
			u.again = false
			r.schedule(s, u)
		}
		r.drop(u)
		r.mu.Unlock()
		switch {
		case err != nil:
			if s.ctx.Err() == nil {
				s.logInfra(s.log, slog.LevelWarn, "sync scope refresh", err, "sessions", len(conns))
			}
		case actor != nil:
			for _, c := range conns {
				c.setTokens(actor, tokens, true)
			}
		}
	}
}

// query reads the scope tokens of c's actor; a panic in it ends only that query.
func (r *scopeRefresher) query(s *Server, c *conn) (tokens []string, actor *jiaoliu.Actor, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("sync scope refresh panic", "panic", p)
			tokens, actor, err = nil, nil, nil
		}
	}()
	c.mu.Lock()
	actor = c.actor
	c.mu.Unlock()
	if actor == nil {
		return nil, nil, nil
	}
	ctx, cancel := context.WithTimeout(jiaoliu.NewContextWithActor(s.hardCtx, actor), scopeRefreshTimeout)
	defer cancel()
	tokens, err = c.scopeTokens(ctx, actor)
	return tokens, actor, err
}

// errorLogWindow is how often an error that keeps coming back while the database is
// away is logged again, with the count of the occurrences not logged.
const errorLogWindow = 10 * time.Second

// errorLog keeps the logs readable while the database is away: then every device
// message fails the same way. The first error of a kind (its log message) is logged at
// its level; the same kind is then logged at most once per errorLogWindow, at WARN,
// with the number of occurrences since the last line. Once a kind has been quiet for a
// window, its next error is logged at its level again. Errors that do not say the
// database is unreachable are always logged.
type errorLog struct {
	mu    sync.Mutex
	kinds map[string]*errorKind
}

type errorKind struct {
	logged     time.Time // when the last line was written
	last       time.Time // when the last error occurred
	suppressed int       // errors since the last line that were not logged
}

// logInfra logs err, which happened while doing msg, at level, unless it says the
// database is unreachable and was logged recently (see errorLog).
func (s *Server) logInfra(log *slog.Logger, level slog.Level, msg string, err error, attrs ...any) {
	if s.limits == nil || !isConnectivity(err) {
		log.Log(context.Background(), level, msg, append(attrs, "err", err)...)
		return
	}
	s.limits.errs.log(s.limits.now(), log, level, msg, err, attrs...)
}

func (l *errorLog) log(now time.Time, log *slog.Logger, level slog.Level, msg string, err error, attrs ...any) {
	l.mu.Lock()
	if l.kinds == nil {
		l.kinds = map[string]*errorKind{}
	}
	k := l.kinds[msg]
	if k == nil {
		k = &errorKind{}
		l.kinds[msg] = k
	}
	fresh := now.Sub(k.last) > errorLogWindow // quiet for a window: a new outage
	due := now.Sub(k.logged) >= errorLogWindow
	k.last = now
	if !fresh && !due {
		k.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := k.suppressed
	k.suppressed, k.logged = 0, now
	l.mu.Unlock()
	if fresh {
		log.Log(context.Background(), level, msg, append(attrs, "err", err)...)
		return
	}
	log.Warn(msg+" (still failing: the database is unreachable)", append(attrs, "err", err, "since_last_log", suppressed+1)...)
}

// isConnectivity reports whether err says the database cannot be reached or is going
// away, rather than that a statement failed.
func isConnectivity(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	var pe *pq.Error
	switch {
	case errors.As(err, &ne), errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ENOENT): // the Unix socket of a stopped server
		return true
	case errors.As(err, &pe):
		// 08: connection exception; 57P01..57P03: shutting down, cannot connect now;
		// 53300: too many connections.
		return pe.Code.Class() == "08" || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || pe.Code == "53300"
	}
	return false
}
