package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/client"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// clientDevice is a tablet running the project's own Go client (sync/client: a
// durable SQLite outbox and replica, Run in the background), written to by a user
// goroutine. At the end of a round it becomes a device for the checker: its results
// are its acknowledged ops, its replica what the client holds.
type clientDevice struct {
	name     string
	reg      registration
	exchange string
	c        *client.Client
	rng      *rand.Rand
	seq      int
	failed   int // local writes the client refused (its own validation)
}

// newClientDevice opens a client on a fresh database file; skew stays under the 5
// minutes after which the server re-stamps (the client keeps its own HLC in results).
func newClientDevice(tb testing.TB, name string, reg registration, exchange, url string, useHTTP bool, skew time.Duration, seed uint64) *clientDevice {
	tb.Helper()
	c, err := client.Open(filepath.Join(tb.TempDir(), name+".db"), client.Config{
		ServerURL: url, DeviceID: reg.DeviceID, Token: reg.Token, HTTP: useHTTP,
		Now:            func() time.Time { return time.Now().Add(skew) },
		RequestTimeout: 4 * time.Second, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
		PollInterval: 200 * time.Millisecond, OutboxCheck: 200 * time.Millisecond,
	})
	if err != nil {
		tb.Fatalf("open the client: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return &clientDevice{name: name, reg: reg, exchange: exchange, c: c, rng: rand.New(rand.NewPCG(seed, 17))}
}

// run syncs in the background and writes like a teacher until ctx ends.
func (cd *clientDevice) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := cd.c.Run(ctx); err != nil && ctx.Err() == nil {
				sleep(ctx, 100*time.Millisecond)
			}
		}
	}()
	for ctx.Err() == nil {
		cd.write(ctx)
		sleep(ctx, time.Duration(60+cd.rng.IntN(120))*time.Millisecond)
	}
	wg.Wait()
}

// write makes one local change: a new lesson or attendance (natural keys shared with
// the raw devices of the same exchange), an edit of a record the replica holds, or a
// delete.
func (cd *clientDevice) write(ctx context.Context) {
	cd.seq++
	text := fmt.Sprintf("%s-%d", cd.name, cd.seq)
	day := func(n int) string { return fmt.Sprintf("2026-10-%02d", 10+cd.rng.IntN(n)) }
	var err error
	switch r := cd.rng.IntN(100); {
	case r < 25:
		_, err = cd.c.Upsert(ctx, "lesson", client.NewID(), map[string]any{"exchangeId": cd.exchange, "date": day(4), "period": 1 + cd.rng.IntN(4),
			"subject": subjects[cd.rng.IntN(len(subjects))], "kind": lessonKinds[cd.rng.IntN(len(lessonKinds))], "topic": "课题 " + text, "minutes": 45})
	case r < 35:
		_, err = cd.c.Upsert(ctx, "attendance", client.NewID(), map[string]any{"exchangeId": cd.exchange, "date": day(8),
			"status": attendanceKind[cd.rng.IntN(len(attendanceKind))], "note": text})
	default:
		recs, lerr := cd.c.List(ctx, []string{"lesson", "attendance"}[cd.rng.IntN(2)])
		if lerr != nil || len(recs) == 0 {
			return
		}
		rec := recs[cd.rng.IntN(len(recs))]
		if ex, _ := rec.Fields["exchangeId"].(string); ex != cd.exchange {
			return
		}
		switch {
		case r >= 97:
			_, err = cd.c.Delete(ctx, rec.Entity, rec.ID)
		case rec.Entity == "lesson":
			_, err = cd.c.Upsert(ctx, rec.Entity, rec.ID, map[string]any{"topic": "课题 " + text, "notes": "笔记 " + text})
		default:
			_, err = cd.c.Upsert(ctx, rec.Entity, rec.ID, map[string]any{"note": text, "status": attendanceKind[cd.rng.IntN(len(attendanceKind))]})
		}
	}
	if err != nil && ctx.Err() == nil {
		cd.failed++
	}
}

// settle syncs until the outbox is empty and the replica verifies against the server.
func (cd *clientDevice) settle(ctx context.Context) error {
	var last error
	for ctx.Err() == nil {
		err := cd.c.Sync(ctx)
		st, serr := cd.c.Status(ctx)
		if err == nil && serr == nil && st.Outbox == 0 {
			return nil
		}
		last = errors.Join(err, serr)
		sleep(ctx, 100*time.Millisecond)
	}
	return fmt.Errorf("%s: %w (last: %v)", cd.name, ctx.Err(), last)
}

// asDevice returns the client's ops, answers and replica as a device for the checker,
// and whether its checksum matches the server's at its cursor.
func (cd *clientDevice) asDevice(ctx context.Context, serverURL string) (*device, bool, error) {
	d := &device{name: cd.name, reg: cd.reg, requestTimeout: 10 * time.Second, ops: map[string]*opRecord{}, replica: map[string]wire.Record{}}
	results, err := cd.c.Results(ctx)
	if err != nil {
		return nil, false, err
	}
	for _, r := range results {
		op := jiaoliu.Op{OpID: r.OpID, Kind: r.Kind, Entity: r.Entity, ID: r.ID, HLC: r.HLC, Fields: r.Fields}
		ack := &jiaoliu.OpResult{OpID: r.OpID, Status: r.Status, ID: r.ID, Version: r.Version, CanonicalID: r.CanonicalID,
			Code: r.Code, Message: r.Message, Fields: r.FieldErrors, Lost: r.Lost, Duplicate: r.Duplicate, Restamped: r.Restamped}
		d.ops[r.OpID] = &opRecord{op: op, ack: ack}
		d.order = append(d.order, r.OpID)
		d.stats.made++
		d.stats.acked++
		switch r.Status {
		case jiaoliu.StatusApplied:
			d.stats.applied++
		case jiaoliu.StatusMerged:
			d.stats.merged++
		case jiaoliu.StatusRejected:
			d.stats.rejected++
			d.stats.rejections = append(d.stats.rejections, fmt.Sprintf("%s %s %s: %s %v", r.Entity, r.Kind, r.Code, r.Message, r.FieldErrors))
		}
		if r.Restamped {
			// The client keeps its own HLC, not the server's: the oracle could not
			// place this op. The skews are chosen so that it does not happen.
			d.stats.restampNoHLC++
		}
	}
	pending, err := cd.c.Pending(ctx)
	if err != nil {
		return nil, false, err
	}
	for _, op := range pending {
		d.ops[op.OpID] = &opRecord{op: jiaoliu.Op{OpID: op.OpID, Kind: op.Kind, Entity: op.Entity, ID: op.ID, HLC: op.HLC, Fields: op.Fields}}
		d.order = append(d.order, op.OpID)
	}
	recs, err := cd.c.All(ctx)
	if err != nil {
		return nil, false, err
	}
	for _, r := range recs {
		d.replica[r.Entity+"/"+r.ID] = wire.Record{Entity: r.Entity, ID: r.ID, Version: r.Version, Deleted: r.Deleted, Fields: r.Fields}
	}
	// Verify as the client would, over HTTP, at the client's cursor.
	n, sum, err := cd.c.Checksum(ctx)
	if err != nil {
		return nil, false, err
	}
	cursor, err := cd.c.Cursor(ctx)
	if err != nil {
		return nil, false, err
	}
	m, err := d.post(ctx, serverURL, "/sync/verify", &wire.Verify{Cursor: cursor, Count: &n, Checksum: sum})
	if err != nil {
		return nil, false, err
	}
	c, ok := m.(*wire.Checksum)
	return d, ok && c.Cursor == cursor && c.Count == n && c.Checksum == sum, nil
}
