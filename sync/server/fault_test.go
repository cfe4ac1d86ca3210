package syncserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// fakeStore injects faults: Pull panics, Apply fails as told, Reject records. Its
// ActorTokens counts its calls and the most that ran at once, and takes tokenDelay.
type fakeStore struct {
	mu       sync.Mutex
	applyErr error
	rejected []string

	tokenDelay        time.Duration
	extra             map[string][]string // more tokens for a teacher
	tokenErr          error
	tokenCalls        int
	inFlight, maxBusy int
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
	f.mu.Lock()
	f.tokenCalls++
	f.inFlight++
	f.maxBusy = max(f.maxBusy, f.inFlight)
	delay, err := f.tokenDelay, f.tokenErr
	tokens := append([]string{"t:" + a.TeacherID, "ps:s1", "pd:d1"}, f.extra[a.TeacherID]...)
	f.mu.Unlock()
	time.Sleep(delay)
	f.mu.Lock()
	f.inFlight--
	f.mu.Unlock()
	return tokens, err
}

// calls returns and resets the count of ActorTokens calls and the most that ran at once.
func (f *fakeStore) calls() (n, busy int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, busy = f.tokenCalls, f.maxBusy
	f.tokenCalls, f.maxBusy = 0, 0
	return n, busy
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

func faultServer(t *testing.T, st store, configure func(*Server)) (*Server, string) {
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

// TestKeepalive: a session past hello is pinged every PingInterval, and one that answers
// no ping is given up after PongWait.
func TestKeepalive(t *testing.T) {
	_, url := faultServer(t, &fakeStore{}, func(s *Server) { s.PingInterval, s.PongWait = 40*time.Millisecond, 400*time.Millisecond })
	dial := func(answer bool) (*websocket.Conn, *atomic.Int32) {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		pings := &atomic.Int32{}
		ws.SetPingHandler(func(data string) error {
			pings.Add(1)
			if !answer {
				return nil
			}
			return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		ws.WriteJSON(map[string]any{"type": "hello", "protocol": 1, "deviceId": "dev-1", "token": "tok", "schemaVersion": 1})
		if m := readMsg(t, ws); m.MessageType() != wire.TypeWelcome {
			t.Fatalf("got %+v, want welcome", m)
		}
		return ws, pings
	}
	live, livePings := dial(true)
	dead, deadPings := dial(false)
	read := func(ws *websocket.Conn, d time.Duration) error {
		ws.SetReadDeadline(time.Now().Add(d))
		_, _, err := ws.ReadMessage()
		return err
	}
	start := time.Now()
	liveErr := make(chan error, 1)
	go func() { liveErr <- read(live, time.Second) }() // answers the pings meanwhile
	if err := read(dead, 5*time.Second); err == nil || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("silent socket: err %v after %v, want closed after PongWait", err, time.Since(start))
	}
	if n := deadPings.Load(); n < 3 {
		t.Fatalf("silent socket got %d pings before it was given up", n)
	}
	var ne net.Error
	if err := <-liveErr; !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("answering socket: %v, want a read timeout (still open)", err)
	}
	if n := livePings.Load(); n < 15 {
		t.Fatalf("answering socket got %d pings in %v", n, time.Since(start))
	}
}

// TestPokedFromWelcome: a device that has its welcome is poked for a change committed
// right after it (the session subscribes before the welcome), and changes committed
// while hellos are being handled never put a poke before the welcome.
func TestPokedFromWelcome(t *testing.T) {
	const n = 40
	s, url := faultServer(t, &fakeStore{}, func(s *Server) { s.auth, s.RateLimit = teachers(n), 0 })
	stop := make(chan struct{})
	storm := make(chan struct{})
	go func() {
		defer close(storm)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
				s.hub.Changed("pd:d1") // every device reads it
			}
		}
	}()
	for i := range n / 2 {
		dialDevice(t, url, i).expect(t, wire.TypePoke) // dialDevice wants the welcome first
	}
	close(stop)
	<-storm
	for i := n / 2; i < n; i++ {
		d := dialDevice(t, url, i)
		s.hub.Changed("t:t" + strconv.Itoa(i/2))
		d.expect(t, wire.TypePoke)
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

// HoldConnsEnv names the environment variable that makes the test binary the device
// side of TestIdleConnectionFootprint (see holdConns in server_test.go): the URL to
// dial; HoldConnsEnv+"_N" is the number of sockets.
const HoldConnsEnv = "SYNC_HOLD_CONNS"

// footprint is what the process holds: live heap and goroutine stacks after a garbage
// collection, goroutines, and resident memory once freed memory went back to the OS.
type footprint struct {
	heap, stack, rss int64
	goroutines       int
}

func measureFootprint() footprint {
	runtime.GC()
	debug.FreeOSMemory() // a second collection; returns what is free to the OS
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f := footprint{heap: int64(ms.HeapAlloc), stack: int64(ms.StackInuse), goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				f.rss = kb << 10
			}
		}
	}
	return f
}

// TestIdleConnectionFootprint measures what an idle session costs the server: n
// devices of n/2 teachers (SYNC_IDLE_CONNS, default 200) say hello from a child process,
// so that only the server's side is counted, and then do nothing. It checks that an
// idle session keeps at most two goroutines, and logs the bytes per session
// (SYNC_IDLE_HEAPPROFILE=file also writes a heap profile of all allocations):
//
//	SYNC_IDLE_CONNS=10000 go test -run TestIdleConnectionFootprint -v ./sync/server
func TestIdleConnectionFootprint(t *testing.T) {
	n := 200
	if v := os.Getenv("SYNC_IDLE_CONNS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	auth := tokenAuth{}
	for i := range n {
		auth[fmt.Sprintf("tok-%d", i)] = &jiaoliu.Actor{UserID: fmt.Sprintf("u%d", i/2), Role: jiaoliu.RoleTeacher,
			TeacherID: fmt.Sprintf("t%d", i/2), DeviceID: fmt.Sprintf("dev-%d", i)}
	}
	st := &fakeStore{}
	s := newServer(st, auth, nil, nil)
	s.RateLimit = 0 // every device comes from 127.0.0.1
	mux := http.NewServeMux()
	s.Routes(mux)
	ts := httptest.NewServer(mux)
	defer ts.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	}()

	if os.Getenv("SYNC_IDLE_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 64 // every site of a session's allocations, not a sample
		defer func() { runtime.MemProfileRate = 512 * 1024 }()
	}
	before := measureFootprint()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), HoldConnsEnv+"=ws"+strings.TrimPrefix(ts.URL, "http")+"/sync", HoldConnsEnv+"_N="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("device process: %q %v", line, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.hub.Len() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sessions subscribed", s.hub.Len(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let the hello handlers end
	after := measureFootprint()
	if p := os.Getenv("SYNC_IDLE_HEAPPROFILE"); p != "" {
		f, _ := os.Create(p)
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	per := func(a, b int64) float64 { return float64(b-a) / float64(n) / 1024 }
	goroutines := float64(after.goroutines-before.goroutines) / float64(n)
	t.Logf("%d idle sessions: per session %.1f KiB heap + %.1f KiB stacks = %.1f KiB; RSS %.1f KiB; %.2f goroutines",
		n, per(before.heap, after.heap), per(before.stack, after.stack), per(before.heap+before.stack, after.heap+after.stack),
		per(before.rss, after.rss), goroutines)
	if goroutines > 2.05 {
		t.Errorf("%.2f goroutines per idle session, want at most 2", goroutines)
	}
}

// teachers returns the tokens tok-0 … tok-(n-1) of devices dev-i of users u(i/2),
// teachers t(i/2): two devices per teacher.
func teachers(n int) tokenAuth {
	auth := tokenAuth{}
	for i := range n {
		auth[fmt.Sprintf("tok-%d", i)] = &jiaoliu.Actor{UserID: fmt.Sprintf("u%d", i/2), Role: jiaoliu.RoleTeacher,
			TeacherID: fmt.Sprintf("t%d", i/2), DeviceID: fmt.Sprintf("dev-%d", i)}
	}
	return auth
}

// device is the device end of a socket: a goroutine reads its messages.
type device struct {
	ws  *websocket.Conn
	in  chan wire.Message
	err error // the read error, set before in is closed
}

func dialDevice(t *testing.T, url string, i int) *device {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	if err := ws.WriteJSON(map[string]any{"type": "hello", "protocol": 1, "deviceId": fmt.Sprintf("dev-%d", i), "token": fmt.Sprintf("tok-%d", i), "schemaVersion": 1}); err != nil {
		t.Fatal(err)
	}
	if m := readMsg(t, ws); m.MessageType() != wire.TypeWelcome {
		t.Fatalf("got %+v, want welcome", m)
	}
	_ = ws.SetReadDeadline(time.Time{})
	d := &device{ws: ws, in: make(chan wire.Message, 100)}
	go func() {
		defer close(d.in)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				d.err = err
				return
			}
			if m, err := wire.Decode(data); err == nil {
				d.in <- m
			}
		}
	}()
	return d
}

// expect waits for a message of type typ, skipping others (pokes).
func (d *device) expect(t *testing.T, typ string) {
	t.Helper()
	d.recv(t, typ, func(m wire.Message) bool { return m.MessageType() == typ })
}

// recv waits up to 5 s for the first message that take accepts, skipping the others.
func (d *device) recv(t *testing.T, what string, take func(wire.Message) bool) wire.Message {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-d.in:
			if !ok {
				t.Fatalf("socket closed while waiting for %s: %v", what, d.err)
			}
			if take(m) {
				return m
			}
		case <-timeout:
			t.Fatalf("no %s", what)
		}
	}
}

// quiet fails if a message other than a poke arrives within dur.
func (d *device) quiet(t *testing.T, dur time.Duration) {
	t.Helper()
	timeout := time.After(dur)
	for {
		select {
		case m := <-d.in:
			if m != nil && m.MessageType() != wire.TypePoke {
				t.Fatalf("unexpected %+v", m)
			}
		case <-timeout:
			return
		}
	}
}

// TestScopeRefreshIsCheap checks what the scope refreshes of teachers' sessions cost
// the database: none for a change that cannot change a teacher's scope, one per user
// (not per socket) for one that may, a bounded number at once for a change that pokes
// everyone, and at most two per user for a burst of changes. A scope that did change
// still answers a reset on every socket of the user.
func TestScopeRefreshIsCheap(t *testing.T) {
	// Restored after the server's shutdown (cleanups run last first): a query requested
	// by the last change may read it until then.
	restore := scopeRefreshInterval
	t.Cleanup(func() { scopeRefreshInterval = restore })
	scopeRefreshInterval = 300 * time.Millisecond
	const n = 40 // devices of 20 teachers
	st := &fakeStore{tokenDelay: 5 * time.Millisecond}
	s, url := faultServer(t, st, func(s *Server) { s.auth, s.RateLimit = teachers(n), 0 })
	devs := make([]*device, n)
	for i := range devs {
		devs[i] = dialDevice(t, url, i)
	}
	st.calls() // the hellos'
	settle := func() { time.Sleep(scopeRefreshInterval + 200*time.Millisecond) }

	t.Run("district-wide change: no query", func(t *testing.T) {
		s.hub.Changed("pd:d1")
		for _, d := range devs {
			d.expect(t, wire.TypePoke)
		}
		settle()
		if got, _ := st.calls(); got != 0 {
			t.Fatalf("%d scope queries, want 0", got)
		}
	})
	t.Run("a teacher's change: one query for the user's sockets", func(t *testing.T) {
		s.hub.Changed("t:t3 w:t3 s:s9")
		devs[6].expect(t, wire.TypePoke)
		devs[7].expect(t, wire.TypePoke)
		settle()
		if got, _ := st.calls(); got != 1 {
			t.Fatalf("%d scope queries, want 1", got)
		}
	})
	t.Run("a burst of changes: one query per interval", func(t *testing.T) {
		begin := time.Now()
		for range 20 {
			s.hub.Changed("t:t4")
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(begin)
		settle()
		// One at once, then at most one at the end of each interval the burst overlaps.
		if got, _ := st.calls(); got < 1 || got > 2+int(took/scopeRefreshInterval) {
			t.Fatalf("%d scope queries for 20 changes in %v", got, took)
		}
	})
	t.Run("everyone poked: one query per user, bounded at once", func(t *testing.T) {
		s.hub.Changed("*")
		settle()
		got, busy := st.calls()
		if got != n/2 || busy > scopeRefreshWorkers {
			t.Fatalf("%d scope queries, %d at once; want %d, at most %d", got, busy, n/2, scopeRefreshWorkers)
		}
	})
	t.Run("a widened scope resets every socket of the user", func(t *testing.T) {
		st.mu.Lock()
		st.extra = map[string][]string{"t5": {"ps:s7"}}
		st.mu.Unlock()
		s.hub.Changed("t:t5")
		devs[10].expect(t, wire.TypeReset)
		devs[11].expect(t, wire.TypeReset)
		devs[12].quiet(t, 200*time.Millisecond)
		// The sockets now read with the new token.
		s.hub.Changed("ps:s7")
		devs[10].expect(t, wire.TypePoke)
		devs[11].expect(t, wire.TypePoke)
	})
}

// records is a slog handler that keeps what is logged.
type records struct {
	mu   sync.Mutex
	logs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, rec)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// count returns how many records of level start with msg, and the last one's attribute key.
func (r *records) count(level slog.Level, msg, key string) (n int, val slog.Value) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.logs {
		if rec.Level == level && strings.HasPrefix(rec.Message, msg) {
			n++
			rec.Attrs(func(a slog.Attr) bool {
				if a.Key == key {
					val = a.Value
				}
				return true
			})
		}
	}
	return n, val
}

// TestDatabaseAwayLogsOnce checks that an unreachable database does not flood the log:
// the first failure is an ERROR, the next ones within errorLogWindow are counted into
// one WARN, and after a quiet window the next failure is an ERROR again.
func TestDatabaseAwayLogsOnce(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	logs := &records{}
	st := &fakeStore{tokenErr: &net.OpError{Op: "dial", Net: "unix", Err: syscall.ECONNREFUSED}}
	_, url := faultServer(t, st, func(s *Server) {
		s.auth, s.RateLimit, s.Now, s.log = teachers(40), 0, clock, slog.New(logs)
	})
	hello := func(i int) {
		t.Helper()
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		ws.WriteJSON(map[string]any{"type": "hello", "protocol": 1, "deviceId": fmt.Sprintf("dev-%d", i), "token": fmt.Sprintf("tok-%d", i), "schemaVersion": 1})
		if m, ok := readMsg(t, ws).(*wire.Error); !ok || m.Code != wire.CodeInternal {
			t.Fatalf("got %+v, want internal", m)
		}
	}
	for i := range 30 {
		hello(i)
	}
	if n, _ := logs.count(slog.LevelError, "sync hello", ""); n != 1 {
		t.Fatalf("%d errors logged for 30 failures, want 1", n)
	}
	advance(errorLogWindow)
	hello(30)
	if n, v := logs.count(slog.LevelWarn, "sync hello", "since_last_log"); n != 1 || v.Int64() != 30 {
		t.Fatalf("%d warnings (since_last_log=%v), want 1 counting 30", n, v)
	}
	advance(3 * errorLogWindow) // the database was back meanwhile
	hello(31)
	if n, _ := logs.count(slog.LevelError, "sync hello", ""); n != 2 {
		t.Fatalf("%d errors logged, want 2: a new outage logs an error again", n)
	}
	// Other errors are always logged.
	st.mu.Lock()
	st.tokenErr = errors.New("pq: relation \"users\" does not exist")
	st.mu.Unlock()
	hello(32)
	hello(33)
	if n, _ := logs.count(slog.LevelError, "sync hello", ""); n != 4 {
		t.Fatalf("%d errors logged, want 4", n)
	}
}

// countingStore counts the scope queries of a real store.
type countingStore struct {
	*postgres.Store
	scopeQueries atomic.Int64
}

func (s *countingStore) ActorTokens(ctx context.Context, a *jiaoliu.Actor) ([]string, error) {
	s.scopeQueries.Add(1)
	return s.Store.ActorTokens(ctx, a)
}

// TestPokeWave measures a change that pokes every teacher's socket at once on a real
// database: a "*" notification (or the hub's listener reconnecting), which may change
// any scope, and a change to district-wide reference data ("pd:<district>", a policy),
// which cannot. It logs how long the sockets wait for their poke, how many scope
// queries the waves cost, and how long a simple query of someone else waits meanwhile.
// It runs when SYNC_WAVE_CONNS sets the sockets (devices of teachers, two each):
//
//	SYNC_WAVE_CONNS=1000 go test -run TestPokeWave -v ./sync/server
func TestPokeWave(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("SYNC_WAVE_CONNS"))
	if err != nil {
		t.Skip("a measurement: set SYNC_WAVE_CONNS")
	}
	db := pgtest.NewDB(t)
	db.SetMaxOpenConns(40) // as postgres.Open
	st := &countingStore{Store: postgres.NewStore(db, hlc.NewClock("server"), nil)}
	district, school := uuid.NewString(), uuid.NewString()
	op := func(entity, id string, fields map[string]any) jiaoliu.Op {
		return jiaoliu.Op{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, Entity: entity, ID: id, HLC: st.Clock().Now(), Fields: fields}
	}
	ops := []jiaoliu.Op{op("district", district, map[string]any{"name": "新密市"}),
		op("school", school, map[string]any{"districtId": district, "name": "双河五小", "locality": "URBAN", "tier": "QUALITY"})}
	auth := teachers(n)
	for i := range n / 2 {
		id := uuid.NewString()
		ops = append(ops, op("teacher", id, map[string]any{"name": fmt.Sprintf("教师 %d", i), "gender": "FEMALE", "birthDate": "1985-03-02",
			"schoolId": school, "joinedSchoolOn": "2015-09-01"}))
		auth[fmt.Sprintf("tok-%d", 2*i)].TeacherID = id
		auth[fmt.Sprintf("tok-%d", 2*i+1)].TeacherID = id
	}
	if _, err := st.Apply(jiaoliu.NewContextWithActor(context.Background(), jiaoliu.SystemActor), jiaoliu.Batch{Ops: ops, Atomic: true}); err != nil {
		t.Fatal(err)
	}
	srv, url := faultServer(t, nil, func(s *Server) { s.store, s.auth, s.RateLimit = st, auth, 0 })
	devs := make([]*device, n)
	for i := range devs {
		devs[i] = dialDevice(t, url, i)
	}
	pct := func(d []time.Duration, p float64) time.Duration {
		slices.Sort(d)
		if len(d) == 0 {
			return 0
		}
		return d[min(len(d)-1, int(float64(len(d))*p))].Round(100 * time.Microsecond)
	}
	for _, payload := range []string{"*", "pd:" + district} {
		time.Sleep(2 * time.Second) // the refreshes of what came before
		st.scopeQueries.Store(0)
		var probe []time.Duration // someone else's query while the waves run
		stop, probed := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(probed)
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				begin := time.Now()
				var one int
				if err := db.QueryRowContext(context.Background(), `SELECT 1`).Scan(&one); err == nil {
					probe = append(probe, time.Since(begin))
				}
			}
		}()
		const waves = 3
		var lat []time.Duration
		for range waves {
			begin := time.Now()
			srv.hub.Changed(payload)
			for _, d := range devs {
				d.expect(t, wire.TypePoke)
				lat = append(lat, time.Since(begin))
			}
			time.Sleep(500 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // the refreshes the waves started
		close(stop)
		<-probed
		q := st.scopeQueries.Load()
		t.Logf("%d waves %q over %d teacher sockets: poke p50 %v p99 %v; %d scope queries (%.2f per socket per wave); someone else's query p50 %v p99 %v",
			waves, payload[:min(len(payload), 3)], n, pct(lat, .5), pct(lat, .99), q, float64(q)/float64(n*waves), pct(probe, .5), pct(probe, .99))
	}
}
