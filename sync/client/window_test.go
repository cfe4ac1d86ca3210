package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	syncserver "github.com/jiaoliu/jiaoliu/sync/server"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// TestPushWindow: over a WebSocket the client sends its next batch before the last
// one's ack (Config.PushWindow), but never an op that depends on a natural-key record
// of a batch still in flight: that op waits for the ack, which may rename the record.
// The server here takes batches of 2 (its welcome's maxBatch).
func TestPushWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(s *syncserver.Server) { s.MaxBatch = 2 })
	for _, tc := range []struct {
		window int
		want   string // sends (s) and acks (a) of the pushes, in order
	}{
		// b1 [L1 L2], b2 [L3 L4] sent together; the edit of L3 waits for b2's ack,
		// then goes with L5 (b3), and L6 follows at once (b4).
		{0, "s1 s2 a1 a2 s3 s4 a3 a4"},
		{1, "s1 a1 s2 a2 s3 a3 s4 a4"},
	} {
		t.Run(fmt.Sprintf("window=%d", tc.window), func(t *testing.T) {
			e := e.with(t)
			e.year = 2040 + tc.window
			ctx := context.Background()
			a := e.newDevice("a", e.userA, func(c *Config) { c.PushWindow = tc.window })
			noErr(t, a.c.Sync(ctx))
			// The server already has L3's lesson (exchange, date, period) under
			// another id: L3 is merged into it, and the edit must follow.
			twin := NewID()
			e.apply(sysOp("lesson", twin, lessonOf(e.e1, e.date(20), 3)))
			ids := []string{NewID(), NewID(), NewID(), NewID(), NewID(), NewID()}
			var edit string
			for i, id := range ids {
				must(a.c.Upsert(ctx, "lesson", id, lessonOf(e.e1, e.date(20), i+1)))
				if i == 3 {
					edit = must(a.c.Upsert(ctx, "lesson", ids[2], map[string]any{"topic": "分数"}))
				}
			}
			var got []string
			batches := map[string]int{} // batchId → its number in the order sent
			var sent [][]string
			a.c.hooks.afterSend = func(m wire.Message) error {
				if p, ok := m.(*wire.Push); ok {
					batches[p.BatchID] = len(batches) + 1
					got = append(got, fmt.Sprintf("s%d", batches[p.BatchID]))
					sent = append(sent, opIDsOf(p))
				}
				return nil
			}
			a.c.hooks.beforeAckApplied = func(ack *wire.Ack) error {
				got = append(got, fmt.Sprintf("a%d", batches[ack.BatchID]))
				return nil
			}
			noErr(t, a.c.Sync(ctx))
			if s := strings.Join(got, " "); s != tc.want {
				t.Errorf("pushes and acks %q, want %q", s, tc.want)
			}
			if len(sent) == 4 && !slices.Contains(sent[2], edit) {
				t.Errorf("the edit of the merged lesson went in %v, want the third batch", sent)
			}
			if rej := must(a.c.Rejections(ctx)); len(rej) != 0 {
				t.Fatalf("rejections %+v", rej)
			}
			res := must(a.c.Results(ctx))
			var merged, edited bool
			for _, r := range res {
				merged = merged || r.Status == jiaoliu.StatusMerged && r.CanonicalID == twin
				edited = edited || r.OpID == edit && r.Status == jiaoliu.StatusApplied && r.ID == twin
			}
			if !merged || !edited {
				t.Fatalf("results %+v: want L3 merged into %s and the edit applied to it", res, twin)
			}
			if l := must(a.c.Get(ctx, "lesson", twin)); l.Fields["topic"] != "分数" {
				t.Fatalf("merged lesson %+v, want the edit's topic", l.Fields)
			}
			if p := must(a.c.Pending(ctx)); len(p) != 0 {
				t.Fatalf("%d ops still pending", len(p))
			}
			e.assertReplicaMatches(a)
		})
	}
}

// TestPushWindowAfterAFailedBatch: the server applies a batch even when the one before
// it failed, so a batch in flight behind another must not need it applied first. Here
// the first batch of two is refused (batch_too_large: the test adds an op to it on the
// wire) while the second is applied; the second must not carry the edit of the research
// activity the first creates (a record without a natural key), which, applied first,
// would create the activity from one field and be rejected.
func TestPushWindowAfterAFailedBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(s *syncserver.Server) { s.MaxBatch = 2 })
	ctx := context.Background()
	a := e.newDevice("a", e.userA)
	noErr(t, a.c.Sync(ctx))
	activity := NewID()
	must(a.c.Upsert(ctx, "researchActivity", activity, map[string]any{
		"exchangeId": e.e1, "date": e.date(21), "kind": "JOINT_PREPARATION", "topic": "分数的意义"}))
	must(a.c.Upsert(ctx, "lesson", NewID(), lessonOf(e.e1, e.date(21), 1)))
	edit := must(a.c.Upsert(ctx, "researchActivity", activity, map[string]any{"notes": "改在周三"}))
	must(a.c.Upsert(ctx, "lesson", NewID(), lessonOf(e.e1, e.date(21), 2)))

	var sent [][]string // the opIds of each push, in the order sent
	pushes := 0
	a.c.hooks.beforeSend = func(m wire.Message) wire.Message {
		p, ok := m.(*wire.Push)
		if !ok {
			return m
		}
		pushes++
		sent = append(sent, opIDsOf(p))
		if pushes > 1 {
			return m
		}
		// One op over the server's maxBatch: the whole push is refused.
		over := *p
		over.Ops = append(slices.Clip(p.Ops), p.Ops[0])
		return &over
	}
	// Once the first push is refused, the client sends its ops again in smaller
	// batches; with another push in flight it reconnects first (the sync fails).
	_ = a.c.Sync(ctx)
	if len(sent) < 1 || len(sent[0]) != 2 || slices.Contains(sent[0], edit) {
		t.Fatalf("pushes %v: want a first push of the two creates", sent)
	}
	if len(sent) > 1 && slices.Contains(sent[1], edit) {
		t.Errorf("the edit went out in %v while the batch creating its record was in flight", sent)
	}
	a.c.hooks.beforeSend = nil
	noErr(t, a.c.Sync(ctx))
	if rej := must(a.c.Rejections(ctx)); len(rej) != 0 {
		t.Fatalf("rejections %+v", rej)
	}
	var notes string
	if err := e.db.GetContext(ctx, &notes, `SELECT notes FROM research_activities WHERE id = $1`, activity); err != nil {
		t.Fatal(err)
	}
	if notes != "改在周三" {
		t.Fatalf("the activity's notes on the server are %q, want the edit's", notes)
	}
	if p := must(a.c.Pending(ctx)); len(p) != 0 {
		t.Fatalf("%d ops still pending", len(p))
	}
	e.assertReplicaMatches(a)
}

// TestOneBatchFollowsAMerge: a server that follows merges (welcome.followsMerges) lets a
// batch carry a new lesson, its edit and an observation of it together; when the server
// merges the lesson into a twin, it applies the edit to the twin and points the
// observation at it, and the device re-keys its records from the ack.
func TestOneBatchFollowsAMerge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.newDevice("a", e.userA)
	noErr(t, a.c.Sync(ctx))
	twin := NewID()
	e.apply(sysOp("lesson", twin, lessonOf(e.e1, e.date(22), 2)))
	mine, obs := NewID(), NewID()
	must(a.c.Upsert(ctx, "lesson", mine, lessonOf(e.e1, e.date(22), 2)))
	must(a.c.Upsert(ctx, "lesson", mine, map[string]any{"topic": "小数的意义"}))
	must(a.c.Upsert(ctx, "observation", obs, map[string]any{"observedTeacherId": e.teacherB, "date": e.date(22), "lessonId": mine}))
	must(a.c.Upsert(ctx, "lesson", NewID(), lessonOf(e.e1, e.date(22), 3)))
	var pushes []int
	a.c.hooks.afterSend = func(m wire.Message) error {
		if p, ok := m.(*wire.Push); ok {
			pushes = append(pushes, len(p.Ops))
		}
		return nil
	}
	noErr(t, a.c.Sync(ctx))
	if !slices.Equal(pushes, []int{4}) {
		t.Errorf("pushes of %v ops, want one of 4", pushes)
	}
	if rej := must(a.c.Rejections(ctx)); len(rej) != 0 {
		t.Fatalf("rejections %+v", rej)
	}
	if l := must(a.c.Get(ctx, "lesson", twin)); l.Fields["topic"] != "小数的意义" || l.Pending != 0 {
		t.Fatalf("twin in the replica %+v, want the edit's topic", l)
	}
	if o := must(a.c.Get(ctx, "observation", obs)); o.Fields["lessonId"] != twin {
		t.Fatalf("observation %+v, want it on the twin %s", o.Fields, twin)
	}
	if _, err := a.c.Get(ctx, "lesson", mine); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the merged id is still in the replica: %v", err)
	}
	if p := must(a.c.Pending(ctx)); len(p) != 0 {
		t.Fatalf("%d ops still pending", len(p))
	}
	e.assertReplicaMatches(a)
}

// opIDsOf lists the opIds of a push, in order.
func opIDsOf(p *wire.Push) []string {
	ids := make([]string, len(p.Ops))
	for i, op := range p.Ops {
		ids[i] = op.OpID
	}
	return ids
}
