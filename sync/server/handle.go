package syncserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// The handlers below are shared by the WebSocket session and the HTTP fallback. ctx
// carries the authenticated actor.

// push applies a batch and returns its ack, or an error message.
func (s *Server) push(ctx context.Context, log *slog.Logger, schema int, m *wire.Push) wire.Message {
	if len(m.Ops) > s.MaxBatch {
		return &wire.Error{Code: wire.CodeBatchTooLarge, BatchID: m.BatchID,
			Message: "a push may carry at most " + itoa(s.MaxBatch) + " ops; split the batch"}
	}
	if m.SchemaVersion > 0 {
		schema = m.SchemaVersion
	}
	if schema < s.Schema.MinVersion {
		return &wire.Error{Code: wire.CodeSchemaTooOld, BatchID: m.BatchID,
			Message: "schema version " + itoa(schema) + " is no longer accepted; update the app (minimum " + itoa(s.Schema.MinVersion) + ")"}
	}
	results := make([]jiaoliu.OpResult, 0, len(m.Ops))
	var run []jiaoliu.Op // consecutive convertible ops, applied together in order
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		res, err := s.store.Apply(ctx, jiaoliu.Batch{Ops: run})
		if de := (*jiaoliu.Error)(nil); errors.As(err, &de) {
			// The whole batch was refused (an auditor's device): store each op as
			// rejected, so nothing typed is lost.
			res = make([]jiaoliu.OpResult, 0, len(run))
			for _, op := range run {
				r, err := s.store.Reject(ctx, op, jiaoliu.RejectCode(de.Code), de.Message)
				if err != nil {
					return err
				}
				res = append(res, r)
			}
		} else if err != nil {
			return err
		}
		results = append(results, res...)
		run = run[:0]
		return nil
	}
	for _, op := range m.Ops {
		converted, err := s.Schema.Convert(op, schema)
		if err == nil {
			run = append(run, converted)
			continue
		}
		if err := flush(); err != nil {
			return s.internalError(ctx, log, "push", err, m.BatchID)
		}
		r, err2 := s.store.Reject(ctx, op, jiaoliu.RejectSchemaMismatch, err.Error())
		if err2 != nil {
			return s.internalError(ctx, log, "push", err2, m.BatchID)
		}
		results = append(results, r)
	}
	if err := flush(); err != nil {
		return s.internalError(ctx, log, "push", err, m.BatchID)
	}
	if err := s.store.DeviceSynced(ctx); err != nil && ctx.Err() == nil {
		log.Warn("sync record device", "err", err)
	}
	rejected := 0
	for _, r := range results {
		if r.Status == jiaoliu.StatusRejected && !r.Duplicate {
			rejected++
		}
	}
	log.Info("sync push", "batch", m.BatchID, "ops", len(m.Ops), "rejected", rejected)
	s.observe(func(o Observer) { o.Pushed(jiaoliu.ActorFromContext(ctx), m.BatchID, m.Ops, results) })
	return &wire.Ack{BatchID: m.BatchID, Results: results}
}

// pull answers a pull with changes, a reset, or an error. The changes message is kept
// under MaxMessageBytes by cutting the page short.
func (s *Server) pull(ctx context.Context, log *slog.Logger, m *wire.Pull) wire.Message {
	return s.answerPull(ctx, log, s.readPage(ctx, m))
}

// page is a pull's answer as read from the store, before the device is told: a
// session may read the next page ahead (see readAhead), and only a page sent counts.
type page struct {
	out *changes
	err error
}

// readPage reads the page a pull asks for; it has no other effect.
func (s *Server) readPage(ctx context.Context, m *wire.Pull) page {
	limit := m.Limit
	if limit <= 0 || limit > s.MaxBatch {
		limit = s.MaxBatch
	}
	recs, next, more, err := s.store.Pull(ctx, m.Cursor, limit)
	if err != nil {
		return page{err: err}
	}
	// The records go out as the store encoded them (raw); Changes.Records stays empty.
	out := &changes{Changes: &wire.Changes{Cursor: next, More: more}, raw: make([]json.RawMessage, 0, len(recs))}
	size := 64 + len(next)
	for i, r := range recs {
		b := r.JSON
		if i > 0 && size+len(b)+1+len(r.Cursor) > s.MaxMessageBytes {
			out.Cursor, out.More = recs[i-1].Cursor, true
			break
		}
		size += len(b) + 1
		out.raw = append(out.raw, b)
		out.size += len(b)
	}
	return page{out: out}
}

// answerPull turns a page read into the answer, recording a device that has pulled
// everything.
func (s *Server) answerPull(ctx context.Context, log *slog.Logger, p page) wire.Message {
	switch {
	case errors.Is(p.err, postgres.ErrScopeChanged):
		return &wire.Reset{Reason: wire.ReasonScopeChanged}
	case errors.Is(p.err, postgres.ErrInvalidCursor):
		return &wire.Reset{Reason: wire.ReasonInvalidCursor}
	case p.err != nil:
		return s.internalError(ctx, log, "pull", p.err, "")
	}
	out := p.out
	if !out.More {
		if err := s.store.DeviceSynced(ctx); err != nil && ctx.Err() == nil {
			log.Warn("sync record device", "err", err)
		}
	}
	s.observe(func(o Observer) { o.Pulled(jiaoliu.ActorFromContext(ctx), len(out.raw), out.More) })
	return out
}

// verify answers a verify with the checksum, recording the outcome for the device.
func (s *Server) verify(ctx context.Context, log *slog.Logger, m *wire.Verify) wire.Message {
	cursor, count, sum, err := s.store.Verify(ctx, m.Cursor)
	if err != nil {
		return s.internalError(ctx, log, "verify", err, "")
	}
	var ok *bool
	if m.Cursor != "" && cursor == m.Cursor && m.Count != nil && m.Checksum != "" {
		match := *m.Count == count && m.Checksum == sum
		ok = &match
		if !match {
			log.Warn("sync verify mismatch", "count", count, "device_count", *m.Count)
		}
	}
	if err := s.store.DeviceVerified(ctx, ok); err != nil && ctx.Err() == nil {
		log.Warn("sync record device", "err", err)
	}
	return &wire.Checksum{Cursor: cursor, Count: count, Checksum: sum}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// changes is a changes message whose records were already encoded (to keep the message
// under MaxMessageBytes): it is written from those bytes rather than encoded again.
type changes struct {
	*wire.Changes
	raw  []json.RawMessage // the encoded Records
	size int               // their total size
}

// MarshalJSON encodes the message like wire.Changes, from the encoded records.
func (c *changes) MarshalJSON() ([]byte, error) {
	return append(c.AppendBody([]byte{'{'}), '}'), nil
}

// AppendBody writes the members of the message (wire.BodyAppender).
func (c *changes) AppendBody(b []byte) []byte {
	b = append(b, `"records":[`...)
	for i, r := range c.raw {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r...)
	}
	b = append(b, `],"cursor":`...)
	cur, _ := json.Marshal(c.Cursor)
	b = append(b, cur...)
	b = append(b, `,"more":`...)
	return strconv.AppendBool(b, c.More)
}

// BodySize estimates the size of the members.
func (c *changes) BodySize() int { return c.size + len(c.raw) + len(c.Cursor) + 40 }
