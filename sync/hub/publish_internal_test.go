package hub

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/jiaoliu/jiaoliu"
)

// TestEncodeFitsANotification checks that an event too large for pg_notify is cut to
// fit, dropping names and lists first and scopes last (which only narrows who sees it).
func TestEncodeFitsANotification(t *testing.T) {
	p := NewPublisher(nil, "n", nil)
	ev := Event{ID: uuid.NewString(), Kind: KindConflict, DeviceName: strings.Repeat("长", 100), Fields: []string{"topic"}}
	if b := p.encode(&ev); !strings.Contains(b, "topic") {
		t.Fatalf("a small event was shortened: %s", b)
	}
	for i := 0; i < 400; i++ {
		ev.Scopes = append(ev.Scopes, "s:"+uuid.NewString())
	}
	b := p.encode(&ev)
	if len(b) > MaxPayloadBytes {
		t.Fatalf("payload of %d bytes", len(b))
	}
	var got Event
	if err := json.Unmarshal([]byte(b), &got); err != nil {
		t.Fatal(err)
	}
	if got.DeviceName != "" || got.Fields != nil || len(got.Scopes) == 0 || len(got.Scopes) >= 400 || got.Scopes[0] != ev.Scopes[0] {
		t.Fatalf("shortened event: name %q, fields %v, %d scopes", got.DeviceName, got.Fields, len(got.Scopes))
	}
}

// countingStore answers the publisher's reads and counts the device lookups.
type countingStore struct{ lookups int }

func (c *countingStore) WatchedDevices(_ context.Context, ids []string) (map[string]jiaoliu.WatchedDevice, error) {
	c.lookups++
	out := map[string]jiaoliu.WatchedDevice{}
	for _, id := range ids {
		out[id] = jiaoliu.WatchedDevice{Name: "平板", Scopes: []string{"s:x"}}
	}
	return out, nil
}
func (c *countingStore) RejectionIDs(context.Context, []string) (map[string][]string, error) {
	return nil, nil
}
func (c *countingStore) ConflictIDs(context.Context, []string, []string, []string) (map[string][]string, error) {
	return nil, nil
}
func (c *countingStore) Notify(context.Context, string, []string) error { return nil }

// TestPushesReuseTheDeviceUnlessTheyMoveItsScope: a connect reads the device afresh; a
// push of lessons reuses that lookup; a push of an exchange (which may move the
// teacher's schools, so who may watch) reads it again.
func TestPushesReuseTheDeviceUnlessTheyMoveItsScope(t *testing.T) {
	store := &countingStore{}
	p := NewPublisher(store, "n", nil)
	device := uuid.NewString()
	actor := &jiaoliu.Actor{UserID: uuid.NewString(), Role: jiaoliu.RoleTeacher, DeviceID: device}
	handle := func() Event {
		t.Helper()
		a := <-p.queue
		p.flush(context.Background(), []activity{a})
		return a.ev
	}
	push := func(entity string) {
		t.Helper()
		op := jiaoliu.Op{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, Entity: entity, ID: uuid.NewString()}
		p.Pushed(actor, "b", []jiaoliu.Op{op}, []jiaoliu.OpResult{{OpID: op.OpID, Status: jiaoliu.StatusApplied}})
		handle()
	}
	p.Connected(device)
	handle()
	for range 3 {
		push("lesson")
		push("attendance")
	}
	if store.lookups != 1 {
		t.Fatalf("%d device lookups for a connect and 6 pushes of lessons and attendance, want 1", store.lookups)
	}
	for i, entity := range []string{"exchange", "teacher", "school"} {
		push(entity)
		if store.lookups != 2+i {
			t.Fatalf("a push of a %s: %d lookups, want %d", entity, store.lookups, 2+i)
		}
	}
}
