package hub

import (
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ChannelActivity carries sync activity events, one JSON Event per notification, from
// the replica that saw the activity (its Publisher) to the hubs of every replica, which
// fan them out to the administrators watching (the GraphQL subscription syncActivity).
const ChannelActivity = "sync_activity"

// Kinds of activity events. The values are those of the GraphQL enum SyncActivityKind.
const (
	// KindConnected means a device's socket passed hello.
	KindConnected = "DEVICE_CONNECTED"
	// KindDisconnected means a socket that had passed hello closed.
	KindDisconnected = "DEVICE_DISCONNECTED"
	// KindPush means a push was committed; the event counts its results.
	KindPush = "PUSH"
	// KindPull means a pull answered a page of records.
	KindPull = "PULL"
	// KindRejection means an op of a push was rejected and stored (RejectionID).
	KindRejection = "REJECTION"
	// KindConflict means an op of a push lost fields to newer writes (ConflictIDs).
	KindConflict = "CONFLICT"
	// KindRevoked means a device was revoked.
	KindRevoked = "DEVICE_REVOKED"
	// KindDropped is made by the hub, never published: the subscriber missed events
	// because it did not keep up (Dropped counts them) or because notifications were
	// lost while the listener reconnected (Dropped is nil).
	KindDropped = "EVENTS_DROPPED"
)

// Event is one sync activity event. It travels as JSON through pg_notify, so it stays
// well under PostgreSQL's 8000-byte payload limit (see Publisher).
type Event struct {
	// ID makes every payload unique: PostgreSQL folds identical notifications sent in
	// one transaction into one.
	ID   string    `json:"id"`
	Kind string    `json:"kind"`
	At   time.Time `json:"at"`
	// Node is the replica (its HLC node id) that saw the activity.
	Node string `json:"node,omitempty"`
	// Scopes are the district and school tokens ("d:<id>", "s:<id>") of the device's
	// user, as the store's scope functions compute them: who may watch the event.
	// Empty for an ADMIN's device: only ADMIN subscribers see it.
	Scopes     []string `json:"scopes"`
	DeviceID   string   `json:"deviceId,omitempty"`
	DeviceName string   `json:"deviceName,omitempty"`
	UserID     string   `json:"userId,omitempty"`
	Username   string   `json:"username,omitempty"`
	// BatchID is the push's batch (PUSH, REJECTION, CONFLICT).
	BatchID string `json:"batchId,omitempty"`
	// Counts of a PUSH: ops in the batch and how they ended (a duplicate is an op
	// resent after it was acknowledged; it is counted only as a duplicate).
	Ops        int `json:"ops,omitempty"`
	Applied    int `json:"applied,omitempty"`
	Merged     int `json:"merged,omitempty"`
	Rejected   int `json:"rejected,omitempty"`
	Duplicates int `json:"duplicates,omitempty"`
	Conflicts  int `json:"conflicts,omitempty"`
	// Records and More describe a PULL page.
	Records int  `json:"records,omitempty"`
	More    bool `json:"more,omitempty"`
	// RejectionID, Entity, RecordID, Code and Fields describe a REJECTION (Fields:
	// the fields with a validation message) or a CONFLICT (Fields: the fields lost;
	// ConflictIDs: the recorded conflicts).
	RejectionID string   `json:"rejectionId,omitempty"`
	ConflictIDs []string `json:"conflictIds,omitempty"`
	Entity      string   `json:"entity,omitempty"`
	RecordID    string   `json:"recordId,omitempty"`
	Code        string   `json:"code,omitempty"`
	Fields      []string `json:"fields,omitempty"`
	// Dropped is set on EVENTS_DROPPED only.
	Dropped *int `json:"-"`
}

// DefaultActivityBuffer is how many events wait for a slow activity subscriber before
// the hub drops further events for it.
const DefaultActivityBuffer = 64

// ActivitySubscription is one watcher of sync activity (a GraphQL subscription). It
// receives the events whose scopes intersect its tokens and that pass its filter,
// through a bounded channel: when the channel is full the hub drops the event for this
// subscriber only and counts it, so a slow watcher never holds up the hub, a push or
// another watcher.
type ActivitySubscription struct {
	hub    *Hub
	all    bool                // reads everything (an ADMIN)
	tokens map[string]struct{} // otherwise: the tokens it reads with
	filter func(*Event) bool

	events  chan Event
	notices chan struct{} // something was dropped or lost; coalesced
	dropped atomic.Int64  // events dropped since the last TakeDropped
	lost    atomic.Bool   // notifications were lost since the last TakeDropped
	closed  bool          // guarded by hub.amu
}

// SubscribeActivity registers a watcher reading with tokens (AllTokens, or nil, for
// everything) whose events must also pass filter (nil: all). buffer bounds the events
// waiting for it (DefaultActivityBuffer when 0 or less). Close the subscription when
// the watcher goes.
func (h *Hub) SubscribeActivity(tokens []string, filter func(*Event) bool, buffer int) *ActivitySubscription {
	if buffer <= 0 {
		buffer = DefaultActivityBuffer
	}
	s := &ActivitySubscription{hub: h, filter: filter, tokens: map[string]struct{}{},
		events: make(chan Event, buffer), notices: make(chan struct{}, 1)}
	s.all = tokens == nil || slices.Contains(tokens, AllTokens)
	for _, t := range tokens {
		s.tokens[t] = struct{}{}
	}
	h.amu.Lock()
	defer h.amu.Unlock()
	h.activity[s] = struct{}{}
	return s
}

// Events delivers the subscription's events, oldest first.
func (s *ActivitySubscription) Events() <-chan Event { return s.events }

// Notices delivers a value when events were dropped for this subscriber or lost for
// everyone (see TakeDropped); values are coalesced.
func (s *ActivitySubscription) Notices() <-chan struct{} { return s.notices }

// TakeDropped reports, and clears, how many events were dropped because the subscriber
// did not keep up, and whether notifications were lost (the listener reconnected), in
// which case the count is incomplete.
func (s *ActivitySubscription) TakeDropped() (dropped int, lost bool) {
	return int(s.dropped.Swap(0)), s.lost.Swap(false)
}

// Close removes the subscription from the hub. It is safe to call more than once.
func (s *ActivitySubscription) Close() {
	h := s.hub
	h.amu.Lock()
	defer h.amu.Unlock()
	if !s.closed {
		s.closed = true
		delete(h.activity, s)
	}
}

func (s *ActivitySubscription) wants(ev *Event) bool {
	if !s.all {
		visible := false
		for _, t := range ev.Scopes {
			if _, ok := s.tokens[t]; ok {
				visible = true
				break
			}
		}
		if !visible {
			return false
		}
	}
	return s.filter == nil || s.filter(ev)
}

func (s *ActivitySubscription) notice() {
	select {
	case s.notices <- struct{}{}:
	default:
	}
}

// ActivityLen returns the number of activity subscriptions.
func (h *Hub) ActivityLen() int {
	h.amu.RLock()
	defer h.amu.RUnlock()
	return len(h.activity)
}

// Activity handles a sync_activity payload: it decodes the event once and hands it to
// every subscription that may see it and wants it, without ever blocking.
func (h *Hub) Activity(payload string) {
	var ev Event
	if err := json.Unmarshal([]byte(payload), &ev); err != nil || ev.Kind == "" {
		h.log.Warn("sync activity: undecodable notification", "err", err, "bytes", len(payload))
		return
	}
	h.Deliver(ev)
}

// Deliver hands ev to the subscriptions that may see it. A subscription whose buffer is
// full misses ev; the miss is counted and the subscription noticed.
func (h *Hub) Deliver(ev Event) {
	h.amu.RLock()
	defer h.amu.RUnlock()
	for s := range h.activity {
		if !s.wants(&ev) {
			continue
		}
		select {
		case s.events <- ev:
		default:
			if s.dropped.Add(1) == 1 {
				h.log.Warn("sync activity subscriber too slow: dropping its events", "buffer", cap(s.events))
			}
			s.notice()
		}
	}
}

// lostActivity tells every activity subscription that notifications were lost.
func (h *Hub) lostActivity() {
	h.amu.RLock()
	defer h.amu.RUnlock()
	for s := range h.activity {
		s.lost.Store(true)
		s.notice()
	}
}

// activityState is the part of Hub that serves activity subscriptions; it has its own
// lock so that watchers never contend with the sync connections' pokes.
type activityState struct {
	amu      sync.RWMutex
	activity map[*ActivitySubscription]struct{}
}
