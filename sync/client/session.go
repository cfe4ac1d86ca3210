package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// session is one connection to the server and the state of the conversation on it.
// Messages are exchanged in lock step, one request, then its answer, but for pushes
// over a WebSocket, of which a few may wait for their acks (pushAll). The server may
// interleave pokes and resets, which are noted and acted on between requests.
type session struct {
	c        *Client
	t        transport
	ws       bool
	log      *slog.Logger
	maxBatch int
	// followsMerges: the server applies the ops after a merge in the same push to the
	// twin (welcome.followsMerges), so a batch may hold the ops that depend on a
	// natural-key record it creates.
	followsMerges bool
	maxBytes      int

	poked bool // a poke arrived: pull
	reset bool // a reset arrived: pull from the start
}

// errResync means the conversation got out of step and the connection was dropped.
var errResync = errors.New("lost track of the conversation with the server; reconnecting")

// connect opens a session: a WebSocket with hello and welcome, or the HTTP fallback.
func (c *Client) connect(ctx context.Context) (*session, error) {
	server, device, token, err := c.identity()
	if err != nil {
		return nil, err
	}
	s := &session{c: c, log: c.log.With("device", device), maxBatch: defaultMaxBatch, maxBytes: defaultMaxMessageBytes}
	if c.cfg.HTTP {
		hc := c.cfg.HTTPClient
		if hc == nil {
			hc = &http.Client{Timeout: c.cfg.RequestTimeout}
		}
		s.t = &httpTransport{client: hc, server: server, token: token, done: make(chan struct{}), onDate: c.dateOffset, now: c.now}
		return s, nil
	}
	t, err := dialWS(ctx, server, c.cfg, s.log)
	if err != nil {
		return nil, err
	}
	s.t, s.ws = t, true
	full, err := getMeta(ctx, c.db, metaFullPull)
	if err != nil {
		t.drop()
		return nil, err
	}
	cursor := ""
	if full == "" {
		if cursor, err = getMeta(ctx, c.db, metaCursor); err != nil {
			t.drop()
			return nil, err
		}
	}
	sent := c.now()
	if err := t.send(ctx, &wire.Hello{Protocol: wire.ProtocolVersion, DeviceID: device, Token: token,
		SchemaVersion: c.cfg.SchemaVersion, Cursor: cursor}); err != nil {
		t.drop()
		return nil, err
	}
	m, err := t.recv(ctx)
	if err != nil {
		t.drop()
		return nil, fmt.Errorf("waiting for welcome: %w", err)
	}
	switch m := m.(type) {
	case *wire.Welcome:
		c.correctClock(ctx, m.ServerTime, sent, c.now())
		if m.MaxBatch > 0 {
			s.maxBatch = m.MaxBatch
		}
		if m.MaxMessageBytes > 0 {
			s.maxBytes = m.MaxMessageBytes
		}
		s.followsMerges = m.FollowsMerges
		if c.cfg.SchemaVersion > m.SchemaVersion {
			s.log.Warn("sync: the server's schema is older than this app's", "server", m.SchemaVersion, "app", c.cfg.SchemaVersion)
		}
		s.log.Debug("sync: connected", "maxBatch", s.maxBatch, "maxMessageBytes", s.maxBytes)
		return s, nil
	case *wire.Error:
		t.close()
		return nil, fmt.Errorf("hello: %w", &ServerError{Code: m.Code, Message: m.Message})
	default:
		t.drop()
		return nil, fmt.Errorf("hello: the server answered %s instead of welcome", m.MessageType())
	}
}

// correctClock sets the clock's offset from the server's time, taking the middle of
// the round trip as the moment the server read its clock.
func (c *Client) correctClock(ctx context.Context, serverMs int64, sent, received time.Time) {
	mid := sent.UnixMilli() + (received.UnixMilli()-sent.UnixMilli())/2
	c.setOffset(ctx, serverMs-mid)
}

func (c *Client) setOffset(ctx context.Context, offset int64) {
	c.clock.SetOffset(offset)
	if err := setMetaInt(ctx, c.db, metaClockOffset, offset); err != nil {
		c.log.Warn("sync: store the clock offset", "err", err)
	}
}

// dateOffset corrects the clock from an HTTP Date header, which has whole seconds:
// only an error of more than two seconds is corrected.
func (c *Client) dateOffset(server, sent, received time.Time) {
	mid := sent.UnixMilli() + (received.UnixMilli()-sent.UnixMilli())/2
	offset := server.UnixMilli() + 500 - mid
	if cur := c.clock.WallNow() - c.nowMs(); offset-cur > 2000 || cur-offset > 2000 {
		c.setOffset(context.Background(), offset)
	}
}

func (s *session) close() { s.t.close() }

// call sends req and returns its answer, noting pokes and resets on the way.
func (s *session) call(ctx context.Context, req wire.Message) (wire.Message, error) {
	if err := s.send(ctx, req); err != nil {
		return nil, err
	}
	return s.await(ctx, req, false)
}

// send writes req to the server.
func (s *session) send(ctx context.Context, req wire.Message) error {
	m := req
	if h := s.c.hooks.beforeSend; h != nil {
		m = h(req)
	}
	if err := s.t.send(ctx, m); err != nil {
		return err
	}
	if h := s.c.hooks.afterSend; h != nil {
		if err := h(req); err != nil {
			s.t.drop()
			return err
		}
	}
	return nil
}

// await returns the answer to req, sent earlier, noting pokes and resets on the way.
// more says that requests sent after req wait for their answers too.
func (s *session) await(ctx context.Context, req wire.Message, more bool) (wire.Message, error) {
	for {
		m, err := s.t.recv(ctx)
		if err != nil {
			return nil, err
		}
		switch m := m.(type) {
		case *wire.Poke:
			s.poked = true
			continue
		case *wire.Reset:
			s.reset = true
			if _, ok := req.(*wire.Pull); !ok {
				continue
			}
			// The answer to the pull, or a reset the server sent on its own while the
			// answer is still on its way: make sure no answer is left behind.
			if s.ws {
				if _, err := s.barrier(ctx, req); err != nil {
					return nil, err
				}
			}
			return m, nil
		case *wire.Error:
			if fatal(m) {
				s.t.close()
				return nil, &ServerError{Code: m.Code, Message: m.Message}
			}
			if p, ok := req.(*wire.Push); ok && m.BatchID != "" && m.BatchID != p.BatchID {
				s.log.Warn("sync: an error for another batch", "batch", m.BatchID, "code", m.Code)
				continue
			}
			if s.ws && more {
				// The flush below would swallow the answers to the later requests: start
				// over on a new connection (the pushes are idempotent).
				s.log.Warn("sync: an error while pushes were in flight; reconnecting", "code", m.Code, "message", m.Message)
				s.t.drop()
				return nil, errResync
			}
			if s.ws {
				// Errors carry no request id: an error the server sent on its own (a failed
				// re-authentication) looks like an answer. Flush the conversation; if the
				// real answer turns up, use it.
				real, err := s.barrier(ctx, req)
				if err != nil {
					return nil, err
				}
				if real != nil {
					s.log.Warn("sync: ignored an unsolicited error", "code", m.Code, "message", m.Message)
					return real, nil
				}
			}
			return m, nil
		}
		if answers(req, m) {
			return m, nil
		}
		s.log.Warn("sync: ignored an unexpected message", "type", m.MessageType(), "waiting_for", req.MessageType())
	}
}

// fatal reports whether an error ends the session for good.
func fatal(e *wire.Error) bool {
	switch e.Code {
	case wire.CodeUnauthorized, wire.CodeProtocolVersion, wire.CodeSchemaTooOld, wire.CodeTooLarge:
		return true
	}
	return false
}

// answers reports whether m is the answer to req.
func answers(req, m wire.Message) bool {
	switch r := req.(type) {
	case *wire.Push:
		a, ok := m.(*wire.Ack)
		return ok && a.BatchID == r.BatchID
	case *wire.Pull:
		_, ok := m.(*wire.Changes)
		return ok
	case *wire.Verify:
		_, ok := m.(*wire.Checksum)
		return ok
	case *wire.Ping:
		_, ok := m.(*wire.Pong)
		return ok
	}
	return false
}

// barrier sends a ping and reads up to its pong, so that every answer to earlier
// requests has arrived: the server handles a socket's messages in order. It returns
// the answer to req if one arrived meanwhile.
func (s *session) barrier(ctx context.Context, req wire.Message) (wire.Message, error) {
	if err := s.t.send(ctx, &wire.Ping{}); err != nil {
		return nil, err
	}
	var found wire.Message
	for {
		m, err := s.t.recv(ctx)
		if err != nil {
			return nil, err
		}
		switch m := m.(type) {
		case *wire.Pong:
			return found, nil
		case *wire.Poke:
			s.poked = true
		case *wire.Reset:
			s.reset = true
		case *wire.Error:
			if fatal(m) {
				s.t.close()
				return nil, &ServerError{Code: m.Code, Message: m.Message}
			}
			// Perhaps the ping's own answer (rate_limited): nothing is certain any more.
			s.t.drop()
			return nil, errResync
		default:
			if answers(req, m) {
				found = m
			}
		}
	}
}

// round pushes the outbox, pulls, and verifies the replica if asked.
func (s *session) round(ctx context.Context, verify bool) error {
	if err := s.pushAll(ctx); err != nil {
		return err
	}
	if err := s.pullAll(ctx); err != nil {
		return err
	}
	if verify {
		if err := s.verify(ctx); err != nil {
			return err
		}
	}
	return nil
}

// pushAll sends the outbox in batches until it is empty. Over a WebSocket it keeps up
// to Config.PushWindow batches unacknowledged, so that the server applies one while
// the next is on its way (the server handles them in order, one at a time). A batch
// never holds an op on a record that a batch still in flight writes, nor one that
// refers to such a record (see nextBatchAfter): such an op waits for that batch's ack.
// The server applies a batch even when the one before it failed (rate_limited, an
// internal error), so a later batch must not need an earlier one applied first: an
// edit of a record created in flight would otherwise create it from a few fields (and
// be rejected), a reference to it be missing, and an ack may also rename it (merged).
func (s *session) pushAll(ctx context.Context) error {
	window := 1
	if s.ws {
		window = s.c.cfg.PushWindow
	}
	var flying []flight
	var after int64 // the outbox position of the last op sent
	for {
		for len(flying) < window {
			inFlight := map[string]bool{} // the records the batches in flight write
			for _, f := range flying {
				maps.Copy(inFlight, f.records)
			}
			ops, mine, err := s.c.nextBatchAfter(ctx, s.maxBatch, s.maxBytes, after, inFlight, s.followsMerges)
			if err != nil {
				return err
			}
			if len(ops) == 0 {
				break
			}
			push := &wire.Push{Ops: make([]jiaoliu.Op, len(ops))}
			for i, op := range ops {
				push.Ops[i] = jiaoliu.Op{OpID: op.OpID, Kind: op.Kind, Entity: op.Entity, ID: op.ID, HLC: op.HLC, Fields: op.Fields}
			}
			if !s.ws {
				push.SchemaVersion = s.c.cfg.SchemaVersion
			}
			if push.BatchID, err = s.c.markSent(ctx, ops); err != nil {
				return err
			}
			s.log.Debug("sync: push", "batch", push.BatchID, "ops", len(ops), "in_flight", len(flying))
			if err := s.send(ctx, push); err != nil {
				return fmt.Errorf("push %s: %w", push.BatchID, err)
			}
			flying = append(flying, flight{push: push, ops: ops, records: mine})
			after = ops[len(ops)-1].Seq
		}
		if len(flying) == 0 {
			return nil
		}
		f := flying[0]
		flying = flying[1:]
		if len(flying) == 0 {
			// The next batch starts again at the outbox's head: ops of an ack that did
			// not answer them all are sent again.
			after = 0
		}
		reply, err := s.await(ctx, f.push, len(flying) > 0)
		if err != nil {
			return fmt.Errorf("push %s: %w", f.push.BatchID, err)
		}
		switch r := reply.(type) {
		case *wire.Ack:
			if h := s.c.hooks.beforeAckApplied; h != nil {
				if err := h(r); err != nil {
					s.t.drop()
					return err
				}
			}
			n, err := s.c.applyAck(ctx, f.ops, r)
			if err != nil {
				return fmt.Errorf("push %s: %w", f.push.BatchID, err)
			}
			if n == 0 {
				return fmt.Errorf("push %s: the ack answers none of the batch's %d ops", f.push.BatchID, len(f.ops))
			}
		case *wire.Error:
			if r.Code == wire.CodeBatchTooLarge && len(f.ops) > 1 {
				s.maxBatch = max(1, len(f.ops)/2)
				s.log.Info("sync: batch too large; splitting", "maxBatch", s.maxBatch)
				if len(flying) > 0 {
					// The batches after it were sent as large: start over smaller.
					s.t.drop()
					return fmt.Errorf("push %s: %w", f.push.BatchID, errResync)
				}
				continue
			}
			return fmt.Errorf("push %s: %w", f.push.BatchID, &ServerError{Code: r.Code, Message: r.Message})
		default:
			return fmt.Errorf("push %s: the server answered %s", f.push.BatchID, reply.MessageType())
		}
	}
}

// flight is a push sent and not yet answered.
type flight struct {
	push    *wire.Push
	ops     []Op
	records map[string]bool // the records (entity/id) its ops write
}

// nextBatch returns the next ops to push, in outbox order: at most maxBatch, within
// the message size, and never an op that depends on a record of a natural-key entity
// created earlier in the same batch. A server that does not follow merges
// (welcome.followsMerges; over HTTP there is no welcome) may merge such a record into
// a twin (answered with its canonical id); the ops after it are then rewritten to the
// canonical id before they are sent, rather than being rejected for an unknown id.
func (c *Client) nextBatch(ctx context.Context, maxBatch, maxBytes int) ([]Op, error) {
	ops, _, err := c.nextBatchAfter(ctx, maxBatch, maxBytes, 0, map[string]bool{}, false)
	return ops, err
}

// nextBatchAfter is nextBatch from the outbox position after on, for a window of
// batches in flight whose ops write the records (entity/id) in inFlight: the batch
// stops before an op that writes or refers to one of them. With followsMerges the
// server follows a merge within the batch, and the batch does not stop at the ops
// that depend on the records it creates. It also returns the records the batch's own
// ops write.
func (c *Client) nextBatchAfter(ctx context.Context, maxBatch, maxBytes int, after int64, inFlight map[string]bool, followsMerges bool) ([]Op, map[string]bool, error) {
	ops, err := pendingOpsLimit(ctx, c.db, `WHERE seq > ?`, maxBatch, after)
	if err != nil {
		return nil, nil, err
	}
	budget := maxBytes - 4096
	mine := map[string]bool{}
	fresh := map[string]bool{} // the batch's unconfirmed natural-key records
	var batch []Op
	for _, op := range ops {
		if dependsOn(op, inFlight) || dependsOn(op, fresh) {
			break
		}
		size := 200 + len(op.OpID) + len(op.ID) + len(op.HLC)
		if op.Fields != nil {
			b, _ := json.Marshal(op.Fields)
			size += len(b)
		}
		if len(batch) > 0 && size > budget {
			break
		}
		budget -= size
		if !followsMerges && op.Kind == jiaoliu.OpUpsert && hasNaturalKey(op.Entity) {
			rec, err := loadRecord(ctx, c.db, op.Entity, op.ID)
			if err != nil {
				return nil, nil, err
			}
			if rec == nil || !rec.hasBase {
				fresh[op.Entity+"/"+op.ID] = true
			}
		}
		mine[op.Entity+"/"+op.ID] = true
		batch = append(batch, op)
	}
	return batch, mine, nil
}

// dependsOn reports whether op writes or refers to one of the records in set.
func dependsOn(op Op, set map[string]bool) bool {
	if len(set) == 0 {
		return false
	}
	if set[op.Entity+"/"+op.ID] {
		return true
	}
	def := jiaoliu.Entities[op.Entity]
	if def == nil {
		return false
	}
	for _, f := range def.Refs() {
		if v, ok := op.Fields[f.Name].(string); ok && set[f.Ref+"/"+v] {
			return true
		}
	}
	return false
}

// markSent numbers a batch and notes that its ops were sent.
func (c *Client) markSent(ctx context.Context, ops []Op) (string, error) {
	var id string
	err := c.inTx(ctx, func(tx *localTx) error {
		n, err := getMetaInt(ctx, tx, metaBatchSeq)
		if err != nil {
			return err
		}
		n++
		if err := setMetaInt(ctx, tx, metaBatchSeq, n); err != nil {
			return err
		}
		id = "b-" + strconv.FormatInt(n, 10)
		for _, op := range ops {
			if _, err := tx.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, sent_at = ? WHERE op_id = ?`, c.nowMs(), op.OpID); err != nil {
				return fmt.Errorf("note op %s as sent: %w", op.OpID, err)
			}
		}
		return nil
	})
	return id, err
}

// applyAck stores the results of an ack and removes the answered ops from the outbox,
// in one local transaction. It returns how many ops of the batch were answered.
func (c *Client) applyAck(ctx context.Context, sent []Op, ack *wire.Ack) (int, error) {
	inBatch := make(map[string]bool, len(sent))
	for _, op := range sent {
		inBatch[op.OpID] = true
	}
	answered := 0
	err := c.inTx(ctx, func(tx *localTx) error {
		touched := map[[2]string]bool{}
		for _, r := range ack.Results {
			if !inBatch[r.OpID] {
				c.log.Warn("sync: the ack names an op that was not in the batch", "op", r.OpID)
				continue
			}
			// The op as it is now (an earlier result of this ack may have rewritten it).
			ops, err := pendingOps(ctx, tx, `WHERE op_id = ?`, r.OpID)
			if err != nil {
				return err
			}
			if len(ops) == 0 {
				continue // answered before
			}
			op := ops[0]
			answered++
			if err := storeResult(ctx, tx, op, r, c.nowMs()); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE op_id = ?`, op.OpID); err != nil {
				return fmt.Errorf("remove op %s from the outbox: %w", op.OpID, err)
			}
			touched[[2]string{op.Entity, op.ID}] = true
			if r.HLC != "" {
				// A re-stamped op carries the server's HLC (an extension): move past it.
				c.clock.Update(r.HLC)
			}
			switch r.Status {
			case jiaoliu.StatusApplied:
				if err := optimisticBase(ctx, tx, op.Entity, op.ID, op, r); err != nil {
					return err
				}
			case jiaoliu.StatusMerged:
				target := r.CanonicalID
				if target == "" {
					target = r.ID
				}
				if target != "" && target != op.ID {
					moved, err := c.rekey(ctx, tx, op.Entity, op.ID, target)
					if err != nil {
						return err
					}
					for k := range moved {
						touched[k] = true
					}
					touched[[2]string{op.Entity, target}] = true
				} else {
					target = op.ID
				}
				if err := optimisticBase(ctx, tx, op.Entity, target, op, r); err != nil {
					return err
				}
			case jiaoliu.StatusRejected:
				c.log.Info("sync: op rejected", "op", op.OpID, "entity", op.Entity, "id", op.ID, "code", r.Code, "message", r.Message)
			default:
				c.log.Error("sync: unknown op status; the op is kept as answered", "op", op.OpID, "status", r.Status)
			}
		}
		for k := range touched {
			if err := c.recompute(ctx, tx, k[0], k[1]); err != nil {
				return err
			}
		}
		return nil
	})
	return answered, err
}

// storeResult keeps an op with its answer.
func storeResult(ctx context.Context, tx *localTx, op Op, r jiaoliu.OpResult, now int64) error {
	var fields any
	if op.Fields != nil {
		fj, err := encodeFields(op.Fields)
		if err != nil {
			return err
		}
		fields = fj
	}
	var created int64
	if err := tx.QueryRowContext(ctx, `SELECT created_at FROM outbox WHERE op_id = ?`, op.OpID).Scan(&created); err != nil {
		return fmt.Errorf("read op %s: %w", op.OpID, err)
	}
	fe, _ := json.Marshal(r.Fields)
	if r.Fields == nil {
		fe = []byte("{}")
	}
	lost, _ := json.Marshal(r.Lost)
	if r.Lost == nil {
		lost = []byte("[]")
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO results (op_id, seq, kind, entity, record_id, hlc, fields, created_at, status, canonical_id,
			version, code, message, field_errors, lost, duplicate, restamped, acked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (op_id) DO NOTHING`,
		op.OpID, op.Seq, op.Kind, op.Entity, op.ID, op.HLC, fields, created, r.Status, r.CanonicalID,
		r.Version, r.Code, r.Message, string(fe), string(lost), boolInt(r.Duplicate), boolInt(r.Restamped), now)
	if err != nil {
		return fmt.Errorf("store the result of op %s: %w", op.OpID, err)
	}
	return nil
}

// optimisticBase brings the server state of a record up to an acknowledged op, so
// that the user keeps seeing the edit before the next pull brings the record itself:
// the op's fields except those it lost. An answer older than the state the device
// already holds (a duplicate after a pull) changes nothing.
func optimisticBase(ctx context.Context, tx *localTx, entity, id string, op Op, r jiaoliu.OpResult) error {
	if r.Version == "" {
		return nil
	}
	cur, err := loadRecord(ctx, tx, entity, id)
	if err != nil {
		return err
	}
	lost := map[string]bool{}
	for _, f := range r.Lost {
		lost[f] = true
	}
	fields := map[string]any{}
	deleted := op.Kind == jiaoliu.OpDelete
	var seen int64
	if cur != nil && cur.hasBase {
		if !newerVersion(r.Version, cur.baseVersion) {
			return nil
		}
		fields = cur.baseFields
		deleted = deleted || cur.baseDeleted
		seen = cur.seen
	}
	for k, v := range op.Fields {
		if !lost[k] {
			fields[k] = v
		}
	}
	return saveBase(ctx, tx, entity, id, r.Version, deleted, fields, seen)
}

// rekey moves a record that the server merged into its twin to the canonical id, and
// rewrites the pending ops that refer to the old id: their target and their reference
// fields. It returns the records whose pending ops changed.
func (c *Client) rekey(ctx context.Context, tx *localTx, entity, from, to string) (map[[2]string]bool, error) {
	c.log.Info("sync: record merged into its twin", "entity", entity, "id", from, "canonical", to)
	touched := map[[2]string]bool{}
	ops, err := pendingOps(ctx, tx, ``)
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		if !refersTo(op, entity, from) {
			continue
		}
		touched[[2]string{op.Entity, op.ID}] = true
		newID := op.ID
		if op.Entity == entity && op.ID == from {
			newID = to
		}
		if def := jiaoliu.Entities[op.Entity]; def != nil {
			for _, name := range refFields(def, entity) {
				if s, ok := op.Fields[name].(string); ok && s == from {
					op.Fields[name] = to
				}
			}
		}
		var fields any
		if op.Fields != nil {
			fj, err := encodeFields(op.Fields)
			if err != nil {
				return nil, err
			}
			fields = fj
		}
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET record_id = ?, fields = ? WHERE op_id = ?`, newID, fields, op.OpID); err != nil {
			return nil, fmt.Errorf("rewrite op %s: %w", op.OpID, err)
		}
		touched[[2]string{op.Entity, newID}] = true
	}
	old, err := loadRecord(ctx, tx, entity, from)
	if err != nil {
		return nil, err
	}
	if old != nil {
		twin, err := loadRecord(ctx, tx, entity, to)
		if err != nil {
			return nil, err
		}
		if twin == nil && !old.hasBase {
			_, err = tx.ExecContext(ctx, `UPDATE records SET id = ? WHERE entity = ? AND id = ?`, to, entity, from)
		} else {
			_, err = tx.ExecContext(ctx, `DELETE FROM records WHERE entity = ? AND id = ?`, entity, from)
		}
		if err != nil {
			return nil, fmt.Errorf("move %s %s to %s: %w", entity, from, to, err)
		}
	}
	touched[[2]string{entity, from}] = true
	return touched, nil
}

// pullAll pulls until the server has nothing more, from the start when a reset or a
// mismatch asked for it.
func (s *session) pullAll(ctx context.Context) error {
	c := s.c
	full, err := getMeta(ctx, c.db, metaFullPull)
	if err != nil {
		return err
	}
	cursor, err := getMeta(ctx, c.db, metaCursor)
	if err != nil {
		return err
	}
	if s.reset || full == "1" || cursor == "" {
		if err := c.startFullPull(ctx, full == "1" && !s.reset); err != nil {
			return err
		}
	}
	// This pull covers every change announced so far; a poke during it means more.
	s.reset, s.poked = false, false
	resets, pages := 0, 0
	for {
		cursor, err := getMeta(ctx, c.db, metaCursor)
		if err != nil {
			return err
		}
		limit := c.cfg.PullLimit
		if limit <= 0 {
			limit = s.maxBatch
		}
		reply, err := s.call(ctx, &wire.Pull{Cursor: cursor, Limit: limit})
		if err != nil {
			return fmt.Errorf("pull: %w", err)
		}
		switch r := reply.(type) {
		case *wire.Reset:
			resets++
			if resets > 3 {
				return fmt.Errorf("pull: the server keeps answering reset (%s)", r.Reason)
			}
			s.log.Info("sync: reset; pulling from the start", "reason", r.Reason)
			s.reset = false
			if err := c.startFullPull(ctx, false); err != nil {
				return err
			}
		case *wire.Changes:
			pages++
			if r.More && len(r.Records) == 0 && r.Cursor == cursor {
				return fmt.Errorf("pull: the server answers more=true without progress")
			}
			if err := c.applyChanges(ctx, r); err != nil {
				return fmt.Errorf("pull: %w", err)
			}
			if !r.More {
				s.log.Debug("sync: pulled", "pages", pages)
				return nil
			}
		case *wire.Error:
			return fmt.Errorf("pull: %w", &ServerError{Code: r.Code, Message: r.Message})
		default:
			return fmt.Errorf("pull: the server answered %s", reply.MessageType())
		}
	}
}

// startFullPull starts a pull from the start: a new generation, an empty cursor. The
// outbox is kept. resume continues an unfinished full pull of the current generation
// instead.
func (c *Client) startFullPull(ctx context.Context, resume bool) error {
	return c.inTx(ctx, func(tx *localTx) error {
		if resume {
			// A pull from the start was interrupted: go on from its cursor.
			return nil
		}
		gen, err := getMetaInt(ctx, tx, metaPullGen)
		if err != nil {
			return err
		}
		if err := setMetaInt(ctx, tx, metaPullGen, gen+1); err != nil {
			return err
		}
		if err := setMeta(ctx, tx, metaCursor, ""); err != nil {
			return err
		}
		return setMeta(ctx, tx, metaFullPull, "1")
	})
}

// applyChanges stores a page of changes and its cursor in one local transaction.
// After the last page of a pull from the start, records the server no longer
// delivered (deleted for good, or out of the user's scope now) leave the replica,
// except for what the device has pending.
func (c *Client) applyChanges(ctx context.Context, ch *wire.Changes) error {
	return c.inTx(ctx, func(tx *localTx) error {
		gen, err := getMetaInt(ctx, tx, metaPullGen)
		if err != nil {
			return err
		}
		for _, r := range ch.Records {
			if err := saveBase(ctx, tx, r.Entity, r.ID, r.Version, r.Deleted, r.Fields, gen); err != nil {
				return err
			}
			if err := c.recompute(ctx, tx, r.Entity, r.ID); err != nil {
				return err
			}
		}
		if err := setMeta(ctx, tx, metaCursor, ch.Cursor); err != nil {
			return err
		}
		if ch.More {
			return nil
		}
		full, err := getMeta(ctx, tx, metaFullPull)
		if err != nil || full != "1" {
			return err
		}
		if err := c.sweep(ctx, tx, gen); err != nil {
			return err
		}
		return setMeta(ctx, tx, metaFullPull, "")
	})
}

// sweep forgets the server state of records a pull from the start (generation gen)
// did not deliver.
func (c *Client) sweep(ctx context.Context, tx *localTx, gen int64) error {
	rows, err := tx.QueryContext(ctx, `SELECT entity, id FROM records WHERE has_base = 1 AND seen < ?`, gen)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	var gone [][2]string
	for rows.Next() {
		var k [2]string
		if err := rows.Scan(&k[0], &k[1]); err != nil {
			rows.Close()
			return fmt.Errorf("sweep: %w", err)
		}
		gone = append(gone, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	for _, k := range gone {
		if _, err := tx.ExecContext(ctx, `UPDATE records SET has_base = 0, base_version = '', base_deleted = 0, base_fields = '{}' WHERE entity = ? AND id = ?`, k[0], k[1]); err != nil {
			return fmt.Errorf("sweep %s %s: %w", k[0], k[1], err)
		}
		if err := c.recompute(ctx, tx, k[0], k[1]); err != nil {
			return err
		}
	}
	if len(gone) > 0 {
		c.log.Info("sync: records the server no longer delivers were removed", "count", len(gone))
	}
	return nil
}

// replicaChecksum computes the verify figures over the server state in the replica.
func replicaChecksum(ctx context.Context, q querier) (int, string, error) {
	rows, err := q.QueryContext(ctx, `SELECT entity, id, base_version FROM records WHERE has_base = 1 AND base_deleted = 0`)
	if err != nil {
		return 0, "", fmt.Errorf("checksum: %w", err)
	}
	defer rows.Close()
	var recs []wire.Record
	for rows.Next() {
		var r wire.Record
		if err := rows.Scan(&r.Entity, &r.ID, &r.Version); err != nil {
			return 0, "", fmt.Errorf("checksum: %w", err)
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return 0, "", fmt.Errorf("checksum: %w", err)
	}
	n, sum := wire.ChecksumOf(recs)
	return n, sum, nil
}

// verify compares the replica with the server's checksum; a mismatch makes the device
// pull from the start, once.
func (s *session) verify(ctx context.Context) error {
	c := s.c
	repulled := false
	for attempt := 0; attempt < 4; attempt++ {
		cursor, err := getMeta(ctx, c.db, metaCursor)
		if err != nil {
			return err
		}
		count, sum, err := replicaChecksum(ctx, c.db)
		if err != nil {
			return err
		}
		reply, err := s.call(ctx, &wire.Verify{Cursor: cursor, Count: &count, Checksum: sum})
		if errors.Is(err, errNoVerifyEndpoint) {
			s.log.Info("sync: the server cannot verify over HTTP; skipped")
			return nil
		}
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		var cs *wire.Checksum
		switch r := reply.(type) {
		case *wire.Checksum:
			cs = r
		case *wire.Error:
			return fmt.Errorf("verify: %w", &ServerError{Code: r.Code, Message: r.Message})
		default:
			return fmt.Errorf("verify: the server answered %s", reply.MessageType())
		}
		if cs.Cursor != cursor {
			// The server has moved on since the device's cursor: catch up and compare again.
			if err := s.pullAll(ctx); err != nil {
				return err
			}
			continue
		}
		match := cs.Count == count && cs.Checksum == sum
		if err := c.inTx(ctx, func(tx *localTx) error {
			if err := setMetaInt(ctx, tx, metaLastVerify, c.nowMs()); err != nil {
				return err
			}
			return setMeta(ctx, tx, metaLastVerifyOK, strconv.Itoa(boolInt(match)))
		}); err != nil {
			return err
		}
		if match {
			s.log.Debug("sync: replica verified", "count", count)
			return nil
		}
		if repulled {
			return fmt.Errorf("verify: %w (server %d records %s, device %d records %s)", ErrReplicaMismatch, cs.Count, cs.Checksum, count, sum)
		}
		s.log.Warn("sync: the replica does not match the server; pulling from the start", "server_count", cs.Count, "device_count", count)
		s.reset, repulled = true, true
		if err := s.pullAll(ctx); err != nil {
			return err
		}
	}
	s.log.Info("sync: the server kept moving; verify skipped this time")
	return nil
}

// Sync connects to the server once: it pushes the whole outbox, pulls every change,
// verifies the replica against the server's checksum, and disconnects.
func (c *Client) Sync(ctx context.Context) error {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	if err := c.checkOpen(); err != nil {
		return err
	}
	c.noteAttempt(ctx)
	s, err := c.connect(ctx)
	if err != nil {
		c.noteResult(ctx, err)
		return fmt.Errorf("sync: %w", err)
	}
	defer s.close()
	err = s.round(ctx, true)
	c.noteResult(ctx, err)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

func (c *Client) noteAttempt(ctx context.Context) {
	if err := setMetaInt(ctx, c.db, metaLastAttempt, c.nowMs()); err != nil {
		c.log.Warn("sync: note the attempt", "err", err)
	}
}

func (c *Client) noteResult(ctx context.Context, err error) {
	ctx = context.WithoutCancel(ctx)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	werr := c.inTx(ctx, func(tx *localTx) error {
		if err == nil {
			if err := setMetaInt(ctx, tx, metaLastSync, c.nowMs()); err != nil {
				return err
			}
		}
		return setMeta(ctx, tx, metaLastError, msg)
	})
	if werr != nil {
		c.log.Warn("sync: note the result", "err", werr)
	}
}
