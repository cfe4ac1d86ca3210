// Package syncserver serves the sync protocol v1 (docs/sync-protocol.md) to devices:
// a WebSocket session at GET /sync and its HTTP fallback at POST /sync/push,
// POST /sync/pull (and POST /sync/verify). Every write goes through the store's one
// write path (Apply); pulls and verifies read the store's change log; pokes come from
// the process's hub (sync/hub), fed by PostgreSQL notifications.
package syncserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hub"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// Defaults of the server's limits and timings.
const (
	DefaultMaxBatch        = 500
	DefaultMaxMessageBytes = 1 << 20
	DefaultSendQueue       = 64
	DefaultSendQueueBytes  = 4 << 20
	DefaultRateLimit       = 20 // messages per second per device
	DefaultRateBurst       = 100
	DefaultHelloTimeout    = 10 * time.Second
	DefaultPingInterval    = 25 * time.Second
	DefaultPongWait        = 60 * time.Second
	DefaultWriteWait       = 10 * time.Second
	DefaultCloseGrace      = 2 * time.Second
	DefaultMaxDeviceConns  = 8
	DefaultReadAheadWait   = 10 * time.Second
)

// ShutdownReason is the reason of the close frame every socket gets on shutdown.
const ShutdownReason = "server shutting down"

// store is what the server needs of postgres.Store; tests may wrap it.
type store interface {
	Apply(ctx context.Context, batch jiaoliu.Batch) ([]jiaoliu.OpResult, error)
	Reject(ctx context.Context, op jiaoliu.Op, code, message string) (jiaoliu.OpResult, error)
	Pull(ctx context.Context, cursor string, limit int) ([]postgres.PulledRecord, string, bool, error)
	Pending(ctx context.Context, cursor string) (bool, error)
	Verify(ctx context.Context, cursor string) (string, int, string, error)
	ActorTokens(ctx context.Context, a *jiaoliu.Actor) ([]string, error)
	DeviceSynced(ctx context.Context) error
	DeviceVerified(ctx context.Context, ok *bool) error
}

var _ store = (*postgres.Store)(nil)

// Server serves the sync protocol. Set its exported fields, if at all, before it
// serves the first request.
type Server struct {
	// MaxBatch is the most ops a push may carry (welcome.maxBatch).
	MaxBatch int
	// MaxMessageBytes is the largest message a client may send (welcome.maxMessageBytes);
	// the server also keeps its own messages under it.
	MaxMessageBytes int
	// SendQueue and SendQueueBytes bound the messages (and their bytes) that may wait
	// for a slow device; a device that lets more pile up is disconnected.
	SendQueue      int
	SendQueueBytes int
	// RateLimit and RateBurst define each device's token bucket of messages
	// (WebSocket messages and HTTP requests alike).
	RateLimit float64
	RateBurst int
	// HelloTimeout is how long a new socket may take to say hello.
	HelloTimeout time.Duration
	// PingInterval is how often the server pings an idle socket; PongWait is how long
	// it waits for any frame before it gives the socket up.
	PingInterval, PongWait time.Duration
	// WriteWait bounds each write to a socket; CloseGrace is how long the server waits
	// for the device's close frame after sending its own.
	WriteWait, CloseGrace time.Duration
	// MaxDeviceConns is the most sockets one device may hold open at once; a further
	// hello closes the device's oldest socket (a device that reconnected after a lost
	// link leaves a dead one behind until the keepalive gives it up). Hellos also have
	// a token bucket per device (RateLimit, RateBurst; apart from its messages'), so
	// connection attempts are limited per device as well as per client address.
	MaxDeviceConns int
	// ReauthInterval is how often a session re-authenticates its token before handling
	// a message. Zero (the default) re-authenticates before every message, so a revoked
	// token is refused at the next message even without a device_revoked notification.
	ReauthInterval time.Duration
	// ReadAheadPages is the most pages the server reads ahead at once for devices that
	// are pulling page after page (default the number of cores; 0 turns it off), and
	// ReadAheadWait how long a page read ahead waits for its device to ask for it
	// (see readahead.go).
	ReadAheadPages int
	ReadAheadWait  time.Duration
	// Schema is the schema version range and the op conversions (see schema.go).
	Schema Schema
	// CheckOrigin decides whether a WebSocket upgrade with an Origin header is allowed;
	// nil allows requests without Origin (devices) and same-origin ones.
	CheckOrigin func(r *http.Request) bool
	// Now returns the time; tests may replace it.
	Now func() time.Time
	// Observer, when set, is told about sessions, pushes and pulls after the fact (the
	// live sync activity of administrators).
	Observer Observer

	store     store
	auth      jiaoliu.Authenticator
	hub       *hub.Hub
	log       *slog.Logger
	limits    *limiter
	keepalive keepalive

	ctx    context.Context // canceled when Shutdown starts: no new messages are handled
	cancel context.CancelFunc
	// hardCtx carries the handling of messages; Shutdown cancels it only when its own
	// context expires, so that the messages in flight are finished and answered first.
	hardCtx    context.Context
	hardCancel context.CancelFunc
	wg         sync.WaitGroup
	mu         sync.Mutex
	conns      map[*conn]struct{}
	devConns   map[string][]*conn // open sessions per device, oldest first
	observed   map[*conn]string   // sessions the Observer was told connected, with their device
	nextID     atomic.Uint64
	init       sync.Once
	aheadSlots chan struct{} // pages read ahead, nil when off (setup; readahead.go)
}

// New returns a sync server writing and reading through store, authenticating device
// tokens with auth, and poking sockets through h (whose Listen the program runs).
func New(store *postgres.Store, auth jiaoliu.Authenticator, h *hub.Hub, log *slog.Logger) *Server {
	return newServer(store, auth, h, log)
}

func newServer(st store, auth jiaoliu.Authenticator, h *hub.Hub, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if h == nil {
		h = hub.New(log)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hardCtx, hardCancel := context.WithCancel(context.Background())
	return &Server{
		MaxBatch:        DefaultMaxBatch,
		MaxMessageBytes: DefaultMaxMessageBytes,
		SendQueue:       DefaultSendQueue,
		SendQueueBytes:  DefaultSendQueueBytes,
		RateLimit:       DefaultRateLimit,
		RateBurst:       DefaultRateBurst,
		HelloTimeout:    DefaultHelloTimeout,
		PingInterval:    DefaultPingInterval,
		PongWait:        DefaultPongWait,
		WriteWait:       DefaultWriteWait,
		CloseGrace:      DefaultCloseGrace,
		MaxDeviceConns:  DefaultMaxDeviceConns,
		ReadAheadPages:  runtime.GOMAXPROCS(0),
		ReadAheadWait:   DefaultReadAheadWait,
		Schema:          DefaultSchema(),
		Now:             time.Now,
		store:           st,
		auth:            auth,
		hub:             h,
		log:             log,
		ctx:             ctx,
		cancel:          cancel,
		hardCtx:         hardCtx,
		hardCancel:      hardCancel,
		conns:           map[*conn]struct{}{},
		devConns:        map[string][]*conn{},
		observed:        map[*conn]string{},
	}
}

// Observer is told about sync activity after it happened. Its methods are called on
// the paths of sessions and messages (a push after its commit), so they must return at
// once — queue, never block — and cannot fail what they observe.
type Observer interface {
	// Connected is called when a device's socket passed hello.
	Connected(deviceID string)
	// Disconnected is called when a socket that passed hello has closed.
	Disconnected(deviceID string)
	// Pushed is called after a push was committed, with the batch's ops and their
	// results in order, before the ack is sent.
	Pushed(actor *jiaoliu.Actor, batchID string, ops []jiaoliu.Op, results []jiaoliu.OpResult)
	// Pulled is called after a pull was answered with a page of records.
	Pulled(actor *jiaoliu.Actor, records int, more bool)
}

// observe calls fn with the Observer, if any; a panic in it is logged, never passed on.
func (s *Server) observe(fn func(o Observer)) {
	if s.Observer == nil {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("sync observer panic", "panic", p)
		}
	}()
	fn(s.Observer)
}

func (s *Server) setup() {
	s.init.Do(func() {
		s.limits = newLimiter(s.RateLimit, s.RateBurst, s.Now)
		if s.ReadAheadPages > 0 {
			s.aheadSlots = make(chan struct{}, s.ReadAheadPages)
		}
	})
}

// Routes registers the sync endpoints on mux: GET /sync (WebSocket), and the HTTP
// fallback POST /sync/push, POST /sync/pull and POST /sync/verify.
func (s *Server) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /sync", s.ServeWebSocket)
	mux.HandleFunc("POST /sync/push", s.servePost(wire.TypePush))
	mux.HandleFunc("POST /sync/pull", s.servePost(wire.TypePull))
	mux.HandleFunc("POST /sync/verify", s.servePost(wire.TypeVerify))
}

// Shutdown drains the sessions: each stops taking messages, finishes the one it is
// handling (a push is committed and acknowledged), sends what is queued, and closes
// with a close frame (1001, "server shutting down"). It waits for the sessions to end,
// or for ctx; then it cancels the messages still being handled (their batches roll
// back) and drops the sockets that remain. http.Server.Shutdown does not close
// hijacked connections, so call both.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancel() // from here on no session is added, and none takes a new message
	s.mu.Lock()
	for c := range s.conns {
		c.shutdown()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.hardCancel()
		return nil
	case <-ctx.Done():
		s.hardCancel()
		s.mu.Lock()
		for c := range s.conns {
			c.ws.Close()
		}
		s.mu.Unlock()
		<-done
		return fmt.Errorf("sync server shutdown: %w", ctx.Err())
	}
}

// admit counts a new session of a device and returns the device's oldest session when
// it has more than MaxDeviceConns, for the caller to close.
func (s *Server) admit(c *conn, device string) *conn {
	device = strings.ToLower(device)
	s.mu.Lock()
	defer s.mu.Unlock()
	c.device = device
	list := append(s.devConns[device], c)
	var oldest *conn
	if s.MaxDeviceConns > 0 && len(list) > s.MaxDeviceConns {
		oldest, list = list[0], list[1:]
		oldest.device = "" // no longer counted
	}
	s.devConns[device] = list
	if s.Observer != nil {
		if _, seen := s.observed[c]; !seen {
			s.observed[c] = device
			// Runs before the deferred unlock: Observer methods only queue.
			defer s.observe(func(o Observer) { o.Connected(device) })
		}
	}
	return oldest
}

// Conns returns the number of open sockets.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// deviceAuthenticator is an authenticator that can check a token without computing
// the actor's read tokens (postgres.Store): a session's pushes and pulls compute them in
// their own transactions, so the check before every message need not.
type deviceAuthenticator interface {
	AuthenticateDevice(ctx context.Context, token string) (*jiaoliu.Actor, error)
}

// authenticate turns a device token into its actor, or a protocol error.
func (s *Server) authenticate(ctx context.Context, token string) (*jiaoliu.Actor, *wire.Error) {
	if token == "" {
		return nil, &wire.Error{Code: wire.CodeUnauthorized, Message: "a device token is required"}
	}
	var a *jiaoliu.Actor
	var err error
	if da, ok := s.auth.(deviceAuthenticator); ok {
		a, err = da.AuthenticateDevice(ctx, token)
	} else {
		a, err = s.auth.AuthenticateToken(ctx, token)
	}
	switch code := jiaoliu.ErrorCode(err); {
	case err == nil && a == nil:
		return nil, &wire.Error{Code: wire.CodeUnauthorized, Message: "unknown token"}
	case err == nil:
	case code == jiaoliu.EUNAUTHENTICATED || code == jiaoliu.ENOTFOUND || code == jiaoliu.EFORBIDDEN:
		return nil, &wire.Error{Code: wire.CodeUnauthorized, Message: jiaoliu.ErrorMessage(err)}
	default:
		if ctx.Err() == nil {
			s.logInfra(s.log, slog.LevelError, "sync authenticate", err)
		}
		return nil, &wire.Error{Code: wire.CodeInternal, Message: "cannot check the token now; try again"}
	}
	if a.DeviceID == "" {
		return nil, &wire.Error{Code: wire.CodeUnauthorized, Message: "not a device token: register the device first"}
	}
	return a, nil
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// writeBuffers are the sockets' write buffers, held only while a message is written:
// thousands of idle tablets then hold none (4 KiB each otherwise).
var writeBuffers = &sync.Pool{}

func (s *Server) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		// A small reader of the socket's own (frame headers and small messages go
		// through it; larger reads bypass it) rather than the HTTP server's 4 KiB one,
		// which is freed with the HTTP server's goroutine (see ServeWebSocket). Every
		// idle tablet keeps it: 256 bytes hold a frame header and a control frame.
		ReadBufferSize:  256,
		WriteBufferSize: 4096,
		WriteBufferPool: writeBuffers,
		CheckOrigin:     s.CheckOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			http.Error(w, reason.Error(), status)
		},
	}
}

// ServeWebSocket upgrades GET /sync to a sync session.
func (s *Server) ServeWebSocket(w http.ResponseWriter, r *http.Request) {
	s.setup()
	if s.ctx.Err() != nil {
		http.Error(w, ShutdownReason, http.StatusServiceUnavailable)
		return
	}
	ws, err := s.upgrader().Upgrade(w, r, nil)
	if err != nil {
		s.log.Info("sync upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := newConn(s, ws, r)
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ShutdownReason), time.Now().Add(time.Second))
		ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	// The session goes on on a goroutine of its own: the HTTP server's goroutine ends
	// here, and with it its grown stack, its buffers and the request (about 14 KiB
	// per idle socket).
	go s.serveConn(c)
}

// serveConn runs a session and forgets it when it ends.
func (s *Server) serveConn(c *conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		if dev := c.device; dev != "" {
			s.devConns[dev] = slices.DeleteFunc(s.devConns[dev], func(o *conn) bool { return o == c })
			if len(s.devConns[dev]) == 0 {
				delete(s.devConns, dev)
			}
		}
		observed, wasObserved := s.observed[c]
		delete(s.observed, c)
		s.mu.Unlock()
		if wasObserved {
			s.observe(func(o Observer) { o.Disconnected(observed) })
		}
		s.wg.Done()
	}()
	c.serve()
}

// errorStatus maps protocol error codes to HTTP statuses for the fallback, in one
// place.
func errorStatus(code string) int {
	switch code {
	case wire.CodeUnauthorized:
		return http.StatusUnauthorized
	case wire.CodeTooLarge, wire.CodeBatchTooLarge:
		return http.StatusRequestEntityTooLarge
	case wire.CodeRateLimited:
		return http.StatusTooManyRequests
	case wire.CodeInternal:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// internalError logs err and returns the internal error message for the device.
func (s *Server) internalError(ctx context.Context, log *slog.Logger, what string, err error, batchID string) *wire.Error {
	if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		s.logInfra(log, slog.LevelError, "sync "+what, err, "batch", batchID)
	}
	return &wire.Error{Code: wire.CodeInternal, Message: what + " failed; try again", BatchID: batchID}
}
