package syncserver

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// fakeStore injects faults: Pull panics, Apply fails as told, Reject records.
type fakeStore struct {
	mu       sync.Mutex
	applyErr error
	rejected []string
}

func (f *fakeStore) Apply(ctx context.Context, b jiaoliu.Batch) ([]jiaoliu.OpResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return nil, f.applyErr
}

func (f *fakeStore) Reject(ctx context.Context, op jiaoliu.Op, code, message string) (jiaoliu.OpResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejected = append(f.rejected, op.OpID+" "+code)
	return jiaoliu.OpResult{OpID: op.OpID, Status: jiaoliu.StatusRejected, Code: code, Message: message}, nil
}

func (f *fakeStore) Pull(ctx context.Context, cursor string, limit int) ([]postgres.PulledRecord, string, bool, error) {
	panic("pull exploded")
}

func (f *fakeStore) Pending(ctx context.Context, cursor string) (bool, error) { return false, nil }

func (f *fakeStore) Verify(ctx context.Context, cursor string) (string, int, string, error) {
	return "", 0, "", errors.New("connection refused")
}

func (f *fakeStore) ActorTokens(ctx context.Context, a *jiaoliu.Actor) ([]string, error) {
	return []string{"t:" + a.TeacherID}, nil
}

func (f *fakeStore) DeviceSynced(ctx context.Context) error             { return nil }
func (f *fakeStore) DeviceVerified(ctx context.Context, ok *bool) error { return nil }

// tokenAuth maps tokens to actors.
type tokenAuth map[string]*jiaoliu.Actor

func (a tokenAuth) AuthenticateToken(ctx context.Context, token string) (*jiaoliu.Actor, error) {
	if actor, ok := a[token]; ok {
		cp := *actor
		return &cp, nil
	}
	return nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "invalid token")
}

func faultServer(t *testing.T, st *fakeStore, configure func(*Server)) (*Server, string) {
	t.Helper()
	auth := tokenAuth{"tok": {UserID: "u1", Role: jiaoliu.RoleAuditor, DistrictID: "d1", DeviceID: "dev-1"}}
	s := newServer(st, auth, nil, nil)
	if configure != nil {
		configure(s)
	}
	mux := http.NewServeMux()
	s.Routes(mux)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		ts.Close()
	})
	return s, "ws" + strings.TrimPrefix(ts.URL, "http") + "/sync"
}

func readMsg(t *testing.T, ws *websocket.Conn) wire.Message {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	m, err := wire.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFaults(t *testing.T) {
	st := &fakeStore{applyErr: errors.New("database is away")}
	_, url := faultServer(t, st, nil)
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteJSON(map[string]any{"type": "hello", "protocol": 1, "deviceId": "DEV-1", "token": "tok", "schemaVersion": 1})
	if m := readMsg(t, ws); m.MessageType() != wire.TypeWelcome {
		t.Fatalf("got %+v", m)
	}
	// A panic while handling a message answers internal and keeps the session.
	ws.WriteJSON(map[string]any{"type": "pull"})
	if m, ok := readMsg(t, ws).(*wire.Error); !ok || m.Code != wire.CodeInternal {
		t.Fatalf("got %+v, want internal", m)
	}
	// An infrastructure error of Apply answers internal with the batch id, and no ack.
	op := jiaoliu.Op{OpID: "o1", Kind: "upsert", Entity: "lesson", ID: "x", HLC: "h"}
	ws.WriteJSON(map[string]any{"type": "push", "batchId": "b1", "ops": []jiaoliu.Op{op}})
	if m, ok := readMsg(t, ws).(*wire.Error); !ok || m.Code != wire.CodeInternal || m.BatchID != "b1" || strings.Contains(m.Message, "database") {
		t.Fatalf("got %+v, want internal for b1 without details", m)
	}
	// A batch the store refuses as a whole (an auditor's) is stored op by op.
	st.mu.Lock()
	st.applyErr = jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "auditors cannot change records")
	st.mu.Unlock()
	ws.WriteJSON(map[string]any{"type": "push", "batchId": "b2", "ops": []jiaoliu.Op{op}})
	ack, ok := readMsg(t, ws).(*wire.Ack)
	if !ok || ack.Results[0].Code != jiaoliu.RejectForbidden {
		t.Fatalf("got %+v, want a forbidden rejection", ack)
	}
	if len(st.rejected) != 1 {
		t.Fatalf("rejections stored: %v", st.rejected)
	}
	ws.WriteJSON(map[string]any{"type": "verify"})
	if m, ok := readMsg(t, ws).(*wire.Error); !ok || m.Code != wire.CodeInternal || strings.Contains(m.Message, "refused") {
		t.Fatalf("got %+v, want internal without details", m)
	}
	ws.WriteJSON(map[string]any{"type": "ping"})
	if m := readMsg(t, ws); m.MessageType() != wire.TypePong {
		t.Fatalf("got %+v", m)
	}
}

func TestHelloTimeout(t *testing.T) {
	_, url := faultServer(t, &fakeStore{}, func(s *Server) { s.HelloTimeout = 100 * time.Millisecond })
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "hello timeout" {
		t.Fatalf("err=%v, want close 1008 hello timeout", err)
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(1, 2, func() time.Time { return now })
	if !l.allow("a") || !l.allow("a") || l.allow("a") {
		t.Fatal("burst not enforced")
	}
	if !l.allow("b") {
		t.Fatal("devices share a bucket")
	}
	now = now.Add(time.Second)
	if !l.allow("a") || l.allow("a") {
		t.Fatal("refill not at the rate")
	}
}
