package syncserver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// gatedStore applies a batch only when the test lets it through, and records the
// batches applied (by the opId of their first op) and the most applied at once.
type gatedStore struct {
	fakeStore
	entered chan string   // an Apply started
	gate    chan struct{} // one receive lets one Apply finish
	stop    chan struct{} // closed at the test's end: every Apply finishes
	mu      sync.Mutex
	applied []string
	busy    int
	maxBusy int
}

func (g *gatedStore) Apply(ctx context.Context, b jiaoliu.Batch) ([]jiaoliu.OpResult, error) {
	g.mu.Lock()
	g.busy++
	g.maxBusy = max(g.maxBusy, g.busy)
	g.mu.Unlock()
	select {
	case g.entered <- b.Ops[0].OpID:
	case <-g.stop:
	}
	select {
	case <-g.gate:
	case <-g.stop:
	case <-ctx.Done():
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.busy--
	g.applied = append(g.applied, b.Ops[0].OpID)
	res := make([]jiaoliu.OpResult, len(b.Ops))
	for i, op := range b.Ops {
		res[i] = jiaoliu.OpResult{OpID: op.OpID, Status: jiaoliu.StatusApplied, Version: "1"}
	}
	return res, nil
}

func newGatedStore(gate int) *gatedStore {
	return &gatedStore{entered: make(chan string, 4), gate: make(chan struct{}, gate), stop: make(chan struct{})}
}

// gatedServer starts faultServer on st; at the test's end, st lets every Apply finish
// before the server shuts down.
func gatedServer(t *testing.T, st *gatedStore) (*Server, string) {
	s, url := faultServer(t, st, nil)
	t.Cleanup(func() { close(st.stop) })
	return s, url
}

// prepared reports, through the package's hook, each message decoded.
func prepared(t *testing.T) <-chan message {
	ch := make(chan message, 16)
	afterPrepare = func(m message) { ch <- m }
	t.Cleanup(func() { afterPrepare = nil })
	return ch
}

func pushOf(batch, opID string) map[string]any {
	return map[string]any{"type": "push", "batchId": batch,
		"ops": []jiaoliu.Op{{OpID: opID, Kind: "upsert", Entity: "lesson", ID: "x", HLC: "h"}}}
}

// entered waits for an Apply to start and returns its first opId.
func entered(t *testing.T, st *gatedStore) string {
	t.Helper()
	select {
	case id := <-st.entered:
		return id
	case <-time.After(5 * time.Second):
		t.Fatal("no push was applied")
		return ""
	}
}

// waitPrepared waits for the message of type typ to be decoded.
func waitPrepared(t *testing.T, ch <-chan message, typ string) {
	t.Helper()
	select {
	case m := <-ch:
		if m.m == nil || m.m.MessageType() != typ {
			t.Fatalf("decoded %+v, want a %s", m, typ)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the %s was not decoded while the message before it was handled", typ)
	}
}

// twoPushes opens a session on a gatedStore whose Apply lets through gate batches
// without waiting (0: each waits for the test), sends pushes b1 (op o1) and b2 (o2) at
// once, and returns when o1 is being applied and b2 was decoded meanwhile.
func twoPushes(t *testing.T, gate int) (*Server, *gatedStore, *websocket.Conn) {
	t.Helper()
	decoded := prepared(t)
	st := newGatedStore(gate)
	s, url := gatedServer(t, st)
	ws := dialGated(t, url)
	for _, m := range []any{pushOf("b1", "o1"), pushOf("b2", "o2")} {
		if err := ws.WriteJSON(m); err != nil {
			t.Fatal(err)
		}
	}
	waitPrepared(t, decoded, wire.TypePush) // b1
	if got := entered(t, st); got != "o1" {
		t.Fatalf("applying %s first, want o1", got)
	}
	// b1 is being applied: b2 is decoded meanwhile, and waits.
	waitPrepared(t, decoded, wire.TypePush)
	return s, st, ws
}

// TestPipelinedMessages: a device may send its next messages before the answer to the
// last. The next one is decoded while the last is handled; they are handled one at a
// time, in order, and answered in order.
func TestPipelinedMessages(t *testing.T) {
	_, st, ws := twoPushes(t, 0)
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":`)); err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteJSON(map[string]any{"type": "ping"}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-st.entered:
		t.Fatalf("%s applied while o1 was", id)
	case <-time.After(100 * time.Millisecond):
	}
	st.gate <- struct{}{}
	if a, ok := readMsg(t, ws).(*wire.Ack); !ok || a.BatchID != "b1" {
		t.Fatalf("got %+v, want b1's ack", a)
	}
	if got := entered(t, st); got != "o2" {
		t.Fatalf("applying %s, want o2", got)
	}
	st.gate <- struct{}{}
	if a, ok := readMsg(t, ws).(*wire.Ack); !ok || a.BatchID != "b2" {
		t.Fatalf("got %+v, want b2's ack", a)
	}
	if e, ok := readMsg(t, ws).(*wire.Error); !ok || e.Code != wire.CodeBadMessage {
		t.Fatalf("got %+v, want bad_message for the broken message, after b2's ack", e)
	}
	if m := readMsg(t, ws); m.MessageType() != wire.TypePong {
		t.Fatalf("got %+v, want the pong last", m)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.applied) != 2 || st.applied[0] != "o1" || st.applied[1] != "o2" || st.maxBusy != 1 {
		t.Fatalf("applied %v, at most %d at once; want o1 then o2, one at a time", st.applied, st.maxBusy)
	}
}

// TestPipelinedClose: a device that closes its socket right after a push still has the
// push applied (what it sent is not lost), and a message read after it is handled too.
func TestPipelinedClose(t *testing.T) {
	_, st, ws := twoPushes(t, 4)
	ws.Close()
	st.gate <- struct{}{}
	st.gate <- struct{}{}
	select {
	case got := <-st.entered:
		if got != "o2" {
			t.Fatalf("applying %s, want o2", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the push read before the socket closed was not applied")
	}
}

// TestPipelinedShutdown: a shutdown finishes the message being handled, answers it,
// and takes none of those waiting behind it.
func TestPipelinedShutdown(t *testing.T) {
	s, st, ws := twoPushes(t, 4)
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	time.Sleep(50 * time.Millisecond)
	st.gate <- struct{}{}
	if a, ok := readMsg(t, ws).(*wire.Ack); !ok || a.BatchID != "b1" {
		t.Fatalf("got %+v, want b1's ack before the close", a)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("got %v, want the shutdown's close", err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-st.entered:
		t.Fatalf("%s applied after the shutdown started", id)
	case <-time.After(200 * time.Millisecond):
	}
}

// dialGated opens the session of faultServer's device.
func dialGated(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ws.WriteJSON(map[string]any{"type": "hello", "protocol": 1, "deviceId": "dev-1", "token": "tok", "schemaVersion": 1})
	if m := readMsg(t, ws); m.MessageType() != wire.TypeWelcome {
		t.Fatalf("got %+v", m)
	}
	return ws
}
