package client

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// TestAgainstServer runs the client's scenarios against one real server on one real
// database (its setup, with three users' bcrypt hashes, is the slow part). Each
// scenario uses its own devices and records; the scope change comes last.
func TestAgainstServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i, tc := range []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"RoundTrip", testSyncRoundTrip},
		{"CrashAfterSendBeforeAck", testCrashAfterSendBeforeAck},
		{"CrashAfterAckBeforeStore", testCrashAfterAckBeforeStore},
		{"DroppedConnectionMidPush", testDroppedConnectionMidPush},
		{"RejectionsAreKept", testRejectionsAreKept},
		{"HTTPFallback", testHTTPFallback},
		{"ClockCorrection", testClockCorrection},
		{"VerifyMismatchHeals", testVerifyMismatchHeals},
		{"RunLive", testRunLive},
		{"ResetKeepsOutbox", testResetKeepsOutbox},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := e.with(t)
			sub.year = 2030 + i // records of one scenario never share a natural key with another's
			tc.run(t, sub)
		})
	}
}

func testSyncRoundTrip(t *testing.T, e *env) {
	ctx := context.Background()
	a := e.newDevice("a", e.userA)
	if err := a.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.Get(ctx, "exchange", e.e1); err != nil {
		t.Fatalf("the teacher's exchange is not pulled: %v", err)
	}
	if _, err := a.c.Get(ctx, "exchange", e.e2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another teacher's exchange is in the replica: %v", err)
	}
	id := NewID()
	f := lessonOf(e.e1, e.date(12), 3)
	f["topic"] = "  分数  "
	op := must(a.c.Upsert(ctx, "lesson", id, f))
	if rec := must(a.c.Get(ctx, "lesson", id)); rec.Pending != 1 || rec.Fields["topic"] != "  分数  " {
		t.Fatalf("offline view=%+v", rec)
	}
	if err := a.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rec := must(a.c.Get(ctx, "lesson", id))
	if rec.Pending != 0 || rec.Version == "" || rec.Fields["topic"] != "分数" || rec.Fields["deviceId"] != a.id {
		t.Fatalf("synced lesson=%+v (the server's trimmed topic and deviceId should win)", rec)
	}
	res := must(a.c.Results(ctx))
	if len(res) != 1 || res[0].OpID != op || res[0].Status != jiaoliu.StatusApplied {
		t.Fatalf("results=%+v", res)
	}
	st := must(a.c.Status(ctx))
	if st.Outbox != 0 || st.LastSync.IsZero() || st.LastError != "" || !st.VerifyOK || st.LastVerify.IsZero() {
		t.Fatalf("status=%+v", st)
	}
	var ok *bool
	if err := e.db.Get(&ok, `SELECT last_verify_ok FROM devices WHERE id = $1`, a.id); err != nil || ok == nil || !*ok {
		t.Fatalf("the server did not record a matching verify: %v %v", ok, err)
	}
	e.assertReplicaMatches(a)
}

// testCrashAfterSendBeforeAck: the device sends a push, the server commits it, and
// the device dies before the ack arrives. Reopened from disk, it resends the same ops
// (same opIds and HLCs); the server answers duplicate, and nothing is applied twice.
func testCrashAfterSendBeforeAck(t *testing.T, e *env) {
	ctx := context.Background()
	a := e.newDevice("a", e.userA)
	noErr(t, a.c.Sync(ctx))
	var ids []string
	lessons := []string{NewID(), NewID(), NewID()}
	for i, id := range lessons {
		ids = append(ids, must(a.c.Upsert(ctx, "lesson", id, lessonOf(e.e1, e.date(12), i+1))))
	}
	ids = append(ids, must(a.c.Upsert(ctx, "lesson", lessons[0], map[string]any{"topic": "分数"})))
	before := must(a.c.Pending(ctx))
	crash := errors.New("simulated crash")
	pushes := 0
	a.c.hooks.afterSend = func(m wire.Message) error {
		p, ok := m.(*wire.Push)
		if !ok {
			return nil
		}
		pushes++
		if err := e.waitCommitted(opIDsOf(p)); err != nil {
			t.Error(err)
		}
		return crash
	}
	if err := a.c.Sync(ctx); !errors.Is(err, crash) {
		t.Fatalf("sync=%v, want the crash", err)
	}
	a.crash(t)
	after := must(a.c.Pending(ctx))
	if len(after) != len(before) {
		t.Fatalf("after the crash the outbox has %d ops, had %d", len(after), len(before))
	}
	for i := range after {
		// All four went in the batch: the edit of the first lesson with its create, as
		// the server follows a merge within a batch (welcome.followsMerges).
		if after[i].OpID != before[i].OpID || after[i].HLC != before[i].HLC || after[i].Attempts != 1 {
			t.Fatalf("op %d after the crash=%+v, before=%+v", i, after[i], before[i])
		}
	}
	if err := a.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(must(a.c.Pending(ctx))); n != 0 {
		t.Fatalf("%d ops left", n)
	}
	res := must(a.c.Results(ctx))
	if len(res) != len(ids) {
		t.Fatalf("results=%d, want %d", len(res), len(ids))
	}
	dups := 0
	for i, r := range res {
		if r.OpID != ids[i] || r.Status != jiaoliu.StatusApplied {
			t.Errorf("result %d=%+v", i, r)
		}
		if r.Duplicate {
			dups++
		}
	}
	if dups != 4 || pushes != 1 {
		t.Errorf("duplicates=%d pushes before the crash=%d; want the first batch (3 creates and the edit) answered as duplicates", dups, pushes)
	}
	var creates int
	if err := e.db.Get(&creates, `SELECT count(*) FROM audit_log WHERE action = 'CREATE' AND record_id = ANY($1)`, pq.Array(lessons)); err != nil || creates != 3 {
		t.Fatalf("CREATE audit rows=%d err=%v, want 3", creates, err)
	}
	var audited int
	if err := e.db.Get(&audited, `SELECT count(*) FROM audit_log WHERE op_id = ANY($1)`, pq.Array(ids)); err != nil || audited != len(ids) {
		t.Fatalf("audit rows for the ops=%d err=%v, want %d", audited, err, len(ids))
	}
	e.assertReplicaMatches(a)
}

// testCrashAfterAckBeforeStore: the ack arrives but the device dies before storing
// it; the ops are resent and answered as duplicates.
func testCrashAfterAckBeforeStore(t *testing.T, e *env) {
	ctx := context.Background()
	a := e.newDevice("a", e.userA)
	noErr(t, a.c.Sync(ctx))
	att := NewID()
	op := must(a.c.Upsert(ctx, "attendance", att, map[string]any{"exchangeId": e.e1, "date": e.date(12), "status": "PRESENT"}))
	crash := errors.New("crash while storing the ack")
	a.c.hooks.beforeAckApplied = func(*wire.Ack) error { return crash }
	if err := a.c.Sync(ctx); !errors.Is(err, crash) {
		t.Fatalf("sync=%v", err)
	}
	a.crash(t)
	if err := a.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	res := must(a.c.Results(ctx))
	if len(res) != 1 || res[0].OpID != op || !res[0].Duplicate || res[0].Status != jiaoliu.StatusApplied {
		t.Fatalf("results=%+v", res)
	}
	e.assertReplicaMatches(a)
}

// testDroppedConnectionMidPush: the link drops after the push is sent and before the
// ack; the next sync resends it.
func testDroppedConnectionMidPush(t *testing.T, e *env) {
	ctx := context.Background()
	a := e.newDevice("a", e.userA)
	noErr(t, a.c.Sync(ctx))
	id := NewID()
	must(a.c.Upsert(ctx, "lesson", id, lessonOf(e.e1, e.date(12), 1)))
	drop := errors.New("link lost")
	a.c.hooks.afterSend = func(m wire.Message) error {
		if _, ok := m.(*wire.Push); ok {
			return drop // at once: the server may or may not have read it
		}
		return nil
	}
	if err := a.c.Sync(ctx); !errors.Is(err, drop) {
		t.Fatalf("sync=%v", err)
	}
	a.c.hooks.afterSend = nil
	if err := a.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if r := must(a.c.Results(ctx)); len(r) != 1 || r[0].Status != jiaoliu.StatusApplied {
		t.Fatalf("results=%+v", r)
	}
	var n int
	if err := e.db.Get(&n, `SELECT count(*) FROM audit_log WHERE record_id = $1`, id); err != nil || n != 1 {
		t.Fatalf("audit rows=%d err=%v", n, err)
	}
	e.assertReplicaMatches(a)
}

func testRejectionsAreKept(t *testing.T, e *env) {
	ctx := context.Background()
	b := e.newDevice("b", e.userB)
	noErr(t, b.c.Sync(ctx))
	// Teacher B writes a lesson on teacher A's exchange (an id B cannot read), and an
	// attendance on an exchange that does not exist.
	forbidden := must(b.c.Upsert(ctx, "lesson", NewID(), lessonOf(e.e1, e.date(12), 1)))
	orphan := must(b.c.Upsert(ctx, "attendance", NewID(), map[string]any{"exchangeId": NewID(), "date": e.date(12), "status": "SICK"}))
	good := must(b.c.Upsert(ctx, "lesson", NewID(), lessonOf(e.e2, e.date(12), 1)))
	if err := b.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rej := must(b.c.Rejections(ctx))
	if len(rej) != 2 || rej[0].OpID != forbidden || rej[0].Code != jiaoliu.RejectForbidden || rej[1].OpID != orphan || rej[1].Code != jiaoliu.RejectMissingRef {
		t.Fatalf("rejections=%+v", rej)
	}
	if rej[0].Fields["subject"] != "数学" {
		t.Fatalf("the rejected op lost what was typed: %+v", rej[0].Fields)
	}
	if len(must(b.c.List(ctx, "attendance"))) != 0 {
		t.Fatal("a rejected create is still shown as a record")
	}
	if st := must(b.c.Status(ctx)); st.Rejections != 2 {
		t.Fatalf("status=%+v", st)
	}
	if err := b.c.Dismiss(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	if n := len(must(b.c.Rejections(ctx))); n != 1 {
		t.Fatalf("rejections after dismiss=%d", n)
	}
	if r := must(b.c.Results(ctx)); len(r) != 3 || r[2].OpID != good || r[2].Status != jiaoliu.StatusApplied {
		t.Fatalf("results=%+v", r)
	}
	e.assertReplicaMatches(b)
}

func testHTTPFallback(t *testing.T, e *env) {
	ctx := context.Background()
	a := e.newDevice("a", e.userA, func(c *Config) { c.HTTP = true; c.PullLimit = 2 })
	id := NewID()
	must(a.c.Upsert(ctx, "lesson", id, lessonOf(e.e1, e.date(12), 2)))
	if err := a.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if rec := must(a.c.Get(ctx, "lesson", id)); rec.Version == "" || rec.Pending != 0 {
		t.Fatalf("lesson=%+v", rec)
	}
	st := must(a.c.Status(ctx))
	if !st.VerifyOK {
		t.Fatalf("status=%+v, want a verified replica", st)
	}
	e.assertReplicaMatches(a)
	// A revoked device is told so, and the error is permanent.
	if _, err := e.store.RevokeDevice(sys(), a.id); err != nil {
		t.Fatal(err)
	}
	if err := a.c.Sync(ctx); !errors.Is(err, ErrUnauthorized) || !Permanent(err) {
		t.Fatalf("sync with a revoked token=%v", err)
	}
	// Run gives up at once rather than retrying for ever.
	if err := a.c.Run(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("run with a revoked token=%v", err)
	}
	ws := e.newDevice("ws", e.userA)
	if _, err := e.store.RevokeDevice(sys(), ws.id); err != nil {
		t.Fatal(err)
	}
	if err := ws.c.Run(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("run over a WebSocket with a revoked token=%v", err)
	}
}

// testClockCorrection: a tablet whose clock is an hour fast writes offline; the server
// re-stamps those ops (and says so), and after the welcome the device's HLCs follow
// the server's time.
func testClockCorrection(t *testing.T, e *env) {
	ctx := context.Background()
	fast := func() time.Time { return time.Now().Add(time.Hour) }
	a := e.newDevice("a", e.userA, func(c *Config) { c.Now = fast })
	must(a.c.Upsert(ctx, "attendance", NewID(), map[string]any{"exchangeId": e.e1, "date": e.date(12), "status": "PRESENT"}))
	if err := a.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	res := must(a.c.Results(ctx))
	if len(res) != 1 || !res[0].Restamped {
		t.Fatalf("results=%+v, want the op re-stamped", res)
	}
	st := must(a.c.Status(ctx))
	if d := st.ClockOffset + time.Hour; d < -5*time.Second || d > 5*time.Second {
		t.Fatalf("clock offset=%v, want about -1h", st.ClockOffset)
	}
	must(a.c.Upsert(ctx, "attendance", NewID(), map[string]any{"exchangeId": e.e1, "date": e.date(13), "status": "PRESENT"}))
	ops := must(a.c.Pending(ctx))
	ts := must(hlc.Parse(ops[0].HLC))
	// The HLC never goes back, so it stays at the last (fast) stamp plus a counter;
	// what matters is that it is not ahead of that stamp by the wall clock's hour again
	// and that the server accepts it without a re-stamp once the wall clock catches up.
	if ts.Node != a.id {
		t.Fatalf("HLC node=%s, want the device id", ts.Node)
	}
	a2 := e.newDevice("a2", e.userA, func(c *Config) { c.Now = fast })
	noErr(t, a2.c.Sync(ctx))
	must(a2.c.Upsert(ctx, "attendance", NewID(), map[string]any{"exchangeId": e.e1, "date": e.date(14), "status": "SICK"}))
	op := must(a2.c.Pending(ctx))[0]
	ts = must(hlc.Parse(op.HLC))
	if d := time.Since(time.UnixMilli(ts.Wall)); d < -5*time.Second || d > 5*time.Second {
		t.Fatalf("a corrected device stamps %s, %v away from the server's time", op.HLC, d)
	}
	if err := a2.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if r := must(a2.c.Results(ctx)); r[0].Restamped {
		t.Fatalf("a corrected op was re-stamped: %+v", r[0])
	}
}

// testVerifyMismatchHeals: a damaged replica (a record lost, a stale record that the
// server no longer has) is caught by verify and repaired by a pull from the start,
// keeping the outbox.
func testVerifyMismatchHeals(t *testing.T, e *env) {
	ctx := context.Background()
	a := e.newDevice("a", e.userA)
	must(a.c.Upsert(ctx, "lesson", NewID(), lessonOf(e.e1, e.date(12), 1)))
	noErr(t, a.c.Sync(ctx))
	// Damage: lose the exchange, invent a record.
	if _, err := a.c.db.Exec(`DELETE FROM records WHERE entity = 'exchange'`); err != nil {
		t.Fatal(err)
	}
	ghost := NewID()
	if _, err := a.c.db.Exec(`INSERT INTO records (entity, id, has_base, base_version, fields) VALUES ('lesson', ?, 1, '1', '{}')`, ghost); err != nil {
		t.Fatal(err)
	}
	pending := must(a.c.Upsert(ctx, "attendance", NewID(), map[string]any{"exchangeId": e.e1, "date": e.date(12), "status": "LEAVE"}))
	a.c.hooks.afterSend = func(m wire.Message) error {
		if _, ok := m.(*wire.Push); ok {
			return errors.New("offline for the push")
		}
		return nil
	}
	// Push fails: sync without pushing by pulling directly.
	s, err := a.c.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.c.hooks.afterSend = nil
	if err := s.pullAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.verify(ctx); err != nil {
		t.Fatal(err)
	}
	s.close()
	if _, err := a.c.Get(ctx, "exchange", e.e1); err != nil {
		t.Fatalf("the lost exchange is not back: %v", err)
	}
	if _, err := a.c.Get(ctx, "lesson", ghost); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the invented lesson is still there: %v", err)
	}
	if ops := must(a.c.Pending(ctx)); len(ops) != 1 || ops[0].OpID != pending {
		t.Fatalf("outbox after the full pull=%+v", ops)
	}
	if !must(a.c.Status(ctx)).VerifyOK {
		t.Fatal("not verified after the repair")
	}
	noErr(t, a.c.Sync(ctx))
	e.assertReplicaMatches(a)
}

// testResetKeepsOutbox: the teacher's scope changes (a new exchange to a third
// school) while the tablet is offline with pending work; the server answers the old
// cursor with a reset, the device pulls from the start and keeps its ops.
func testResetKeepsOutbox(t *testing.T, e *env) {
	ctx := context.Background()
	a := e.newDevice("a", e.userA)
	noErr(t, a.c.Sync(ctx))
	lesson := NewID()
	must(a.c.Upsert(ctx, "lesson", lesson, lessonOf(e.e1, e.date(12), 4)))
	third := NewID()
	e.apply(sysOp("school", third, map[string]any{"districtId": e.district, "name": "大隗一中", "locality": "TOWN", "tier": "GENERAL"}),
		sysOp("exchange", NewID(), map[string]any{"teacherId": e.teacherA, "sendingSchoolId": e.urban, "receivingSchoolId": third,
			"mode": "SECONDMENT", "academicYear": "2027-2028", "plannedStart": "2027-09-01", "plannedEnd": "2028-07-15", "status": "APPROVED"}))
	gen := must(getMetaInt(ctx, a.c.db, metaPullGen))
	if err := a.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if g := must(getMetaInt(ctx, a.c.db, metaPullGen)); g <= gen {
		t.Fatalf("no pull from the start after the scope change (generation %d → %d)", gen, g)
	}
	if _, err := a.c.Get(ctx, "school", third); err != nil {
		t.Fatalf("the new school is not pulled: %v", err)
	}
	if rec := must(a.c.Get(ctx, "lesson", lesson)); rec.Version == "" || rec.Pending != 0 {
		t.Fatalf("the pending lesson=%+v", rec)
	}
	e.assertReplicaMatches(a)
}

// testRunLive: two tablets stay connected; a lesson written on one reaches the other
// through a poke; a connection lost mid-push is re-established with backoff and the
// op is delivered once.
func testRunLive(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := e.newDevice("a", e.userA)
	admin := e.newDevice("admin", e.admin)
	var drops atomic.Int32
	a.c.hooks.afterSend = func(m wire.Message) error {
		if _, ok := m.(*wire.Push); ok && drops.Add(1) == 1 {
			return errors.New("link lost mid-push")
		}
		return nil
	}
	done := make(chan error, 2)
	go func() { done <- a.c.Run(ctx) }()
	go func() { done <- admin.c.Run(ctx) }()
	id := NewID()
	must(a.c.Upsert(ctx, "lesson", id, lessonOf(e.e1, e.date(12), 5)))
	waitFor(t, 10*time.Second, "the admin's tablet gets the lesson", func() bool {
		r, err := admin.c.Get(context.Background(), "lesson", id)
		return err == nil && r.Version != ""
	})
	waitFor(t, 10*time.Second, "teacher's outbox empties", func() bool {
		return len(must(a.c.Pending(context.Background()))) == 0
	})
	// And back: the admin edits the attendance of the day; the teacher sees it.
	att := NewID()
	must(admin.c.Upsert(ctx, "attendance", att, map[string]any{"exchangeId": e.e1, "date": e.date(12), "status": "SICK"}))
	waitFor(t, 10*time.Second, "the teacher's tablet gets the attendance", func() bool {
		r, err := a.c.Get(context.Background(), "attendance", att)
		return err == nil && r.Fields["status"] == "SICK" && r.Version != ""
	})
	waitFor(t, 10*time.Second, "the admin's outbox empties", func() bool {
		return len(must(admin.c.Pending(context.Background()))) == 0
	})
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
	}
	// Catch up with whatever the last pokes announced, and compare.
	noErr(t, a.c.Sync(context.Background()))
	noErr(t, admin.c.Sync(context.Background()))
	if drops.Load() < 2 {
		t.Fatalf("pushes=%d, want the dropped one resent", drops.Load())
	}
	var n int
	if err := e.db.Get(&n, `SELECT count(*) FROM audit_log WHERE record_id = $1`, id); err != nil || n != 1 {
		t.Fatalf("audit rows=%d err=%v", n, err)
	}
	e.assertReplicaMatches(a)
	e.assertReplicaMatches(admin)
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
