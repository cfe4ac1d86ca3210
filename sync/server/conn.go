package syncserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
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

// conn is one WebSocket session. The reader (serve) reads the device's messages and
// handles each on a short-lived goroutine of its own; the writer, which alone writes
// frames from a bounded queue, runs only while something is to be written. The hub
// calls the session (notified) to queue a poke or start a re-authentication, the
// server's keepalive wheel asks for pings, and Server.Shutdown starts the session's shutdown: none
// of them needs a goroutine of the session while it waits. A device that does not
// read fills the queue and is disconnected. An idle session thus holds one goroutine
// on a small stack, and its queue is allocated only while messages wait.
type conn struct {
	srv        *Server
	ws         *websocket.Conn
	id         uint64
	remoteAddr string // the client's address, for logs
	remote     string // the client's host, for rate limiting hellos

	// The session holds no context of its own (thousands of idle tablets): its
	// messages are handled with the server's hardCtx, which a shutdown cancels only
	// when it gives up waiting, so the message in flight is finished (the reader waits
	// for it: the session cannot end under it); over reports the end of the session or
	// the start of a shutdown.
	ended    atomic.Bool // the session is over
	handling sync.Mutex  // held while a message is handled

	// The writer: a goroutine that exists only while something is to be written.
	qmu        sync.Mutex    // guards the fields below
	queue      []outMsg      // messages waiting to be written; nil when none
	queueBytes int64         // their bytes
	pokeQueued bool          // a poke waits in queue: pokes are coalesced
	pingDue    bool          // a ping is to be written
	closeDue   bool          // closeWith was called: the close frame is to be written
	writing    bool          // the writer runs
	welcomed   bool          // the welcome is queued: the hub's calls are acted on (see notified)
	pokeHeld   bool          // the hub poked before the welcome
	checkHeld  bool          // the hub asked for a check before the welcome
	finished   bool          // the close frame was written or writing failed: nothing more is
	written    chan struct{} // closed when finished; made by whoever waits for it (see done)

	pinged   bool  // in the keepalive's wheel; guarded by Server.keepalive.mu
	pingSlot uint8 // its slot there

	closeOnce sync.Once
	slowOnce  sync.Once
	closeReq  closeReq    // set by closeWith
	draining  atomic.Bool // no more messages are handled (closeWith was called)

	headerToken string // from the upgrade request's Authorization header
	device      string // the device it counts for in Server.devConns; guarded by Server.mu

	mu     sync.Mutex // guards the fields below
	actor  *jiaoliu.Actor
	token  string
	authAt time.Time
	schema int
	cursor string     // the last cursor this session handed out (or the hello cursor)
	tokens []string   // the scope tokens the session reads with
	ahead  *readAhead // the page after the last one sent, read ahead (readahead.go)
	sub    *hub.Subscription
	// scope is the group of the user's sessions whose scope is recomputed together
	// after changes that may change it (see scopeRefresher); nil but for teachers.
	scope *scopeUser

	scopeMu sync.Mutex // serializes scope refreshes
	checks  rerun      // re-authentications asked for by the hub
}

type outMsg struct {
	data []byte
	poke bool
}

type closeReq struct {
	code   int
	reason string
	flush  bool // write the queued messages first
}

// errTooLarge is returned by read for a message over MaxMessageBytes.
var errTooLarge = errors.New("message too large")

func newConn(s *Server, ws *websocket.Conn, r *http.Request) *conn {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return &conn{
		srv:         s,
		ws:          ws,
		id:          s.nextID.Add(1),
		remoteAddr:  r.RemoteAddr,
		remote:      host,
		headerToken: bearer(r),
	}
}

// over reports whether the session ended or the server started shutting down.
func (c *conn) over() bool { return c.ended.Load() || c.srv.ctx.Err() != nil }

// closedChan is a closed channel.
var closedChan = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// done returns a channel closed once writing is finished (see finish).
func (c *conn) done() <-chan struct{} {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.finished {
		return closedChan
	}
	if c.written == nil {
		c.written = make(chan struct{})
	}
	return c.written
}

// log returns the session's logger. It is made when needed rather than kept: a logger
// with attributes costs hundreds of bytes, times thousands of idle tablets.
func (c *conn) log() *slog.Logger {
	actor := c.currentActor()
	if actor == nil {
		return c.srv.log.With("conn", c.id, "remote", c.remoteAddr)
	}
	return c.srv.log.With("conn", c.id, "remote", c.remoteAddr, "device", actor.DeviceID, "user", actor.UserID)
}

// serve runs the session until the socket closes.
func (c *conn) serve() {
	s := c.srv
	// gorilla's own limit is a backstop for frames far over the limit; read reports
	// the others as too_large before closing with 1009.
	c.ws.SetReadLimit(int64(2*s.MaxMessageBytes + 4096))
	c.ws.SetPongHandler(func(string) error {
		if !c.draining.Load() {
			_ = c.ws.SetReadDeadline(time.Now().Add(s.PongWait))
		}
		return nil
	})
	defer func() {
		// Let the writer send what closeWith asked for before the connection ends.
		written := c.done()
		select {
		case <-written:
		case <-time.After(s.WriteWait):
		}
		c.ended.Store(true)
		c.ws.Close()
		c.scopeMu.Lock() // a scope refresh that ends now finds the session over
		c.mu.Lock()
		sub, scope, ahead := c.sub, c.scope, c.ahead
		c.scope, c.ahead = nil, nil
		c.mu.Unlock()
		ahead.discard()
		if sub != nil {
			sub.Close()
		}
		if scope != nil {
			s.limits.scopes.leave(scope, c)
		}
		c.scopeMu.Unlock()
		<-written // the socket is closed: a write in progress fails at once
		s.keepalive.remove(c)
		c.log().Debug("sync socket closed")
	}()

	defer c.recover("reader")

	// A shutdown closes the session from Server.Shutdown (see shutdown).
	_ = c.ws.SetReadDeadline(time.Now().Add(s.HelloTimeout))
	data, err := c.read()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.log().Info("sync hello timeout")
			c.closeWith(websocket.ClosePolicyViolation, "hello timeout", false)
		} else {
			c.readFailed(err)
		}
		c.drain()
		return
	}
	ok := onFreshStack(c, func() bool { return c.hello(data) })
	if !ok {
		c.drain()
		return
	}
	// Messages are handled one at a time, in order, each on a goroutine of its own
	// (see onFreshStack for why). While one is handled the reader reads the next,
	// and that message's goroutine decodes it and then waits for its turn: a device
	// that sends its next push before the last one's ack has it decoded while the
	// last one is applied. At most one message waits so: the reader reads the one
	// after only when the one handled is done.
	var prev <-chan struct{} // closed when the message read last is done
	for {
		if !c.draining.Load() {
			_ = c.ws.SetReadDeadline(time.Now().Add(s.PongWait))
		}
		data, err := c.read()
		if err != nil {
			// The device went away or broke the protocol: what it sent before is
			// still handled (a push committed and acknowledged) before the session ends.
			wait(prev)
			c.readFailed(err)
			break
		}
		done := make(chan struct{})
		go c.run(data, prev, done)
		wait(prev)
		prev = done
	}
	c.drain()
}

// wait waits for ch to be closed; a nil ch is not waited for.
func wait(ch <-chan struct{}) {
	if ch != nil {
		<-ch
	}
}

// run handles one message read after hello, once the message before it (prev) is done;
// it closes done when it is done itself. It decodes the message before it waits.
func (c *conn) run(data []byte, prev <-chan struct{}, done chan struct{}) {
	defer close(done)
	defer c.recover("handler")
	var msg message
	if !c.draining.Load() && !c.over() {
		msg = c.prepare(data)
	}
	wait(prev)
	// A shutdown waits for the message being handled (see shutdown); once it has
	// started, no new message is taken.
	c.handling.Lock()
	defer c.handling.Unlock()
	if c.draining.Load() || c.over() {
		return
	}
	c.handle(msg)
}

// message is a message read from the socket, prepared for handling.
type message struct {
	m       wire.Message
	err     *wire.Error // it could not be decoded: the answer
	limited bool        // over the device's message rate: not decoded
}

// prepare checks the device's message rate and decodes the message. It may run while
// the message before is handled: it touches no state but the rate limiter's, which
// counts messages in the order they arrived, as before.
func (c *conn) prepare(data []byte) message {
	if !c.srv.limits.allow(c.currentActor().DeviceID) {
		return message{limited: true}
	}
	m, err := wire.Decode(data)
	msg := message{m: m}
	if err != nil {
		msg = message{err: err.(*wire.Error)}
	}
	if afterPrepare != nil {
		afterPrepare(msg)
	}
	return msg
}

// afterPrepare, when set (by tests, before any session starts), is called with each
// message prepare decoded.
var afterPrepare func(message)

// onFreshStack runs fn on a goroutine of its own and waits for it. The session's
// long-lived goroutines mostly sit blocked on a read or a channel with a few KiB of
// stack; the work of a message (database calls, JSON) grows a stack to tens of KiB,
// which a goroutine keeps until a garbage collection shrinks it. Doing that work on a
// goroutine that then ends keeps an idle connection small (thousands of tablets).
// A panic in fn ends the session, as it would on the calling goroutine.
func onFreshStack(c *conn, fn func() bool) bool {
	done := make(chan bool, 1)
	go func() {
		ok := false
		defer func() { done <- ok }()
		defer c.recover("handler")
		ok = fn()
	}()
	return <-done
}

// read returns the next text message, or errTooLarge, or the socket's error.
func (c *conn) read() ([]byte, error) {
	for {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(io.LimitReader(r, int64(c.srv.MaxMessageBytes)+1))
		if err != nil {
			return nil, err
		}
		if len(data) > c.srv.MaxMessageBytes {
			return nil, errTooLarge
		}
		if typ != websocket.TextMessage {
			c.reply(wire.BadMessage("messages are JSON text frames, not binary"))
			continue
		}
		return data, nil
	}
}

// readFailed ends the session after a read error.
func (c *conn) readFailed(err error) {
	switch {
	case errors.Is(err, errTooLarge):
		c.log().Info("sync message too large", "limit", c.srv.MaxMessageBytes)
		c.reply(&wire.Error{Code: wire.CodeTooLarge, Message: "a message may have at most " + itoa(c.srv.MaxMessageBytes) + " bytes"})
		c.closeWith(websocket.CloseMessageTooBig, wire.CodeTooLarge, true)
	case errors.Is(err, websocket.ErrReadLimit):
		c.log().Info("sync frame over the read limit")
		c.closeWith(websocket.CloseMessageTooBig, wire.CodeTooLarge, false)
	case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
		c.closeWith(websocket.CloseNormalClosure, "", false)
	default:
		if !c.draining.Load() && !c.over() {
			c.log().Info("sync socket read", "err", err)
		}
		c.closeWith(websocket.CloseNormalClosure, "", false)
	}
}

// drain reads and discards until the device closes or the close grace runs out, so
// that the device reads the server's close frame before the TCP connection ends.
func (c *conn) drain() {
	c.draining.Store(true)
	// Every path here has closed the session (closeWith); this only makes sure of it.
	c.closeWith(websocket.CloseNormalClosure, "", false)
	deadline := time.Now().Add(c.srv.CloseGrace)
	_ = c.ws.SetReadDeadline(deadline)
	for time.Now().Before(deadline) {
		if _, _, err := c.ws.NextReader(); err != nil {
			return
		}
	}
}

// hello handles the first message; it reports whether the session goes on.
func (c *conn) hello(data []byte) bool {
	s := c.srv
	// The hello's queries end when a shutdown starts, as the session has not begun.
	helloCtx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	m, err := wire.Decode(data)
	if err != nil {
		return c.fail(err.(*wire.Error))
	}
	h, ok := m.(*wire.Hello)
	if !ok {
		return c.fail(wire.BadMessage("the first message must be hello, not %s", m.MessageType()))
	}
	if h.Protocol != wire.ProtocolVersion {
		return c.fail(&wire.Error{Code: wire.CodeProtocolVersion, Message: "this server speaks protocol " + itoa(wire.ProtocolVersion)})
	}
	token := h.Token
	if token == "" {
		token = c.headerToken
	}
	if !s.limits.allow("host:" + c.remote) {
		return c.fail(&wire.Error{Code: wire.CodeRateLimited, Message: "too many attempts; slow down"})
	}
	actor, werr := s.authenticate(helloCtx, token)
	if werr != nil {
		c.log().Info("sync hello refused", "code", werr.Code, "device", h.DeviceID)
		return c.fail(werr)
	}
	if !strings.EqualFold(actor.DeviceID, h.DeviceID) {
		c.log().Info("sync hello refused: device mismatch", "device", h.DeviceID, "token_device", actor.DeviceID)
		return c.fail(&wire.Error{Code: wire.CodeUnauthorized, Message: "deviceId does not match the token's device"})
	}
	if h.SchemaVersion < s.Schema.MinVersion {
		return c.fail(&wire.Error{Code: wire.CodeSchemaTooOld,
			Message: "schema version " + itoa(h.SchemaVersion) + " is no longer accepted; update the app (minimum " + itoa(s.Schema.MinVersion) + ")"})
	}
	if !s.limits.allow("conn:" + strings.ToLower(actor.DeviceID)) {
		return c.fail(&wire.Error{Code: wire.CodeRateLimited, Message: "too many connections from this device; slow down"})
	}
	c.mu.Lock()
	c.actor = actor // from here on the session logs with its device and user
	c.mu.Unlock()
	if oldest := s.admit(c, actor.DeviceID); oldest != nil {
		oldest.log().Info("sync device has too many sockets: closing its oldest", "limit", s.MaxDeviceConns)
		oldest.reply(&wire.Error{Code: wire.CodeRateLimited, Message: "this device opened too many connections; closing the oldest"})
		oldest.closeWith(websocket.ClosePolicyViolation, "too many connections", true)
	}
	ctx := jiaoliu.NewContextWithActor(helloCtx, actor)
	tokens, err := c.scopeTokens(ctx, actor)
	if err != nil {
		return c.fail(c.internalError("hello", err))
	}
	c.mu.Lock()
	c.actor, c.token, c.authAt, c.schema, c.cursor, c.tokens = actor, token, s.Now(), h.SchemaVersion, h.Cursor, tokens
	c.mu.Unlock()
	// Subscribed before the welcome, so a device that has its welcome is poked for
	// every later change; what the hub delivers before the welcome is queued is held
	// until then (see notified).
	sub := s.hub.SubscribeFunc(actor.UserID, actor.DeviceID, tokens, c.notified)
	scope := s.limits.scopes.join(s, c, actor, tokens)
	c.mu.Lock()
	c.sub, c.scope = sub, scope
	c.headerToken = ""
	c.mu.Unlock()
	c.reply(&wire.Welcome{ServerTime: s.Now().UnixMilli(), SchemaVersion: s.Schema.Version, MinSchemaVersion: s.Schema.MinVersion,
		MaxBatch: s.MaxBatch, MaxMessageBytes: s.MaxMessageBytes, FollowsMerges: true})
	c.qmu.Lock()
	c.welcomed = true
	poke, check := c.pokeHeld, c.checkHeld
	c.pokeHeld, c.checkHeld = false, false
	c.qmu.Unlock()
	if poke {
		c.notified(false)
	}
	if check {
		c.notified(true)
	}
	s.keepalive.add(s, c)
	c.log().Info("sync session", "schema", h.SchemaVersion)
	if h.Cursor != "" {
		pending, err := s.store.Pending(ctx, h.Cursor)
		switch {
		case errors.Is(err, postgres.ErrScopeChanged):
			c.reply(&wire.Reset{Reason: wire.ReasonScopeChanged})
		case errors.Is(err, postgres.ErrInvalidCursor):
			c.reply(&wire.Reset{Reason: wire.ReasonInvalidCursor})
		case err != nil:
			c.internalError("hello", err)
		case pending:
			c.poke()
		}
	}
	return true
}

// fail sends an error and closes the session.
func (c *conn) fail(e *wire.Error) bool {
	c.reply(e)
	c.closeWith(websocket.ClosePolicyViolation, e.Code, true)
	return false
}

// session returns the actor and a context carrying it.
func (c *conn) session() (*jiaoliu.Actor, context.Context) {
	actor := c.currentActor()
	return actor, jiaoliu.NewContextWithActor(c.srv.hardCtx, actor)
}

// currentActor returns the session's actor (nil before hello authenticated it).
func (c *conn) currentActor() *jiaoliu.Actor {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.actor
}

// recover ends the session after a panic in one of its goroutines, so that a bug
// triggered by one device never takes the server down.
func (c *conn) recover(where string) {
	if p := recover(); p != nil {
		c.log().Error("sync session panic", "where", where, "panic", p, "stack", string(debug.Stack()))
		c.closeWith(websocket.CloseInternalServerErr, "internal error", false)
		c.ws.Close()
		c.finish() // the writer may be the one that panicked
	}
}

// handle handles one message after hello. A panic while handling it is logged and
// answered with an internal error; the session goes on.
func (c *conn) handle(msg message) {
	defer func() {
		if p := recover(); p != nil {
			c.log().Error("sync message panic", "panic", p, "stack", string(debug.Stack()))
			c.reply(&wire.Error{Code: wire.CodeInternal, Message: "the message could not be handled"})
		}
	}()
	s := c.srv
	// A page read ahead answers this message or none (see readahead.go).
	ahead := c.takeReadAhead()
	defer ahead.discard()
	if msg.limited {
		c.reply(&wire.Error{Code: wire.CodeRateLimited, Message: "too many messages; slow down"})
		return
	}
	if !c.reauthenticate(false) {
		return
	}
	if msg.err != nil {
		c.log().Info("sync bad message", "err", msg.err)
		c.reply(msg.err)
		return
	}
	actor, ctx := c.session()
	switch m := msg.m.(type) {
	case *wire.Push:
		c.mu.Lock()
		schema := c.schema
		c.mu.Unlock()
		// A teacher's push may change the teacher's scope: its commit pokes the
		// session's scope group, which has it recomputed (a reset sent if it changed).
		c.reply(s.push(ctx, c.log(), schema, m))
	case *wire.Pull:
		var p page
		ok := false
		if ahead.answers(m, actor) {
			p, ok = ahead.page()
		}
		if !ok {
			p = s.readPage(ctx, m)
		}
		reply := s.answerPull(ctx, c.log(), p)
		switch r := reply.(type) {
		case *changes:
			c.mu.Lock()
			c.cursor = r.Cursor
			c.mu.Unlock()
		case *wire.Reset:
			c.mu.Lock()
			c.cursor = ""
			c.mu.Unlock()
			c.refreshScope(false)
		}
		c.reply(reply)
		if r, ok := reply.(*changes); ok && r.More {
			c.readAhead(actor, r.Cursor, m.Limit)
		}
	case *wire.Verify:
		c.reply(s.verify(ctx, c.log(), m))
	case *wire.Ping:
		c.reply(&wire.Pong{ServerTime: s.Now().UnixMilli()})
	case *wire.Hello:
		c.reply(wire.BadMessage("hello was already said"))
	default:
		c.reply(wire.BadMessage("%s is not a message a client sends", m.MessageType()))
	}
}

// reauthenticate checks the session's token again when due (before every message by
// default, at once when the hub asks); it reports whether the session goes on.
func (c *conn) reauthenticate(now bool) bool {
	s := c.srv
	c.mu.Lock()
	token, old, sub, authAt := c.token, c.actor, c.sub, c.authAt
	c.mu.Unlock()
	due := now || sub.TakeRecheck() || s.ReauthInterval <= 0 || s.Now().Sub(authAt) >= s.ReauthInterval
	if !due {
		return true
	}
	actor, werr := s.authenticate(s.hardCtx, token)
	if werr == nil && !strings.EqualFold(actor.DeviceID, old.DeviceID) {
		werr = &wire.Error{Code: wire.CodeUnauthorized, Message: "the token now belongs to another device"}
	}
	switch {
	case werr != nil && werr.Code == wire.CodeUnauthorized:
		c.log().Info("sync token refused", "reason", werr.Message)
		c.fail(werr)
		return false
	case werr != nil:
		// The check itself failed (the database is away): refuse this message only.
		c.reply(werr)
		return false
	}
	c.mu.Lock()
	c.actor, c.authAt = actor, s.Now()
	c.mu.Unlock()
	if actor.Role != old.Role || actor.DistrictID != old.DistrictID || actor.SchoolID != old.SchoolID || actor.TeacherID != old.TeacherID {
		c.refreshScope(true)
	}
	return true
}

// refreshScope recomputes the scope tokens of the session; when they changed it
// updates the hub's subscriptions and, if told to, sends a reset.
func (c *conn) refreshScope(sendReset bool) {
	actor, ctx := c.session()
	tokens, err := c.scopeTokens(ctx, actor)
	if err != nil {
		if !c.over() {
			c.srv.logInfra(c.log(), slog.LevelWarn, "sync scope refresh", err)
		}
		return
	}
	c.setTokens(actor, tokens, sendReset)
}

// setTokens makes tokens, the scope tokens of actor, the session's, unless the
// session's actor changed meanwhile (its own refresh follows); when they differ from
// the session's it updates the hub's subscriptions and, if told to, sends a reset.
func (c *conn) setTokens(actor *jiaoliu.Actor, tokens []string, sendReset bool) {
	c.scopeMu.Lock()
	defer c.scopeMu.Unlock()
	if c.over() {
		return // the session is over (or shutting down)
	}
	key := scopeKey(actor)
	c.mu.Lock()
	if c.actor == nil || scopeKey(c.actor) != key {
		c.mu.Unlock()
		return
	}
	old := c.tokens
	changed := !sameTokens(old, tokens)
	var ahead *readAhead
	if changed {
		c.tokens = tokens
		ahead, c.ahead = c.ahead, nil // of the old scope
	}
	sub, scope := c.sub, c.scope
	c.mu.Unlock()
	ahead.discard()
	if sub == nil {
		return // closed before hello finished
	}
	if scope != nil && scope.key != key {
		// The user's role or assignment changed (see reauthenticate): another group.
		c.srv.limits.scopes.leave(scope, c)
		scope = nil
	}
	if scope == nil {
		scope = c.srv.limits.scopes.join(c.srv, c, actor, tokens)
		c.mu.Lock()
		c.scope = scope
		c.mu.Unlock()
	}
	if !changed {
		return
	}
	sub.SetTokens(tokens)
	if scope != nil {
		scope.sub.SetTokens(scopeTriggers(actor, tokens))
	}
	c.log().Info("sync scope changed", "tokens", len(tokens), "was", len(old))
	if sendReset {
		c.reply(&wire.Reset{Reason: wire.ReasonScopeChanged})
	}
}

// scopeTokens returns the tokens the session is poked for: the actor's read tokens,
// or hub.AllTokens for an actor that reads everything.
func (c *conn) scopeTokens(ctx context.Context, actor *jiaoliu.Actor) ([]string, error) {
	if actor.System {
		return []string{hub.AllTokens}, nil
	}
	tokens, err := c.srv.store.ActorTokens(ctx, actor)
	if err != nil {
		return nil, fmt.Errorf("scope tokens: %w", err)
	}
	return tokens, nil
}

// scopeTriggers returns the tokens of the changes that may change the scope of a
// session of actor reading with tokens, or nil when its scope depends only on the user
// record (checked at every re-authentication). A teacher reads their own school's and
// their exchanges' schools' reference data (actor_tokens in migration 00002), so the
// scope changes only with the teacher's record or exchanges (whose change log rows
// carry "t:<teacher>") or with a school the teacher serves moving to another district
// (its row carries "ps:<school>"). The other changes a teacher reads, district-wide
// reference data ("pd:<district>": policies, zones …, which poke every teacher of a
// district at once), cannot change it and cost no query.
//
// A change notification only names tokens, so every change to a teacher's records
// (each lesson) still triggers a refresh; see scopeRefresher for how those are bounded.
func scopeTriggers(actor *jiaoliu.Actor, tokens []string) []string {
	if actor == nil || actor.System || actor.Role != jiaoliu.RoleTeacher {
		return nil
	}
	out := []string{}
	for _, t := range tokens {
		if strings.HasPrefix(t, "t:") || strings.HasPrefix(t, "ps:") {
			out = append(out, t)
		}
	}
	return out
}

func sameTokens(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// poke queues a poke unless one is already waiting. The poke is encoded when it is
// written, with the session's last cursor then.
func (c *conn) poke() { c.enqueue(outMsg{poke: true}) }

// reply queues a message for the device.
func (c *conn) reply(m wire.Message) {
	data, err := wire.Encode(m)
	if err != nil {
		c.log().Error("sync encode", "type", m.MessageType(), "err", err)
		data = wire.MustEncode(&wire.Error{Code: wire.CodeInternal, Message: "the answer could not be encoded"})
	}
	c.enqueue(outMsg{data: data})
}

// internalError logs err (rate-limited when the database is away) and returns the
// internal error message for the device.
func (c *conn) internalError(what string, err error) *wire.Error {
	if !c.over() && !errors.Is(err, context.Canceled) {
		c.srv.logInfra(c.log(), slog.LevelError, "sync "+what, err)
	}
	return &wire.Error{Code: wire.CodeInternal, Message: what + " failed; try again"}
}

// enqueue adds a message to the send queue, or disconnects a device that lets the
// queue fill up.
func (c *conn) enqueue(m outMsg) {
	if waiting, bytes, full := c.queueMsg(m); full {
		c.slowReader(waiting, bytes)
	}
}

// queueMsg adds a message to the send queue and starts the writer, or reports that the
// queue is full (with what waits in it). It takes only c.qmu, so the hub may call it
// (see notified).
func (c *conn) queueMsg(m outMsg) (waiting int, bytes int64, full bool) {
	n := int64(len(m.data))
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.finished || (c.closeDue && !c.closeReq.flush) || (m.poke && c.pokeQueued) {
		return 0, 0, false
	}
	// One message may always wait, however large; more only within the bounds.
	if len(c.queue) > 0 && (len(c.queue) >= max(1, c.srv.SendQueue) || c.queueBytes+n > int64(c.srv.SendQueueBytes)) {
		return len(c.queue), c.queueBytes, true
	}
	c.queue = append(c.queue, m)
	c.queueBytes += n
	c.pokeQueued = c.pokeQueued || m.poke
	c.startWriter()
	return 0, 0, false
}

// startWriter starts the writer unless it runs or writing is over; c.qmu must be held.
func (c *conn) startWriter() {
	if !c.writing && !c.finished {
		c.writing = true
		go c.writer()
	}
}

// writer writes what is due — queued messages, a ping, the close frame — and ends
// when nothing is. An idle session has no writer, and no buffer (the socket's write
// buffer comes from a pool while a message is written).
func (c *conn) writer() {
	defer c.recover("writer")
	s := c.srv
	for {
		c.qmu.Lock()
		var m outMsg
		next := ""
		switch {
		case c.finished:
		case len(c.queue) > 0 && (!c.closeDue || c.closeReq.flush):
			next, m = "message", c.queue[0]
			c.queue[0] = outMsg{}
			c.queue = c.queue[1:]
			if len(c.queue) == 0 {
				c.queue = nil // an idle session keeps no buffer
			}
			c.queueBytes -= int64(len(m.data))
			if m.poke {
				c.pokeQueued = false
			}
		case c.closeDue:
			next = "close"
		case c.pingDue:
			next = "ping"
		}
		c.pingDue = c.pingDue && next != "ping"
		if next == "" {
			c.writing = false
			c.qmu.Unlock()
			return
		}
		req := c.closeReq
		c.qmu.Unlock()

		var err error
		switch next {
		case "message":
			if m.poke {
				c.mu.Lock()
				cursor := c.cursor
				c.mu.Unlock()
				m.data = wire.MustEncode(&wire.Poke{Cursor: cursor})
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(s.WriteWait))
			if err = c.ws.WriteMessage(websocket.TextMessage, m.data); err != nil && !c.over() {
				c.log().Info("sync socket write", "err", err)
			}
		case "ping":
			err = c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.WriteWait))
		case "close":
			c.writeClose(req.code, req.reason)
			c.finish()
			return
		}
		if err != nil {
			c.ws.Close()
			c.finish()
			return
		}
	}
}

// finish ends writing: what is still queued is dropped.
func (c *conn) finish() {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if !c.finished {
		c.finished, c.writing = true, false
		c.queue, c.queueBytes = nil, 0
		if c.written != nil {
			close(c.written)
		}
	}
}

// slowReader disconnects a device that does not read what it is sent.
func (c *conn) slowReader(waiting int, bytes int64) {
	c.slowOnce.Do(func() {
		c.log().Warn("sync slow reader disconnected", "queue", waiting, "bytes", bytes)
		c.closeWith(websocket.ClosePolicyViolation, "slow reader", false)
		// The writer may be stuck writing to this device: end the connection now.
		go func() {
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "slow reader"), time.Now().Add(100*time.Millisecond))
			c.ws.Close()
		}()
	})
}

// closeWith starts closing the session with a close frame of code and reason, written
// after the queued messages if flush is set.
func (c *conn) closeWith(code int, reason string, flush bool) {
	c.closeOnce.Do(func() {
		c.qmu.Lock()
		c.closeReq = closeReq{code: code, reason: reason, flush: flush}
		c.closeDue = true
		c.startWriter()
		c.qmu.Unlock()
		c.draining.Store(true)
	})
}

// notified is called by the hub (with its lock held: it only queues and starts work
// elsewhere, and takes no lock but c.qmu and the rerun's) when changes the session
// reads were committed — it queues a poke, coalesced with one already waiting — or
// when the session's token must be checked at once (a revocation).
func (c *conn) notified(check bool) {
	c.qmu.Lock()
	if !c.welcomed { // hello has not queued the welcome yet: it acts on these then
		c.pokeHeld = c.pokeHeld || !check
		c.checkHeld = c.checkHeld || check
		c.qmu.Unlock()
		return
	}
	c.qmu.Unlock()
	if check {
		c.checks.run(c, func() { c.reauthenticate(true) })
		return
	}
	if waiting, bytes, full := c.queueMsg(outMsg{poke: true}); full {
		go c.slowReader(waiting, bytes) // it logs, which takes c.mu
	}
}

// ping asks the writer for a keepalive ping (see keepalive).
func (c *conn) ping() {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if !c.finished {
		c.pingDue = true
		c.startWriter()
	}
}

// shutdown closes the session when the server shuts down (Server.Shutdown calls it
// after canceling the server's context, so no new message is taken): the message
// being handled is finished and its answer sent (a push is acknowledged, not cut in
// half), then what is queued, then the close frame.
func (c *conn) shutdown() {
	if c.handling.TryLock() { // no message is being handled, and none will be
		c.handling.Unlock()
		c.closeWith(websocket.CloseGoingAway, ShutdownReason, true)
		return
	}
	go func() {
		defer c.recover("shutdown")
		idle := make(chan struct{})
		go func() { c.handling.Lock(); c.handling.Unlock(); close(idle) }()
		select {
		case <-idle:
		case <-c.srv.hardCtx.Done():
		}
		c.closeWith(websocket.CloseGoingAway, ShutdownReason, true)
	}()
}

// rerun runs a function on a goroutine of its own, once at a time: asked again while it
// runs, it runs once more afterwards.
type rerun struct {
	mu             sync.Mutex
	running, again bool
}

func (r *rerun) run(c *conn, fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		r.again = true
		return
	}
	r.running = true
	go func() {
		defer c.recover("recheck")
		for {
			fn()
			r.mu.Lock()
			if !r.again {
				r.running = false
				r.mu.Unlock()
				return
			}
			r.again = false
			r.mu.Unlock()
		}
	}()
}

// writeClose sends the close frame and gives the device CloseGrace to answer.
func (c *conn) writeClose(code int, reason string) {
	err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(c.srv.WriteWait))
	if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		c.ws.Close()
		return
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(c.srv.CloseGrace))
	// The reader may have set a longer deadline just before: end the connection anyway.
	time.AfterFunc(c.srv.CloseGrace, func() { c.ws.Close() })
}
