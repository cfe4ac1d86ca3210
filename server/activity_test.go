package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// The two GraphQL websocket subprotocols gqlgen speaks.
const (
	transportWS = "graphql-transport-ws"
	legacyWS    = "graphql-ws"
)

const activityQuery = `subscription($d: ID, $s: ID) { syncActivity(districtId: $d, schoolId: $s) {
	kind at node deviceId deviceName userId username batchId ops applied merged rejected duplicates conflicts
	records more rejectionId conflictIds entity recordId code fields dropped } }`

// activity is a SyncActivity as the subscription delivers it.
type activity struct {
	Kind, At, Node                                  string
	DeviceID, DeviceName, UserID, Username, BatchID *string
	Ops, Applied, Merged, Rejected, Duplicates      *int
	Conflicts, Records, Dropped                     *int
	More                                            *bool
	RejectionID, Entity, RecordID, Code             *string
	ConflictIDs                                     []string `json:"conflictIds"`
	Fields                                          []string
}

// watcher is an administrator's browser watching sync activity over a real websocket.
type watcher struct {
	t     *testing.T
	name  string
	ws    *websocket.Conn
	proto string
}

// dialGraphQL opens the GraphQL websocket with a subprotocol and an Origin header.
func dialGraphQL(m *Main, proto, origin string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 5 * time.Second}
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return d.Dial("ws://"+m.Addr()+"/graphql", h)
}

// initGraphQL sends connection_init with payload and returns the first message that
// is not a keepalive (or the read error: a close).
func initGraphQL(t *testing.T, ws *websocket.Conn, payload map[string]any) (map[string]any, error) {
	t.Helper()
	if err := ws.WriteJSON(map[string]any{"type": "connection_init", "payload": payload}); err != nil {
		t.Fatal(err)
	}
	for {
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var msg map[string]any
		if err := ws.ReadJSON(&msg); err != nil {
			return nil, err
		}
		if msg["type"] != "ka" {
			return msg, nil
		}
	}
}

// watch signs in over the websocket as the holder of token and subscribes to
// syncActivity with vars. Wait for the subscription with waitWatchers before causing
// activity: the protocols do not acknowledge a subscribe.
func watch(t *testing.T, m *Main, name, proto, token string, vars map[string]any) *watcher {
	t.Helper()
	ws, _, err := dialGraphQL(m, proto, "http://"+m.Addr())
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	t.Cleanup(func() { ws.Close() })
	if got, want := ws.Subprotocol(), proto; got != want {
		t.Fatalf("%s: subprotocol %q, want %q", name, got, want)
	}
	msg, err := initGraphQL(t, ws, map[string]any{"Authorization": "Bearer " + token})
	if err != nil || msg["type"] != "connection_ack" {
		t.Fatalf("%s: connection_init answered %v, %v", name, msg, err)
	}
	start := "subscribe"
	if proto == legacyWS {
		start = "start"
	}
	if err := ws.WriteJSON(map[string]any{"type": start, "id": "1", "payload": map[string]any{"query": activityQuery, "variables": vars}}); err != nil {
		t.Fatal(err)
	}
	return &watcher{t: t, name: name, ws: ws, proto: proto}
}

// waitWatchers waits until n subscriptions are registered with m's hub.
func waitWatchers(t *testing.T, m *Main, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for m.Hub.ActivityLen() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions, want %d", m.Hub.ActivityLen(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// read returns the next event, or nil when none comes within wait.
func (w *watcher) read(wait time.Duration) *activity {
	w.t.Helper()
	for {
		_ = w.ws.SetReadDeadline(time.Now().Add(wait))
		var msg struct {
			Type    string          `json:"type"`
			ID      string          `json:"id"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := w.ws.ReadJSON(&msg); err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			w.t.Fatalf("%s: read: %v", w.name, err)
		}
		switch msg.Type {
		case "ka", "pong":
			continue
		case "ping":
			_ = w.ws.WriteJSON(map[string]any{"type": "pong"})
			continue
		case "next", "data":
		default:
			w.t.Fatalf("%s: unexpected %s: %s", w.name, msg.Type, msg.Payload)
		}
		var p struct {
			Data struct {
				SyncActivity activity `json:"syncActivity"`
			}
			Errors []map[string]any
		}
		if err := json.Unmarshal(msg.Payload, &p); err != nil || len(p.Errors) > 0 {
			w.t.Fatalf("%s: payload %s: %v", w.name, msg.Payload, err)
		}
		return &p.Data.SyncActivity
	}
}

// next returns the next event, which must be of kind.
func (w *watcher) next(kind string) *activity {
	w.t.Helper()
	a := w.read(10 * time.Second)
	if a == nil {
		w.t.Fatalf("%s: no event, want %s", w.name, kind)
	}
	if a.Kind != kind {
		w.t.Fatalf("%s: got %s %+v, want %s", w.name, a.Kind, a, kind)
	}
	return a
}

// none checks that no event arrives for a while.
func (w *watcher) none() {
	w.t.Helper()
	if a := w.read(300 * time.Millisecond); a != nil {
		w.t.Fatalf("%s: got %s for device %v, want nothing", w.name, a.Kind, deref(a.DeviceID))
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func registerDevice(t *testing.T, c *client, name string) (id, token string) {
	t.Helper()
	var reg struct {
		RegisterDevice struct {
			Token  string
			Device struct{ ID string }
		}
	}
	c.must(`mutation($n: String!) { registerDevice(name: $n) { token device { id } } }`, map[string]any{"n": name}, &reg)
	return reg.RegisterDevice.Device.ID, reg.RegisterDevice.Token
}

// TestSyncActivitySubscription follows a tablet's session through the eyes of the
// administrators watching over GraphQL websockets: connect, a push with a rejected
// op, a push that loses a field, a pull, disconnect, revocation. Each watcher sees
// exactly the devices of its scope, narrowed by its arguments.
func TestSyncActivitySubscription(t *testing.T) {
	m := MustRunMain(t)
	admin := login(t, m, "admin", adminPassword)
	w := newWorld(t, admin)
	c := newCast(t, m, w)
	wangDev, wangToken := registerDevice(t, c.wang, "平板")
	liDev, liToken := registerDevice(t, c.li, "李强的平板")

	district := watch(t, m, "district admin", transportWS, c.district.token, nil)
	rural := watch(t, m, "rural school admin (legacy protocol)", legacyWS, c.ruralAdmin.token, nil)
	far := watch(t, m, "far school admin", transportWS, c.farAdmin.token, nil)
	auditor := watch(t, m, "auditor", transportWS, c.auditor.token, nil)
	narrowed := watch(t, m, "admin narrowed to the rural school", transportWS, admin.token, map[string]any{"s": w.rural})
	notWidened := watch(t, m, "rural admin asking for the far school", legacyWS, c.ruralAdmin.token, map[string]any{"s": w.farSchool})
	waitWatchers(t, m, 6)

	// Wang's tablet connects: the admins of the district and of the school of his
	// exchange see it, with the device and the user.
	tab := dialTablet(t, m, wangDev, wangToken)
	for _, wt := range []*watcher{district, rural, auditor, narrowed} {
		a := wt.next("DEVICE_CONNECTED")
		if deref(a.DeviceID) != wangDev || deref(a.DeviceName) != "平板" || deref(a.Username) != "wangfang" || a.Node == "" || a.At == "" {
			t.Fatalf("%s: connect=%+v", wt.name, a)
		}
	}

	// A push with a good op and one rejected: PUSH with its counts, then REJECTION
	// naming the stored rejection.
	clock := hlc.NewClock(wangDev)
	lessonID, badID := uuid.NewString(), uuid.NewString()
	tab.send(map[string]any{"type": "push", "batchId": "b-1", "ops": []any{
		map[string]any{"opId": uuid.NewString(), "kind": "upsert", "entity": "lesson", "id": lessonID, "hlc": clock.Now(),
			"fields": map[string]any{"exchangeId": w.exchange, "date": "2026-10-12", "period": 3, "subject": "数学", "kind": "DEMONSTRATION", "topic": "分数"}},
		map[string]any{"opId": uuid.NewString(), "kind": "upsert", "entity": "lesson", "id": badID, "hlc": clock.Now(),
			"fields": map[string]any{"exchangeId": w.exchange, "date": "2026-10-13", "period": 13, "subject": "数学", "kind": "REGULAR"}},
	}})
	tab.recv("ack")
	var rejections struct{ SyncRejections []struct{ ID string } }
	c.district.must(`{ syncRejections(status: "PENDING") { id } }`, nil, &rejections)
	if len(rejections.SyncRejections) != 1 {
		t.Fatalf("rejections=%+v", rejections)
	}
	for _, wt := range []*watcher{district, narrowed} {
		p := wt.next("PUSH")
		if deref(p.BatchID) != "b-1" || deref(p.Ops) != 2 || deref(p.Applied) != 1 || deref(p.Rejected) != 1 ||
			deref(p.Merged) != 0 || deref(p.Duplicates) != 0 || deref(p.Conflicts) != 0 || deref(p.DeviceID) != wangDev {
			t.Fatalf("%s: push=%+v", wt.name, p)
		}
		r := wt.next("REJECTION")
		if deref(r.RejectionID) != rejections.SyncRejections[0].ID || deref(r.Code) != "validation_failed" ||
			deref(r.Entity) != "lesson" || deref(r.RecordID) != badID || !slices.Equal(r.Fields, []string{"period"}) || deref(r.BatchID) != "b-1" {
			t.Fatalf("%s: rejection=%+v, stored %s", wt.name, r, rejections.SyncRejections[0].ID)
		}
	}
	if p := rural.next("PUSH"); deref(p.Rejected) != 1 {
		t.Fatalf("rural: push=%+v", p)
	}
	rural.next("REJECTION")

	// A stale edit loses its field: PUSH counts a conflict, CONFLICT names it.
	stale := hlc.Timestamp{Wall: 1_700_000_000_000, Node: wangDev}.String()
	staleOp := uuid.NewString()
	tab.send(map[string]any{"type": "push", "batchId": "b-2", "ops": []any{map[string]any{
		"opId": staleOp, "kind": "upsert", "entity": "lesson", "id": lessonID, "hlc": stale, "fields": map[string]any{"topic": "旧的"}}}})
	tab.recv("ack")
	var conflicts struct{ SyncConflicts []struct{ ID string } }
	c.district.must(`query($id: ID!) { syncConflicts(recordId: $id) { id } }`, map[string]any{"id": lessonID}, &conflicts)
	if len(conflicts.SyncConflicts) != 1 {
		t.Fatalf("conflicts=%+v", conflicts)
	}
	if p := district.next("PUSH"); deref(p.BatchID) != "b-2" || deref(p.Ops) != 1 || deref(p.Applied) != 1 || deref(p.Conflicts) != 1 {
		t.Fatalf("push=%+v", p)
	}
	cf := district.next("CONFLICT")
	if !slices.Equal(cf.ConflictIDs, []string{conflicts.SyncConflicts[0].ID}) || deref(cf.RecordID) != lessonID ||
		!slices.Equal(cf.Fields, []string{"topic"}) || deref(cf.Entity) != "lesson" {
		t.Fatalf("conflict=%+v, recorded %+v", cf, conflicts)
	}

	// A pull: PULL with the records sent.
	records := tab.pullAll()
	if p := district.next("PULL"); deref(p.Records) != len(records) || deref(p.More) || deref(p.Records) == 0 {
		t.Fatalf("pull=%+v, pulled %d", p, len(records))
	}

	// Li's tablet, at a school of another district: only its school's admin sees it,
	// and it is the first thing that admin sees.
	dialTablet(t, m, liDev, liToken)
	if a := far.next("DEVICE_CONNECTED"); deref(a.DeviceID) != liDev || deref(a.Username) != "liqiang" {
		t.Fatalf("far: connect=%+v", a)
	}

	// Wang's tablet goes away, and the district admin revokes it.
	tab.ws.Close()
	if a := district.next("DEVICE_DISCONNECTED"); deref(a.DeviceID) != wangDev {
		t.Fatalf("disconnect=%+v", a)
	}
	c.district.must(`mutation($id: ID!) { revokeDevice(id: $id) { id } }`, map[string]any{"id": wangDev}, nil)
	if a := district.next("DEVICE_REVOKED"); deref(a.DeviceID) != wangDev || deref(a.DeviceName) != "平板" {
		t.Fatalf("revoked=%+v", a)
	}
	// The narrowed admin saw Wang's session, and nothing of Li's, in order.
	for _, kind := range []string{"PUSH", "CONFLICT", "PULL", "DEVICE_DISCONNECTED", "DEVICE_REVOKED"} {
		if a := narrowed.next(kind); deref(a.DeviceID) != wangDev {
			t.Fatalf("narrowed: %s of %v", kind, deref(a.DeviceID))
		}
	}
	// Arguments narrow, never widen: the rural admin asking for the far school sees
	// neither school's devices.
	notWidened.none()
	far.none()
}

// TestSyncActivityRefusals checks who may not open the subscription's websocket: no
// credentials, a bad token, a teacher (close 4403 on both protocols), a page of
// another origin (403 before the upgrade).
func TestSyncActivityRefusals(t *testing.T) {
	m := MustRunMain(t)
	admin := login(t, m, "admin", adminPassword)
	w := newWorld(t, admin)
	c := newCast(t, m, w)
	for _, tt := range []struct {
		name    string
		proto   string
		payload map[string]any
	}{
		{"no credentials", transportWS, nil},
		{"bad token", transportWS, map[string]any{"Authorization": "Bearer not-a-token"}},
		{"teacher", transportWS, map[string]any{"Authorization": "Bearer " + c.wang.token}},
		{"teacher, authToken", transportWS, map[string]any{"authToken": c.wang.token}},
		{"teacher, legacy protocol", legacyWS, map[string]any{"Authorization": "Bearer " + c.wang.token}},
		{"no credentials, legacy protocol", legacyWS, map[string]any{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ws, _, err := dialGraphQL(m, tt.proto, "")
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			msg, err := initGraphQL(t, ws, tt.payload)
			if tt.proto == legacyWS && err == nil {
				// graphql-ws says why before closing.
				if msg["type"] != "connection_error" {
					t.Fatalf("first message %v", msg)
				}
				_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, _, err = ws.ReadMessage()
			}
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != 4403 || !strings.HasPrefix(ce.Text, "Forbidden: ") {
				t.Fatalf("got %v, %v; want close 4403", msg, err)
			}
			t.Logf("closed: %d %s", ce.Code, ce.Text)
		})
	}
	t.Run("auditor with authToken", func(t *testing.T) {
		ws, _, err := dialGraphQL(m, transportWS, "")
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if msg, err := initGraphQL(t, ws, map[string]any{"authToken": c.auditor.token}); err != nil || msg["type"] != "connection_ack" {
			t.Fatalf("got %v, %v", msg, err)
		}
	})
	t.Run("other origin", func(t *testing.T) {
		_, resp, err := dialGraphQL(m, transportWS, "https://evil.example.org")
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("dial from another origin: %v, %v", resp, err)
		}
	})
	t.Run("configured origin", func(t *testing.T) {
		m2 := runReplica(t, pgtest.NewDSN(t), "server-origins", "admin.example.org, https://*.jiaoliu.example")
		for _, origin := range []string{"http://admin.example.org", "https://tablets.jiaoliu.example"} {
			ws, _, err := dialGraphQL(m2, transportWS, origin)
			if err != nil {
				t.Fatalf("%s: %v", origin, err)
			}
			ws.Close()
		}
		if _, resp, err := dialGraphQL(m2, transportWS, "http://tablets.jiaoliu.example"); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a pattern with a scheme allowed another scheme: %v", err)
		}
	})
}

// runReplica starts the whole program on the database at dsn as replica node.
func runReplica(tb testing.TB, dsn, node, origins string) *Main {
	tb.Helper()
	m := NewMain()
	env := map[string]string{"DATABASE_URL": dsn, "ADDR": "127.0.0.1:0", "DEMO": "false", "ADMIN_PASSWORD": adminPassword,
		"LOG_LEVEL": "error", "NODE_ID": node, "ALLOWED_ORIGINS": origins}
	if err := m.ParseFlags(nil, func(k string) string { return env[k] }); err != nil {
		tb.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = m.Close() })
	return m
}

// TestSyncActivityAcrossReplicas checks that activity on one replica reaches the
// watchers of another replica of the same database.
func TestSyncActivityAcrossReplicas(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	a, b := runReplica(t, dsn, "server-a", ""), runReplica(t, dsn, "server-b", "")
	w := newWorld(t, login(t, a, "admin", adminPassword))
	c := newCast(t, a, w)
	dev, token := registerDevice(t, c.wang, "平板")

	onB := watch(t, b, "district admin on B", transportWS, login(t, b, "xinmi", "password-1").token, nil)
	onA := watch(t, a, "district admin on A", transportWS, c.district.token, nil)
	waitWatchers(t, b, 1)
	waitWatchers(t, a, 1)

	tab := dialTablet(t, a, dev, token)
	tab.send(map[string]any{"type": "push", "batchId": "b-1", "ops": []any{map[string]any{
		"opId": uuid.NewString(), "kind": "upsert", "entity": "attendance", "id": uuid.NewString(), "hlc": hlc.NewClock(dev).Now(),
		"fields": map[string]any{"exchangeId": w.exchange, "date": "2026-10-12", "status": "PRESENT"}}}})
	tab.recv("ack")
	for _, wt := range []*watcher{onB, onA} {
		if ev := wt.next("DEVICE_CONNECTED"); deref(ev.DeviceID) != dev || ev.Node != "server-a" {
			t.Fatalf("%s: connect=%+v", wt.name, ev)
		}
		if ev := wt.next("PUSH"); deref(ev.Applied) != 1 || ev.Node != "server-a" {
			t.Fatalf("%s: push=%+v", wt.name, ev)
		}
	}
	// And the other way round: B's activity reaches A.
	dialTablet(t, b, dev, token)
	if ev := onA.next("DEVICE_CONNECTED"); ev.Node != "server-b" {
		t.Fatalf("connect on B seen on A: %+v", ev)
	}
}
