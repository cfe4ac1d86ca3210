package client

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// offline opens a client that never talks to a server.
func offline(t *testing.T, path string) *Client {
	t.Helper()
	c, err := Open(path, Config{ServerURL: "http://127.0.0.1:1", DeviceID: "5d3c7f3e-0000-4000-8000-000000000001", Token: "dev_x", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestOutboxPersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tablet.db")
	c := offline(t, path)
	exchange := NewID()
	lesson, att := NewID(), NewID()
	var ids []string
	ids = append(ids, must(c.Upsert(ctx, "lesson", lesson, lessonOf(exchange, "2026-10-12", 3))))
	ids = append(ids, must(c.Upsert(ctx, "lesson", lesson, map[string]any{"topic": "分数"})))
	ids = append(ids, must(c.Upsert(ctx, "attendance", att, map[string]any{"exchangeId": exchange, "date": "2026-10-12", "status": "PRESENT"})))
	ids = append(ids, must(c.Delete(ctx, "attendance", att)))
	before := must(c.Pending(ctx))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "lesson", lesson); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}

	c2, err := Open(path, Config{Logger: testLogger()}) // the identity comes from the file
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	after := must(c2.Pending(ctx))
	if len(after) != 4 {
		t.Fatalf("outbox after reopen: %d ops, want 4", len(after))
	}
	for i, op := range after {
		b := before[i]
		if op.OpID != ids[i] || op.OpID != b.OpID || op.HLC != b.HLC || op.Kind != b.Kind || op.ID != b.ID || canonJSON(op.Fields) != canonJSON(b.Fields) {
			t.Errorf("op %d changed across reopen: %+v, was %+v", i, op, b)
		}
		if i > 0 && op.HLC <= after[i-1].HLC {
			t.Errorf("HLCs out of order: %s after %s", op.HLC, after[i-1].HLC)
		}
	}
	if after[0].Fields["period"] != json.Number("3") {
		t.Errorf("period=%#v, want the integer 3", after[0].Fields["period"])
	}
	rec := must(c2.Get(ctx, "lesson", lesson))
	if rec.Fields["topic"] != "分数" || rec.Fields["subject"] != "数学" || rec.Pending != 2 || rec.Version != "" || rec.Synced() {
		t.Errorf("lesson view after reopen: %+v", rec)
	}
	if a := must(c2.Get(ctx, "attendance", att)); !a.Deleted || a.Pending != 2 {
		t.Errorf("deleted attendance: %+v", a)
	}
	if l := must(c2.List(ctx, "attendance")); len(l) != 0 {
		t.Errorf("List shows a tombstone: %+v", l)
	}
	// The clock never goes back: a new op after reopen is stamped after the old ones.
	c2.clock = hlc.NewClockWithSource(c2.DeviceID(), func() int64 { return 1000 }) // a wall clock far in the past
	if err := c2.loadIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	id := must(c2.Upsert(ctx, "lesson", lesson, map[string]any{"minutes": 40}))
	ops := must(c2.Pending(ctx))
	if last := ops[len(ops)-1]; last.OpID != id || last.HLC <= after[3].HLC {
		t.Errorf("new op %s stamped %s, not after %s", last.OpID, last.HLC, after[3].HLC)
	}
	st := must(c2.Status(ctx))
	if st.Outbox != 5 || st.Records != 1 || st.Tombstones != 1 || st.DeviceID != c.DeviceID() {
		t.Errorf("status=%+v", st)
	}
}

func TestLocalChecks(t *testing.T) {
	ctx := context.Background()
	c := offline(t, filepath.Join(t.TempDir(), "tablet.db"))
	ex := NewID()
	for _, tc := range []struct {
		name   string
		entity string
		fields map[string]any
		field  string
	}{
		{"period out of range", "lesson", lessonOf(ex, "2026-10-12", 13), "period"},
		{"missing subject", "lesson", map[string]any{"exchangeId": ex, "date": "2026-10-12", "period": 1, "kind": "REGULAR"}, "subject"},
		{"open lesson without level", "lesson", map[string]any{"exchangeId": ex, "date": "2026-10-12", "period": 1, "subject": "语文", "kind": "OPEN"}, "openLevel"},
		{"unknown field", "lesson", map[string]any{"exchangeId": ex, "date": "2026-10-12", "period": 1, "subject": "语文", "kind": "REGULAR", "mood": "good"}, "mood"},
		{"bad status", "attendance", map[string]any{"exchangeId": ex, "date": "2026-10-12", "status": "HERE"}, "status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Upsert(ctx, tc.entity, NewID(), tc.fields)
			if _, ok := jiaoliu.ErrorFields(err)[tc.field]; !ok {
				t.Fatalf("err=%v, want a message for %s", err, tc.field)
			}
		})
	}
	if _, err := c.Upsert(ctx, "spaceship", NewID(), map[string]any{"warp": 9}); jiaoliu.ErrorCode(err) != jiaoliu.EUNKNOWNENTITY {
		t.Fatalf("unknown entity: %v", err)
	}
	if _, err := c.Delete(ctx, "lesson", NewID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete of an unknown record: %v", err)
	}
	if n := len(must(c.Pending(ctx))); n != 0 {
		t.Fatalf("refused writes left %d ops", n)
	}
}

// TestCanonicalIDRewrite: when the server merges a new lesson into its natural-key
// twin, the device re-keys its record and rewrites the pending ops that refer to the
// old id, both their target and their reference fields; and it never sends those ops
// in the same batch as the create.
func TestCanonicalIDRewrite(t *testing.T) {
	ctx := context.Background()
	c := offline(t, filepath.Join(t.TempDir(), "tablet.db"))
	ex, teacher := NewID(), NewID()
	x, canonical, obs := NewID(), NewID(), NewID()
	create := must(c.Upsert(ctx, "lesson", x, lessonOf(ex, "2026-10-13", 1)))
	patch := must(c.Upsert(ctx, "lesson", x, map[string]any{"topic": "小数"}))
	observe := must(c.Upsert(ctx, "observation", obs, map[string]any{"observedTeacherId": teacher, "date": "2026-10-13", "lessonId": x}))

	batch := must(c.nextBatch(ctx, 500, 1<<20))
	if len(batch) != 1 || batch[0].OpID != create {
		t.Fatalf("first batch=%v, want only the create", batch)
	}
	n, err := c.applyAck(ctx, batch, &wire.Ack{BatchID: "b-1", Results: []jiaoliu.OpResult{
		{OpID: create, Status: jiaoliu.StatusMerged, ID: canonical, CanonicalID: canonical, Version: "41", Lost: []string{"kind"}},
	}})
	if err != nil || n != 1 {
		t.Fatalf("applyAck=%d, %v", n, err)
	}
	ops := must(c.Pending(ctx))
	if len(ops) != 2 || ops[0].OpID != patch || ops[0].ID != canonical || ops[1].OpID != observe || ops[1].Fields["lessonId"] != canonical {
		t.Fatalf("outbox after the merge: %+v", ops)
	}
	if ops[0].HLC == "" || ops[1].ID != obs {
		t.Fatalf("rewritten ops lost their identity: %+v", ops)
	}
	if _, err := c.Get(ctx, "lesson", x); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the old id is still in the replica: %v", err)
	}
	rec := must(c.Get(ctx, "lesson", canonical))
	if rec.Version != "41" || rec.Fields["topic"] != "小数" || rec.Pending != 1 {
		t.Fatalf("canonical lesson=%+v", rec)
	}
	if _, lost := rec.Fields["kind"]; lost {
		t.Fatalf("a field the op lost is shown as the server's: %+v", rec.Fields)
	}
	if o := must(c.Get(ctx, "observation", obs)); o.Fields["lessonId"] != canonical {
		t.Fatalf("observation view=%+v", o)
	}
	// Now the rest goes together: the lesson is known to the server; within maxBatch
	// and the message size.
	if batch := must(c.nextBatch(ctx, 500, 1<<20)); len(batch) != 2 {
		t.Fatalf("second batch=%+v", batch)
	}
	if batch := must(c.nextBatch(ctx, 1, 1<<20)); len(batch) != 1 {
		t.Fatalf("a batch over maxBatch: %+v", batch)
	}
	if batch := must(c.nextBatch(ctx, 500, 4096+300)); len(batch) != 1 {
		t.Fatalf("a batch over maxMessageBytes: %+v", batch)
	}
	res := must(c.Results(ctx))
	if len(res) != 1 || res[0].Status != jiaoliu.StatusMerged || res[0].CanonicalID != canonical || res[0].ID != x {
		t.Fatalf("results=%+v", res)
	}
	// A duplicate answer with an older version does not move the record back.
	if err := c.inTx(ctx, func(tx *localTx) error {
		return optimisticBase(ctx, tx, "lesson", canonical, Op{Kind: jiaoliu.OpUpsert, Fields: map[string]any{"topic": "旧"}},
			jiaoliu.OpResult{Status: jiaoliu.StatusApplied, Version: "7", Duplicate: true})
	}); err != nil {
		t.Fatal(err)
	}
	if rec := must(c.Get(ctx, "lesson", canonical)); rec.Version != "41" {
		t.Fatalf("an older answer moved the record back: %+v", rec)
	}
}

func TestNewerVersion(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{{"10", "9", true}, {"9", "10", false}, {"5", "5", false}, {"5", "", true}, {"x", "y", true}, {"x", "x", false}} {
		if got := newerVersion(tc.a, tc.b); got != tc.want {
			t.Errorf("newerVersion(%q, %q)=%v", tc.a, tc.b, got)
		}
	}
}

func TestJitter(t *testing.T) {
	for i := 0; i < 100; i++ {
		if d := jitter(time.Second); d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("jitter=%v", d)
		}
	}
}

// TestCloseStopsRun: Run retries an unreachable server with backoff until the client
// is closed, and then returns ErrClosed at once; the outbox is kept.
func TestCloseStopsRun(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tablet.db")
	c, err := Open(path, Config{ServerURL: "http://127.0.0.1:1", DeviceID: NewID(), Token: "dev_x", Logger: testLogger(),
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	must(c.Upsert(ctx, "attendance", NewID(), map[string]any{"exchangeId": NewID(), "date": "2026-10-12", "status": "PRESENT"}))
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, 5*time.Second, "a failed attempt is recorded", func() bool {
		st, err := c.Status(ctx)
		return err == nil && st.LastError != ""
	})
	if err := c.Run(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("a second Run=%v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("run=%v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run goes on after Close")
	}
	c2, err := Open(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if n := len(must(c2.Pending(ctx))); n != 1 {
		t.Fatalf("outbox=%d after Run and Close", n)
	}
}

// TestOpenOddPaths: a database file whose name holds what a SQLite URI gives a meaning
// to ('%', '?', '#') opens at that very name, and keeps its data across a reopen.
func TestOpenOddPaths(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "教师 100% #1?")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tablet%20a.db")
	c := offline(t, path)
	id := must(c.Upsert(ctx, "lesson", NewID(), lessonOf(NewID(), "2026-10-12", 3)))
	noErr(t, c.Close())
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not at its path: %v", err)
	}
	c = offline(t, path)
	if p := must(c.Pending(ctx)); len(p) != 1 || p[0].OpID != id {
		t.Fatalf("pending after reopening %+v", p)
	}
}
