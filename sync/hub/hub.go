// Package hub fans out database notifications to the connections of one server
// process. Each process holds one PostgreSQL listener (LISTEN sync_changes,
// device_revoked and sync_activity); every sync connection holds a Subscription with
// the scope tokens its user reads with. A change notification names the scope tokens
// of the changed records (or "*"), and the hub pokes the subscriptions whose tokens
// intersect them.
//
// The same listener carries live sync activity (activity.go): a Publisher on the
// replica that saw a push, a pull or a connection sends an Event through pg_notify,
// and the hub of every replica hands it to the ActivitySubscriptions of the
// administrators who may see it.
//
// The hub never blocks and never buffers without bound: a subscription has at most one
// pending poke (pokes are coalesced) and one pending re-authentication request, or,
// made by SubscribeFunc, is called and keeps nothing pending in the hub; an activity
// subscription has a bounded buffer and misses (and counts) what does not fit. What a connection then sends to its device, and how it treats a slow device, is
// the connection's business (see sync/server).
package hub

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// Notification channels the hub listens on.
const (
	// ChannelChanges carries the space-separated scope tokens of the records a
	// transaction changed, or "*" for "any" (the store's Apply sends it).
	ChannelChanges = "sync_changes"
	// ChannelRevoked carries "<deviceId>", "device:<deviceId>", "user:<userId>" or "*"
	// when device tokens are revoked or users disabled; the connections concerned
	// re-authenticate at once.
	ChannelRevoked = "device_revoked"
)

// AllTokens is the token of a subscription that reads everything (the system actor,
// an ADMIN): it is poked by every change.
const AllTokens = "*"

// Hub routes notifications to subscriptions. It is safe for concurrent use.
type Hub struct {
	log *slog.Logger

	mu       sync.Mutex
	all      map[*Subscription]struct{}
	byToken  map[string]*subSet
	byUser   map[string]*subSet
	byDevice map[string]*subSet

	activityState

	ready     chan struct{}
	readyOnce sync.Once
}

// New returns a hub without a listener: call Listen to feed it from PostgreSQL, or
// Changed, Revoked and Lost directly.
func New(log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{
		log:      log,
		all:      map[*Subscription]struct{}{},
		byToken:  map[string]*subSet{},
		byUser:   map[string]*subSet{},
		byDevice: map[string]*subSet{},
		ready:    make(chan struct{}),

		activityState: activityState{activity: map[*ActivitySubscription]struct{}{}},
	}
}

// Subscription is one connection's interest in changes: the user and device it acts
// for and the scope tokens it reads with. It hands its pokes and re-authentication
// requests over either through channels (Subscribe) or to a function (SubscribeFunc).
type Subscription struct {
	hub      *Hub
	userID   string
	deviceID string
	tokens   []string // guarded by hub.mu

	notify  func(check bool) // SubscribeFunc's; nil for Subscribe
	pokes   chan struct{}    // at most one pending poke (Subscribe)
	checks  chan struct{}    // at most one pending "re-authenticate now" (Subscribe)
	recheck atomic.Bool      // re-authenticate before the next message
	closed  bool             // guarded by hub.mu
}

// Subscribe registers a connection of user and device reading with tokens; its pokes
// and re-authentication requests come through Pokes and Checks. Close the
// subscription when the connection ends.
func (h *Hub) Subscribe(userID, deviceID string, tokens []string) *Subscription {
	s := &Subscription{hub: h, userID: userID, deviceID: deviceID,
		pokes: make(chan struct{}, 1), checks: make(chan struct{}, 1)}
	h.register(s, tokens)
	return s
}

// SubscribeFunc registers a connection of user and device reading with tokens, which
// is told of pokes (notify(false)) and of re-authentication requests (notify(true)) by
// a call of notify rather than through channels: a connection then needs no goroutine
// waiting on the hub. notify is called with the hub's lock held, on the goroutine
// that feeds the hub: it must return at once, must not block, and must not call into
// the hub. Pokes are not coalesced by the hub: notify may be called again before the
// connection acted on the last call. After Close returns, notify is not called again.
func (h *Hub) SubscribeFunc(userID, deviceID string, tokens []string, notify func(check bool)) *Subscription {
	s := &Subscription{hub: h, userID: userID, deviceID: deviceID, notify: notify}
	h.register(s, tokens)
	return s
}

func (h *Hub) register(s *Subscription, tokens []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.all[s] = struct{}{}
	add(h.byUser, s.userID, s)
	add(h.byDevice, strings.ToLower(s.deviceID), s)
	h.index(s, tokens)
}

// subSet is a set of subscriptions: a slice while small, as the sets of most keys are
// (a device's, a user's, a teacher's own token: one to three subscriptions), a map
// when large (a district's token). Thousands of idle connections then cost a few
// words per key instead of a map each.
type subSet struct {
	few  []*Subscription
	many map[*Subscription]struct{}
}

// fewSubs is the largest subSet kept as a slice.
const fewSubs = 8

func (set *subSet) add(s *Subscription) {
	switch {
	case set.many != nil:
		set.many[s] = struct{}{}
	case len(set.few) < fewSubs:
		set.few = append(set.few, s)
	default:
		set.many = make(map[*Subscription]struct{}, 2*fewSubs)
		for _, o := range set.few {
			set.many[o] = struct{}{}
		}
		set.many[s] = struct{}{}
		set.few = nil
	}
}

func (set *subSet) remove(s *Subscription) {
	if set.many != nil {
		delete(set.many, s)
		return
	}
	if i := slices.Index(set.few, s); i >= 0 {
		last := len(set.few) - 1
		set.few[i], set.few[last] = set.few[last], nil
		set.few = set.few[:last]
	}
}

func (set *subSet) len() int {
	if set == nil {
		return 0
	}
	return len(set.few) + len(set.many)
}

// each calls fn for every subscription of the set (which may be nil).
func (set *subSet) each(fn func(*Subscription)) {
	if set == nil {
		return
	}
	for _, s := range set.few {
		fn(s)
	}
	for s := range set.many {
		fn(s)
	}
}

func add(m map[string]*subSet, key string, s *Subscription) {
	if key == "" {
		return
	}
	set := m[key]
	if set == nil {
		set = &subSet{}
		m[key] = set
	}
	set.add(s)
}

func remove(m map[string]*subSet, key string, s *Subscription) {
	if set := m[key]; set != nil {
		set.remove(s)
		if set.len() == 0 {
			delete(m, key)
		}
	}
}

// index sets the tokens of s; h.mu must be held.
func (h *Hub) index(s *Subscription, tokens []string) {
	for _, t := range s.tokens {
		remove(h.byToken, t, s)
	}
	s.tokens = slices.Clone(tokens)
	for _, t := range s.tokens {
		add(h.byToken, t, s)
	}
}

// SetTokens replaces the scope tokens the subscription is poked for (after what the
// user may read changed).
func (s *Subscription) SetTokens(tokens []string) {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if !s.closed {
		s.hub.index(s, tokens)
	}
}

// Close removes the subscription from the hub. It is safe to call more than once.
func (s *Subscription) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	delete(h.all, s)
	remove(h.byUser, s.userID, s)
	remove(h.byDevice, strings.ToLower(s.deviceID), s)
	for _, t := range s.tokens {
		remove(h.byToken, t, s)
	}
}

// Pokes delivers a value when changes the subscription may read were committed since
// the last value was taken. Pokes are coalesced: at most one is pending. It is nil
// for a subscription made by SubscribeFunc.
func (s *Subscription) Pokes() <-chan struct{} { return s.pokes }

// Checks delivers a value when the connection must re-authenticate now (its device
// token may have been revoked). It is nil for a subscription made by SubscribeFunc.
func (s *Subscription) Checks() <-chan struct{} { return s.checks }

// TakeRecheck reports, and clears, whether the connection must re-authenticate before
// handling its next message (set when notifications were lost).
func (s *Subscription) TakeRecheck() bool { return s.recheck.Swap(false) }

// poke and check are called with hub.mu held.
func (s *Subscription) poke() {
	if s.notify != nil {
		s.notify(false)
		return
	}
	select {
	case s.pokes <- struct{}{}:
	default: // a poke is already pending
	}
}

func (s *Subscription) check() {
	if s.notify != nil {
		s.notify(true)
		return
	}
	select {
	case s.checks <- struct{}{}:
	default:
	}
}

// Changed handles a sync_changes payload: it pokes every subscription reading any of
// the payload's space-separated tokens, or all of them for "*" or an empty payload.
func (h *Hub) Changed(payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	payload = strings.TrimSpace(payload)
	if payload == "" || payload == "*" {
		for s := range h.all {
			s.poke()
		}
		return
	}
	h.byToken[AllTokens].each((*Subscription).poke)
	for _, t := range strings.Fields(payload) {
		h.byToken[t].each((*Subscription).poke)
	}
}

// Revoked handles a device_revoked payload: the subscriptions of the named device or
// user (or all for "*") are asked to re-authenticate now.
func (h *Hub) Revoked(payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	payload = strings.TrimSpace(payload)
	revoke := func(s *Subscription) {
		s.recheck.Store(true)
		s.check()
	}
	switch {
	case payload == "*" || payload == "":
		for s := range h.all {
			revoke(s)
		}
	case strings.HasPrefix(payload, "user:"):
		h.byUser[strings.TrimPrefix(payload, "user:")].each(revoke)
	default:
		h.byDevice[strings.ToLower(strings.TrimPrefix(payload, "device:"))].each(revoke)
	}
}

// Lost handles the loss of notifications (the listener reconnected): every
// subscription is poked, and re-authenticates before its next message, since a
// revocation may have been missed; every activity subscription is told that it may
// have missed events.
func (h *Hub) Lost() {
	h.mu.Lock()
	for s := range h.all {
		s.recheck.Store(true)
		s.poke()
	}
	h.mu.Unlock()
	h.lostActivity()
}

// Len returns the number of subscriptions.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.all)
}

// Ready is closed once Listen listens on its channels for the first time.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Listen connects a pq.Listener to the database at dsn, listens on ChannelChanges,
// ChannelRevoked and ChannelActivity, and feeds the hub until ctx is done.
// Reconnections are automatic; after one, notifications sent in the gap are lost, so
// the hub treats it as Lost.
// It returns nil when ctx is done, or an error if the channels cannot be listened on.
func (h *Hub) Listen(ctx context.Context, dsn string) error {
	l := pq.NewListener(dsn, 100*time.Millisecond, 10*time.Second, func(ev pq.ListenerEventType, err error) {
		switch ev {
		case pq.ListenerEventConnected:
			h.log.Info("sync hub listening", "event", ev.String())
		case pq.ListenerEventReconnected:
			h.log.Warn("sync hub reconnected: poking every connection", "event", ev.String())
		default:
			h.log.Warn("sync hub listener", "event", ev.String(), "err", err)
		}
	})
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer l.Close()
	for _, ch := range []string{ChannelChanges, ChannelRevoked, ChannelActivity} {
		if err := l.Listen(ch); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sync hub: listen %s: %w", ch, err)
		}
	}
	// Anything sent before LISTEN took effect is lost.
	h.Lost()
	h.readyOnce.Do(func() { close(h.ready) })
	ping := time.NewTicker(60 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case n, ok := <-l.Notify:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("sync hub: listener closed")
			}
			h.dispatch(n)
		case <-ping.C:
			// A dead connection is noticed by the ping, which makes the listener reconnect.
			go func() { _ = l.Ping() }()
		}
	}
}

func (h *Hub) dispatch(n *pq.Notification) {
	if n == nil {
		h.Lost()
		return
	}
	switch n.Channel {
	case ChannelChanges:
		h.Changed(n.Extra)
	case ChannelRevoked:
		h.Revoked(n.Extra)
	case ChannelActivity:
		h.Activity(n.Extra)
	}
}
