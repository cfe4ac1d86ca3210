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
// pending poke (pokes are coalesced) and one pending re-authentication request; an
// activity subscription has a bounded buffer and misses (and counts) what does not
// fit. What a connection then sends to its device, and how it treats a slow device, is
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
	byToken  map[string]map[*Subscription]struct{}
	byUser   map[string]map[*Subscription]struct{}
	byDevice map[string]map[*Subscription]struct{}

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
		byToken:  map[string]map[*Subscription]struct{}{},
		byUser:   map[string]map[*Subscription]struct{}{},
		byDevice: map[string]map[*Subscription]struct{}{},
		ready:    make(chan struct{}),

		activityState: activityState{activity: map[*ActivitySubscription]struct{}{}},
	}
}

// Subscription is one connection's interest in changes: the user and device it acts
// for and the scope tokens it reads with.
type Subscription struct {
	hub      *Hub
	userID   string
	deviceID string
	tokens   []string // guarded by hub.mu

	pokes   chan struct{} // at most one pending poke
	checks  chan struct{} // at most one pending "re-authenticate now"
	recheck atomic.Bool   // re-authenticate before the next message
	closed  bool          // guarded by hub.mu
}

// Subscribe registers a connection of user and device reading with tokens. Close the
// subscription when the connection ends.
func (h *Hub) Subscribe(userID, deviceID string, tokens []string) *Subscription {
	s := &Subscription{hub: h, userID: userID, deviceID: deviceID,
		pokes: make(chan struct{}, 1), checks: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.all[s] = struct{}{}
	add(h.byUser, userID, s)
	add(h.byDevice, strings.ToLower(deviceID), s)
	h.index(s, tokens)
	return s
}

func add(m map[string]map[*Subscription]struct{}, key string, s *Subscription) {
	if key == "" {
		return
	}
	set := m[key]
	if set == nil {
		set = map[*Subscription]struct{}{}
		m[key] = set
	}
	set[s] = struct{}{}
}

func remove(m map[string]map[*Subscription]struct{}, key string, s *Subscription) {
	if set := m[key]; set != nil {
		delete(set, s)
		if len(set) == 0 {
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
// the last value was taken. Pokes are coalesced: at most one is pending.
func (s *Subscription) Pokes() <-chan struct{} { return s.pokes }

// Checks delivers a value when the connection must re-authenticate now (its device
// token may have been revoked).
func (s *Subscription) Checks() <-chan struct{} { return s.checks }

// TakeRecheck reports, and clears, whether the connection must re-authenticate before
// handling its next message (set when notifications were lost).
func (s *Subscription) TakeRecheck() bool { return s.recheck.Swap(false) }

func (s *Subscription) poke() {
	select {
	case s.pokes <- struct{}{}:
	default: // a poke is already pending
	}
}

func (s *Subscription) check() {
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
	for s := range h.byToken[AllTokens] {
		s.poke()
	}
	for _, t := range strings.Fields(payload) {
		for s := range h.byToken[t] {
			s.poke()
		}
	}
}

// Revoked handles a device_revoked payload: the subscriptions of the named device or
// user (or all for "*") are asked to re-authenticate now.
func (h *Hub) Revoked(payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	payload = strings.TrimSpace(payload)
	var set map[*Subscription]struct{}
	switch {
	case payload == "*" || payload == "":
		set = h.all
	case strings.HasPrefix(payload, "user:"):
		set = h.byUser[strings.TrimPrefix(payload, "user:")]
	default:
		set = h.byDevice[strings.ToLower(strings.TrimPrefix(payload, "device:"))]
	}
	for s := range set {
		s.recheck.Store(true)
		s.check()
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
