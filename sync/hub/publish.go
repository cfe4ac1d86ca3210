package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/jiaoliu/jiaoliu"
)

// Defaults of the Publisher.
const (
	// DefaultPublishQueue is how many activities wait for the publisher's worker; more
	// are dropped (and counted) rather than slowing a sync session down.
	DefaultPublishQueue = 1024
	// DefaultMaxDetails bounds the REJECTION events, and the CONFLICT events, of one
	// push; its PUSH event counts them all.
	DefaultMaxDetails = 20
	// DefaultDeviceTTL is how long a device's user and scope tokens are reused for
	// pulls, disconnects and pushes that cannot change them. Connects, and pushes of a
	// teacher, an exchange or a school (scopeEntities), read them afresh.
	DefaultDeviceTTL = time.Minute
	// MaxPayloadBytes keeps a notification under PostgreSQL's 8000-byte limit.
	MaxPayloadBytes = 7800
)

// publishBatch is the most events sent in one statement.
const publishBatch = 64

// Publisher sends sync activity to the hubs of every replica (pg_notify on
// ChannelActivity). Its methods are called on the paths of sync sessions and messages,
// after the fact (a push after its commit): they only queue and return at once, never
// block and never fail. A worker (Run) reads what the events need from the store —
// the device's name, its user and the user's district and school tokens, the ids of
// the stored rejections and conflicts — once per batch of queued activities, and sends
// the events in one statement. When the queue is full, activity is dropped, counted and
// logged: watching is best effort, syncing is not.
//
// Set the exported fields before Run.
type Publisher struct {
	// MaxDetails bounds the REJECTION and the CONFLICT events of one push.
	MaxDetails int
	// DeviceTTL is how long device lookups are reused (see DefaultDeviceTTL).
	DeviceTTL time.Duration
	// Now returns the time; tests may replace it.
	Now func() time.Time

	store Store
	node  string
	log   *slog.Logger
	queue chan activity

	dropped  atomic.Int64
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	running  atomic.Bool

	devices map[string]deviceInfo // the worker's cache, by lower-case device id
}

// activity is a queued event and what the worker must look up for it.
type activity struct {
	ev      Event
	fresh   bool     // read the device afresh (connect, push)
	details []detail // REJECTION and CONFLICT events of a push
}

// detail is one rejected op, or one op that lost fields, of a push.
type detail struct {
	kind, opID, entity, recordID, code string
	fields                             []string
}

// deviceInfo is what events say about a device and who may see them.
type deviceInfo struct {
	name, userID, username string
	scopes                 []string
	at                     time.Time
}

// Store is what the publisher reads from the database and sends through it
// (postgres.Store implements it).
type Store interface {
	// WatchedDevices returns, by device id, each device and who may watch it.
	WatchedDevices(ctx context.Context, ids []string) (map[string]jiaoliu.WatchedDevice, error)
	// RejectionIDs returns the id of the latest stored rejection of each opId.
	RejectionIDs(ctx context.Context, opIDs []string) (map[string][]string, error)
	// ConflictIDs returns, by the losing opId, the ids of the conflicts recorded for
	// the ops (entities[i], records[i], lostOps[i]).
	ConflictIDs(ctx context.Context, entities, records, lostOps []string) (map[string][]string, error)
	// Notify sends the payloads on a notification channel, in order.
	Notify(ctx context.Context, channel string, payloads []string) error
}

// NewPublisher returns a publisher sending through store as replica node. Start its
// worker with Run.
func NewPublisher(store Store, node string, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{MaxDetails: DefaultMaxDetails, DeviceTTL: DefaultDeviceTTL, Now: time.Now,
		store: store, node: node, log: log, queue: make(chan activity, DefaultPublishQueue),
		stop: make(chan struct{}), done: make(chan struct{}), devices: map[string]deviceInfo{}}
}

// Dropped returns how many activities were dropped because the queue was full.
func (p *Publisher) Dropped() int64 { return p.dropped.Load() }

// enqueue queues a for the worker, or drops it when the queue is full.
func (p *Publisher) enqueue(a activity) {
	select {
	case <-p.stop:
		return // shutting down: nothing more is sent
	default:
	}
	a.ev.At = p.Now().UTC()
	select {
	case p.queue <- a:
	default:
		if n := p.dropped.Add(1); n == 1 || n%1000 == 0 {
			p.log.Warn("sync activity queue full: dropping activity", "kind", a.ev.Kind, "dropped", n)
		}
	}
}

// Connected records that a device's socket passed hello.
func (p *Publisher) Connected(deviceID string) {
	p.enqueue(activity{ev: Event{Kind: KindConnected, DeviceID: deviceID}, fresh: true})
}

// Disconnected records that a device's socket that had passed hello closed.
func (p *Publisher) Disconnected(deviceID string) {
	p.enqueue(activity{ev: Event{Kind: KindDisconnected, DeviceID: deviceID}})
}

// Revoked records that a device was revoked.
func (p *Publisher) Revoked(deviceID string) {
	p.enqueue(activity{ev: Event{Kind: KindRevoked, DeviceID: deviceID}, fresh: true})
}

// Pulled records that actor's device was answered a page of records.
func (p *Publisher) Pulled(actor *jiaoliu.Actor, records int, more bool) {
	if actor == nil || actor.DeviceID == "" {
		return
	}
	p.enqueue(activity{ev: Event{Kind: KindPull, DeviceID: actor.DeviceID, UserID: actor.UserID, Records: records, More: more}})
}

// Pushed records that a push of actor's device was committed: ops are the batch's ops
// and results their results, in order (one per op).
func (p *Publisher) Pushed(actor *jiaoliu.Actor, batchID string, ops []jiaoliu.Op, results []jiaoliu.OpResult) {
	if actor == nil || actor.DeviceID == "" {
		return
	}
	ev := Event{Kind: KindPush, DeviceID: actor.DeviceID, UserID: actor.UserID, BatchID: batchID, Ops: len(ops)}
	var details []detail
	rejections, conflicts := 0, 0
	for i, r := range results {
		var entity string
		if i < len(ops) {
			entity = ops[i].Entity
		}
		if r.Duplicate {
			ev.Duplicates++
			continue
		}
		switch r.Status {
		case jiaoliu.StatusApplied:
			ev.Applied++
		case jiaoliu.StatusMerged:
			ev.Merged++
		case jiaoliu.StatusRejected:
			ev.Rejected++
			if rejections < p.MaxDetails {
				rejections++
				fields := make([]string, 0, len(r.Fields))
				for f := range r.Fields {
					fields = append(fields, f)
				}
				slices.Sort(fields)
				details = append(details, detail{kind: KindRejection, opID: r.OpID, entity: entity, recordID: r.ID, code: r.Code, fields: fields})
			}
		}
		if len(r.Lost) > 0 && r.Status != jiaoliu.StatusRejected {
			ev.Conflicts++
			if conflicts < p.MaxDetails {
				conflicts++
				details = append(details, detail{kind: KindConflict, opID: r.OpID, entity: entity, recordID: r.ID, fields: slices.Clone(r.Lost)})
			}
		}
	}
	fresh := slices.ContainsFunc(ops, func(op jiaoliu.Op) bool { return scopeEntities[op.Entity] })
	p.enqueue(activity{ev: ev, fresh: fresh, details: details})
}

// scopeEntities are the entities whose records decide who may watch a device (the
// district and school tokens of its user: a teacher's school and the schools of their
// exchanges, and those schools' districts). A push of other records (lessons,
// attendance …: nearly all of them) reuses the device's lookup for DeviceTTL, which
// was a query (0.2 ms of PostgreSQL) per push.
var scopeEntities = map[string]bool{"teacher": true, "exchange": true, "school": true}

// Run sends the queued activity until ctx is done or Close is called; after Close it
// sends what is still queued first. Run it once.
func (p *Publisher) Run(ctx context.Context) {
	if !p.running.CompareAndSwap(false, true) {
		panic("hub: Publisher.Run called twice")
	}
	defer close(p.done)
	batch := make([]activity, 0, publishBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case <-p.stop:
			// Send what is queued (the disconnects of a shutdown), within a bound.
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			for {
				batch = batch[:0]
				for len(batch) < publishBatch {
					select {
					case a := <-p.queue:
						batch = append(batch, a)
						continue
					default:
					}
					break
				}
				if len(batch) == 0 || flushCtx.Err() != nil {
					return
				}
				p.flush(flushCtx, batch)
			}
		case a := <-p.queue:
			batch = append(batch, a)
		}
	more:
		for len(batch) < publishBatch {
			select {
			case a := <-p.queue:
				batch = append(batch, a)
			default:
				break more
			}
		}
		p.flush(ctx, batch)
	}
}

// Close stops taking activity, lets Run send what is queued, and waits for it (or for
// ctx). It is safe to call more than once, and without Run.
func (p *Publisher) Close(ctx context.Context) error {
	p.stopOnce.Do(func() { close(p.stop) })
	if !p.running.Load() {
		return nil
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sync activity publisher: %w", ctx.Err())
	}
}

// flush completes the events of batch and sends them. Errors are logged: activity
// that cannot be sent is lost, and nothing else is affected.
func (p *Publisher) flush(ctx context.Context, batch []activity) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.lookupDevices(ctx, batch); err != nil {
		// Without the user's scope only ADMIN watchers see the events: still worth sending.
		p.log.Warn("sync activity: look up devices", "err", err)
	}
	ids, err := p.lookupDetails(ctx, batch)
	if err != nil {
		p.log.Warn("sync activity: look up rejections and conflicts", "err", err)
	}
	payloads := make([]string, 0, len(batch))
	for _, a := range batch {
		ev := a.ev
		p.complete(&ev)
		payloads = append(payloads, p.encode(&ev))
		for _, d := range a.details {
			dev := ev // the device, user, scopes and batch of the push
			dev.ID, dev.Kind = "", d.kind
			dev.Ops, dev.Applied, dev.Merged, dev.Rejected, dev.Duplicates, dev.Conflicts = 0, 0, 0, 0, 0, 0
			dev.Entity, dev.RecordID, dev.Code, dev.Fields = d.entity, d.recordID, d.code, d.fields
			key := d.kind + "/" + d.opID
			if d.kind == KindRejection && len(ids[key]) > 0 {
				dev.RejectionID = ids[key][0]
			} else if d.kind == KindConflict {
				dev.ConflictIDs = ids[key]
			}
			p.complete(&dev)
			payloads = append(payloads, p.encode(&dev))
		}
	}
	if err := p.store.Notify(ctx, ChannelActivity, payloads); err != nil {
		p.log.Warn("sync activity: notify", "err", err, "events", len(payloads))
	}
}

// complete fills in the event's id, node and what is known of its device.
func (p *Publisher) complete(ev *Event) {
	ev.ID = uuid.NewString()
	ev.Node = p.node
	if info, ok := p.devices[normalID(ev.DeviceID)]; ok {
		ev.DeviceName, ev.UserID, ev.Username, ev.Scopes = info.name, info.userID, info.username, info.scopes
	}
	if ev.Scopes == nil {
		ev.Scopes = []string{}
	}
}

// encode returns the event's JSON, shortened to fit a notification: names and field
// lists go first; scopes are cut last (which only narrows who sees the event).
func (p *Publisher) encode(ev *Event) string {
	b, _ := json.Marshal(ev)
	if len(b) <= MaxPayloadBytes {
		return string(b)
	}
	short := *ev
	short.DeviceName, short.Username, short.Fields, short.ConflictIDs = "", "", nil, nil
	for {
		b, _ = json.Marshal(&short)
		if len(b) <= MaxPayloadBytes || len(short.Scopes) == 0 {
			break
		}
		short.Scopes = short.Scopes[:len(short.Scopes)/2]
	}
	p.log.Warn("sync activity: event shortened to fit a notification", "kind", ev.Kind, "device", ev.DeviceID,
		"scopes", len(ev.Scopes), "kept", len(short.Scopes))
	return string(b)
}

// lookupDevices reads the devices of batch that are not cached, or must be read afresh,
// in one query: the device's name, its user, and the user's district and school
// tokens as the scope functions of the store compute them (a teacher: their school and
// the schools of their exchanges; a school admin: the school and its district).
func (p *Publisher) lookupDevices(ctx context.Context, batch []activity) error {
	now := p.Now()
	var ids []string
	for _, a := range batch {
		id := normalID(a.ev.DeviceID)
		if uuid.Validate(id) != nil || slices.Contains(ids, id) {
			continue
		}
		if info, ok := p.devices[id]; ok && !a.fresh && now.Sub(info.at) < p.DeviceTTL {
			continue
		}
		ids = append(ids, id)
	}
	if len(p.devices) > 10000 {
		for id, info := range p.devices {
			if now.Sub(info.at) >= p.DeviceTTL {
				delete(p.devices, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	found, err := p.store.WatchedDevices(ctx, ids)
	if err != nil {
		return err
	}
	for id, d := range found {
		p.devices[id] = deviceInfo{name: d.Name, userID: d.UserID, username: d.Username, scopes: d.Scopes, at: now}
	}
	return nil
}

// lookupDetails returns the ids of the stored rejections and recorded conflicts of the
// pushes in batch, by kind + "/" + opId.
func (p *Publisher) lookupDetails(ctx context.Context, batch []activity) (map[string][]string, error) {
	var rejected, entities, records, lost []string
	for _, a := range batch {
		for _, d := range a.details {
			switch {
			case d.kind == KindRejection && d.opID != "":
				rejected = append(rejected, d.opID)
			case d.kind == KindConflict && uuid.Validate(d.recordID) == nil:
				entities, records, lost = append(entities, d.entity), append(records, d.recordID), append(lost, d.opID)
			}
		}
	}
	out := map[string][]string{}
	add := func(kind string, ids map[string][]string) {
		for opID, v := range ids {
			out[kind+"/"+opID] = v
		}
	}
	if len(rejected) > 0 {
		ids, err := p.store.RejectionIDs(ctx, rejected)
		if err != nil {
			return out, err
		}
		add(KindRejection, ids)
	}
	if len(lost) > 0 {
		ids, err := p.store.ConflictIDs(ctx, entities, records, lost)
		if err != nil {
			return out, err
		}
		add(KindConflict, ids)
	}
	return out, nil
}

// normalID returns a device id as the database spells it (lower case).
func normalID(id string) string {
	if u, err := uuid.Parse(id); err == nil {
		return u.String()
	}
	return id
}
