package graph

import (
	"context"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu/graph/model"
	"github.com/jiaoliu/jiaoliu/sync/hub"
)

// TestForwardActivityReportsDrops checks what a slow watcher sees: the events that
// waited for it, then one EVENTS_DROPPED counting those it missed; and after lost
// notifications an EVENTS_DROPPED without a count.
func TestForwardActivityReportsDrops(t *testing.T) {
	h := hub.New(nil)
	sub := h.SubscribeActivity(nil, nil, 2)
	for i := 0; i < 5; i++ {
		h.Deliver(hub.Event{Kind: hub.KindPull, DeviceID: "d", Records: i})
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan *model.SyncActivity)
	go (&Resolver{}).forwardActivity(ctx, sub, out, "")
	next := func() *model.SyncActivity {
		t.Helper()
		select {
		case m, ok := <-out:
			if !ok {
				t.Fatal("closed")
			}
			return m
		case <-time.After(5 * time.Second):
			t.Fatal("nothing forwarded")
		}
		return nil
	}
	for i := 0; i < 2; i++ {
		if m := next(); m.Kind != model.SyncActivityKindPull || *m.Records != i || m.Dropped != nil {
			t.Fatalf("event %d=%+v", i, m)
		}
	}
	if m := next(); m.Kind != model.SyncActivityKindEventsDropped || m.Dropped == nil || *m.Dropped != 3 {
		t.Fatalf("want EVENTS_DROPPED of 3, got %+v", m)
	}
	h.Lost()
	if m := next(); m.Kind != model.SyncActivityKindEventsDropped || m.Dropped != nil {
		t.Fatalf("want EVENTS_DROPPED without a count, got %+v", m)
	}
	// A kind from a newer replica is skipped; the next one comes through.
	h.Deliver(hub.Event{Kind: "SOMETHING_NEW"})
	h.Deliver(hub.Event{Kind: hub.KindPush, BatchID: "b", Ops: 2, Applied: 2})
	if m := next(); m.Kind != model.SyncActivityKindPush || *m.Ops != 2 || *m.Rejected != 0 || m.Records != nil {
		t.Fatalf("push=%+v", m)
	}
	cancel()
	select {
	case _, ok := <-out:
		if ok {
			t.Fatal("an event after the end")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the channel was not closed")
	}
	if h.ActivityLen() != 0 {
		t.Fatal("the subscription outlived the operation")
	}
}
