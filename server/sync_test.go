package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// tablet is a raw protocol session over the program's real websocket.
type tablet struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialTablet(t *testing.T, m *Main, deviceID, token string) *tablet {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+m.Addr()+"/sync", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	tb := &tablet{t: t, ws: ws}
	tb.send(map[string]any{"type": "hello", "protocol": 1, "deviceId": deviceID, "token": token, "schemaVersion": 1})
	if msg := tb.recv("welcome"); msg["maxBatch"] == nil {
		t.Fatalf("welcome=%v", msg)
	}
	return tb
}

func (tb *tablet) send(v any) {
	tb.t.Helper()
	if err := tb.ws.WriteJSON(v); err != nil {
		tb.t.Fatal(err)
	}
}

// recv returns the next message of the given type, skipping pokes.
func (tb *tablet) recv(typ string) map[string]any {
	tb.t.Helper()
	for {
		_ = tb.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, raw, err := tb.ws.ReadMessage()
		if err != nil {
			tb.t.Fatalf("waiting for %s: %v", typ, err)
		}
		var msg map[string]any
		if err := json.Unmarshal(raw, &msg); err != nil {
			tb.t.Fatal(err)
		}
		if msg["type"] == typ {
			return msg
		}
		if msg["type"] == "error" {
			tb.t.Fatalf("waiting for %s: %s", typ, raw)
		}
	}
}

// pullAll follows cursors until more is false and returns the records by id.
func (tb *tablet) pullAll() map[string]map[string]any {
	tb.t.Helper()
	out := map[string]map[string]any{}
	cursor := ""
	for {
		tb.send(map[string]any{"type": "pull", "cursor": cursor, "limit": 500})
		ch := tb.recv("changes")
		for _, r := range ch["records"].([]any) {
			rec := r.(map[string]any)
			out[rec["id"].(string)] = rec
		}
		cursor, _ = ch["cursor"].(string)
		if more, _ := ch["more"].(bool); !more {
			return out
		}
	}
}

func TestTabletAndWebShareOneWritePath(t *testing.T) {
	m := MustRunMain(t)
	admin := login(t, m, "admin", adminPassword)
	w := newWorld(t, admin)
	c := newCast(t, m, w)
	var reg struct {
		RegisterDevice struct {
			Token  string
			Device struct{ ID string }
		}
	}
	c.wang.must(`mutation { registerDevice(name: "平板") { token device { id } } }`, nil, &reg)
	tab := dialTablet(t, m, reg.RegisterDevice.Device.ID, reg.RegisterDevice.Token)

	// The tablet logs a lesson offline and pushes it.
	clock := hlc.NewClock(reg.RegisterDevice.Device.ID)
	lessonID := uuid.NewString()
	tab.send(map[string]any{"type": "push", "batchId": "b-1", "ops": []any{map[string]any{
		"opId": uuid.NewString(), "kind": "upsert", "entity": "lesson", "id": lessonID, "hlc": clock.Now(),
		"fields": map[string]any{"exchangeId": w.exchange, "date": "2026-10-12", "period": 3, "subject": "数学", "kind": "DEMONSTRATION", "topic": "分数"}}}})
	ack := tab.recv("ack")
	if r := ack["results"].([]any)[0].(map[string]any); r["status"] != "applied" {
		t.Fatalf("ack=%v", ack)
	}

	// The receiving school's admin sees it on the web and corrects the topic there.
	var got struct {
		Lesson struct{ Topic, DeviceID string }
	}
	c.ruralAdmin.must(`query($id: ID!) { lesson(id: $id) { topic deviceId } }`, map[string]any{"id": lessonID}, &got)
	if got.Lesson.Topic != "分数" || got.Lesson.DeviceID != reg.RegisterDevice.Device.ID {
		t.Fatalf("lesson on the web=%+v", got)
	}
	c.ruralAdmin.must(`mutation($id: ID!) { updateLesson(id: $id, input: {topic: "分数的初步认识"}) { id } }`, map[string]any{"id": lessonID}, nil)

	// The tablet is poked and pulls the admin's edit; its own stale edit, stamped
	// before the admin's, loses that field and is recorded as a conflict.
	tab.recv("poke")
	records := tab.pullAll()
	rec := records[lessonID]
	if rec == nil || rec["fields"].(map[string]any)["topic"] != "分数的初步认识" {
		t.Fatalf("pulled lesson=%v", rec)
	}
	if records[w.exchange] == nil || records[w.rural] == nil {
		t.Fatalf("the teacher's exchange and schools were not pulled: %d records", len(records))
	}
	stale := hlc.Timestamp{Wall: 1_700_000_000_000, Node: reg.RegisterDevice.Device.ID}.String()
	tab.send(map[string]any{"type": "push", "batchId": "b-2", "ops": []any{map[string]any{
		"opId": uuid.NewString(), "kind": "upsert", "entity": "lesson", "id": lessonID, "hlc": stale,
		"fields": map[string]any{"topic": "旧的", "notes": "带教具"}}}})
	r := tab.recv("ack")["results"].([]any)[0].(map[string]any)
	if r["status"] != "applied" || len(r["lost"].([]any)) != 1 {
		t.Fatalf("stale push result=%v", r)
	}
	var after struct{ Lesson struct{ Topic, Notes string } }
	c.ruralAdmin.must(`query($id: ID!) { lesson(id: $id) { topic notes } }`, map[string]any{"id": lessonID}, &after)
	if after.Lesson.Topic != "分数的初步认识" || after.Lesson.Notes != "带教具" {
		t.Fatalf("merged lesson=%+v", after)
	}
	var devices struct {
		Devices []struct{ LastSyncAt *string }
	}
	c.district.must(`{ devices { lastSyncAt } }`, nil, &devices)
	if len(devices.Devices) != 1 || devices.Devices[0].LastSyncAt == nil {
		t.Fatalf("devices=%+v", devices)
	}
}
