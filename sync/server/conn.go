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

// conn is one WebSocket session. Three goroutines serve it: the reader (serve), which
// reads and handles the device's messages one at a time; the writer, which alone
// writes frames, from a bounded queue; and the event loop, which turns the hub's pokes
// and revocations into messages. A device that does not read fills the queue and is
// disconnected.
type conn struct {
	srv    *Server
	ws     *websocket.Conn
	logp   atomic.Pointer[slog.Logger] // gains the device and user after hello
	remote string                      // the client's host, for rate limiting hellos

	ctx    context.Context // ends with the session or when shutdown starts; a child of the server's
	cancel context.CancelFunc
	// work carries the handling of messages: it ends with the session, or when a
	// shutdown gives up waiting, so a shutdown lets the message in flight finish.
	work       context.Context
	cancelWork context.CancelFunc
	handling   sync.Mutex // held while a message is handled

	send       chan outMsg
	sendBytes  atomic.Int64 // bytes waiting in send
	pokeQueued atomic.Bool  // a poke waits in send: pokes are coalesced

	closeOnce sync.Once
	slowOnce  sync.Once
	closing   chan struct{} // closed by closeWith
	closeReq  closeReq
	draining  atomic.Bool // no more messages are handled

	headerToken string // from the upgrade request's Authorization header
	device      string // the device it counts for in Server.devConns; guarded by Server.mu

	mu     sync.Mutex // guards the fields below
	actor  *jiaoliu.Actor
	token  string
	authAt time.Time
	schema int
	cursor string   // the last cursor this session handed out (or the hello cursor)
	tokens []string // the scope tokens the session reads with
	sub    *hub.Subscription

	scopeMu sync.Mutex // serializes scope refreshes
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
	ctx, cancel := context.WithCancel(s.ctx)
	work, cancelWork := context.WithCancel(s.hardCtx)
	id := s.nextID.Add(1)
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	c := &conn{
		srv:         s,
		ws:          ws,
		remote:      host,
		ctx:         ctx,
		cancel:      cancel,
		work:        work,
		cancelWork:  cancelWork,
		send:        make(chan outMsg, max(1, s.SendQueue)),
		closing:     make(chan struct{}),
		headerToken: bearer(r),
	}
	c.logp.Store(s.log.With("conn", id, "remote", r.RemoteAddr))
	return c
}

// log returns the session's logger.
func (c *conn) log() *slog.Logger { return c.logp.Load() }

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
	var wg sync.WaitGroup
	wg.Add(1)
	writerDone := make(chan struct{})
	go func() { defer wg.Done(); defer close(writerDone); defer c.recover("writer"); c.writeLoop() }()
	defer func() {
		// Let the writer send what closeWith asked for before the connection ends.
		select {
		case <-writerDone:
		case <-time.After(s.WriteWait):
		}
		c.cancel()
		c.cancelWork()
		c.ws.Close()
		c.mu.Lock()
		sub := c.sub
		c.mu.Unlock()
		if sub != nil {
			sub.Close()
		}
		wg.Wait()
		c.log().Debug("sync socket closed")
	}()

	defer c.recover("reader")

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
	if !onFreshStack(c, func() bool { return c.hello(data) }) {
		c.drain()
		return
	}
	wg.Add(1)
	go func() { defer wg.Done(); defer c.recover("events"); c.eventLoop() }()
	for {
		if !c.draining.Load() {
			_ = c.ws.SetReadDeadline(time.Now().Add(s.PongWait))
		}
		data, err := c.read()
		if err != nil {
			c.readFailed(err)
			break
		}
		// A shutdown waits for the message being handled (see writeLoop); once it has
		// started, no new message is taken.
		c.handling.Lock()
		if c.draining.Load() || c.ctx.Err() != nil {
			c.handling.Unlock()
			continue
		}
		onFreshStack(c, func() bool { c.handle(data); return true })
		c.handling.Unlock()
	}
	c.drain()
}

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
		if !c.draining.Load() && c.ctx.Err() == nil {
			c.log().Info("sync socket read", "err", err)
		}
		c.closeWith(websocket.CloseNormalClosure, "", false)
	}
}

// drain reads and discards until the device closes or the close grace runs out, so
// that the device reads the server's close frame before the TCP connection ends.
func (c *conn) drain() {
	c.draining.Store(true)
	select {
	case <-c.closing:
	case <-c.ctx.Done():
	}
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
	actor, werr := s.authenticate(c.ctx, token)
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
	c.logp.Store(c.log().With("device", actor.DeviceID, "user", actor.UserID))
	if oldest := s.admit(c, actor.DeviceID); oldest != nil {
		oldest.log().Info("sync device has too many sockets: closing its oldest", "limit", s.MaxDeviceConns)
		oldest.reply(&wire.Error{Code: wire.CodeRateLimited, Message: "this device opened too many connections; closing the oldest"})
		oldest.closeWith(websocket.ClosePolicyViolation, "too many connections", true)
	}
	ctx := jiaoliu.NewContextWithActor(c.ctx, actor)
	tokens, err := c.scopeTokens(ctx, actor)
	if err != nil {
		return c.fail(s.internalError(c.ctx, c.log(), "hello", err, ""))
	}
	c.mu.Lock()
	c.actor, c.token, c.authAt, c.schema, c.cursor, c.tokens = actor, token, s.Now(), h.SchemaVersion, h.Cursor, tokens
	c.sub = s.hub.Subscribe(actor.UserID, actor.DeviceID, tokens)
	c.mu.Unlock()
	c.reply(&wire.Welcome{ServerTime: s.Now().UnixMilli(), SchemaVersion: s.Schema.Version, MinSchemaVersion: s.Schema.MinVersion,
		MaxBatch: s.MaxBatch, MaxMessageBytes: s.MaxMessageBytes})
	c.log().Info("sync session", "schema", h.SchemaVersion)
	if h.Cursor != "" {
		pending, err := s.store.Pending(ctx, h.Cursor)
		switch {
		case errors.Is(err, postgres.ErrScopeChanged):
			c.reply(&wire.Reset{Reason: wire.ReasonScopeChanged})
		case errors.Is(err, postgres.ErrInvalidCursor):
			c.reply(&wire.Reset{Reason: wire.ReasonInvalidCursor})
		case err != nil:
			s.internalError(c.ctx, c.log(), "hello", err, "")
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
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.actor, jiaoliu.NewContextWithActor(c.work, c.actor)
}

// recover ends the session after a panic in one of its goroutines, so that a bug
// triggered by one device never takes the server down.
func (c *conn) recover(where string) {
	if p := recover(); p != nil {
		c.log().Error("sync session panic", "where", where, "panic", p, "stack", string(debug.Stack()))
		c.closeWith(websocket.CloseInternalServerErr, "internal error", false)
		c.ws.Close()
	}
}

// handle handles one message after hello. A panic while handling it is logged and
// answered with an internal error; the session goes on.
func (c *conn) handle(data []byte) {
	defer func() {
		if p := recover(); p != nil {
			c.log().Error("sync message panic", "panic", p, "stack", string(debug.Stack()))
			c.reply(&wire.Error{Code: wire.CodeInternal, Message: "the message could not be handled"})
		}
	}()
	s := c.srv
	actor, _ := c.session()
	if !s.limits.allow(actor.DeviceID) {
		c.reply(&wire.Error{Code: wire.CodeRateLimited, Message: "too many messages; slow down"})
		return
	}
	if !c.reauthenticate(false) {
		return
	}
	m, err := wire.Decode(data)
	if err != nil {
		c.log().Info("sync bad message", "err", err)
		c.reply(err.(*wire.Error))
		return
	}
	actor, ctx := c.session()
	switch m := m.(type) {
	case *wire.Push:
		c.mu.Lock()
		schema := c.schema
		c.mu.Unlock()
		c.reply(s.push(ctx, c.log(), schema, m))
		if actor.Role == jiaoliu.RoleTeacher {
			c.refreshScope(true)
		}
	case *wire.Pull:
		reply := s.pull(ctx, c.log(), m)
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
	actor, werr := s.authenticate(c.work, token)
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
// updates the hub's subscription and, if told to, sends a reset.
func (c *conn) refreshScope(sendReset bool) {
	c.scopeMu.Lock()
	defer c.scopeMu.Unlock()
	actor, ctx := c.session()
	tokens, err := c.scopeTokens(ctx, actor)
	if err != nil {
		if c.ctx.Err() == nil {
			c.log().Warn("sync scope refresh", "err", err)
		}
		return
	}
	c.mu.Lock()
	old := c.tokens
	changed := !sameTokens(old, tokens)
	if changed {
		c.tokens = tokens
	}
	sub := c.sub
	c.mu.Unlock()
	if !changed {
		return
	}
	sub.SetTokens(tokens)
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

func sameTokens(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// eventLoop turns the hub's pokes and revocations into messages.
func (c *conn) eventLoop() {
	c.mu.Lock()
	sub := c.sub
	c.mu.Unlock()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.closing:
			return
		case <-sub.Pokes():
			actor, _ := c.session()
			if actor.Role == jiaoliu.RoleTeacher {
				// A change may have widened or narrowed what the teacher reads (a new
				// exchange): the reset makes the device pull from the start.
				onFreshStack(c, func() bool { c.refreshScope(true); return true })
			}
			c.poke()
		case <-sub.Checks():
			onFreshStack(c, func() bool { return c.reauthenticate(true) })
		}
	}
}

// poke queues a poke unless one is already waiting.
func (c *conn) poke() {
	if !c.pokeQueued.CompareAndSwap(false, true) {
		return
	}
	c.mu.Lock()
	cursor := c.cursor
	c.mu.Unlock()
	c.enqueue(outMsg{data: wire.MustEncode(&wire.Poke{Cursor: cursor}), poke: true})
}

// reply queues a message for the device.
func (c *conn) reply(m wire.Message) {
	data, err := wire.Encode(m)
	if err != nil {
		c.log().Error("sync encode", "type", m.MessageType(), "err", err)
		data = wire.MustEncode(&wire.Error{Code: wire.CodeInternal, Message: "the answer could not be encoded"})
	}
	c.enqueue(outMsg{data: data})
}

// enqueue adds a message to the send queue, or disconnects a device that lets the
// queue fill up.
func (c *conn) enqueue(m outMsg) {
	select {
	case <-c.closing:
		if !c.closeReq.flush {
			return
		}
	default:
	}
	n := int64(len(m.data))
	// One message may always wait, however large; more only within the byte budget.
	if q := c.sendBytes.Add(n); q > n && q > int64(c.srv.SendQueueBytes) {
		c.sendBytes.Add(-n)
		c.slowReader()
		return
	}
	select {
	case c.send <- m:
	default:
		c.sendBytes.Add(-n)
		c.slowReader()
	}
}

// slowReader disconnects a device that does not read what it is sent.
func (c *conn) slowReader() {
	c.slowOnce.Do(func() {
		c.log().Warn("sync slow reader disconnected", "queue", cap(c.send), "bytes", c.sendBytes.Load())
		c.closeWith(websocket.ClosePolicyViolation, "slow reader", false)
		// The writer may be stuck writing to this device: end the connection now.
		go func() {
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "slow reader"), time.Now().Add(100*time.Millisecond))
			c.ws.Close()
		}()
	})
}

// closeWith starts closing the session with a close frame of code and reason.
func (c *conn) closeWith(code int, reason string, flush bool) {
	c.closeOnce.Do(func() {
		c.closeReq = closeReq{code: code, reason: reason, flush: flush}
		c.draining.Store(true)
		close(c.closing)
	})
}

// writeLoop writes queued messages and pings, and finally the close frame.
func (c *conn) writeLoop() {
	s := c.srv
	ping := time.NewTicker(s.PingInterval)
	defer ping.Stop()
	write := func(m outMsg) bool {
		c.sendBytes.Add(-int64(len(m.data)))
		if m.poke {
			c.pokeQueued.Store(false)
		}
		_ = c.ws.SetWriteDeadline(time.Now().Add(s.WriteWait))
		if err := c.ws.WriteMessage(websocket.TextMessage, m.data); err != nil {
			if c.ctx.Err() == nil {
				c.log().Info("sync socket write", "err", err)
			}
			c.ws.Close()
			return false
		}
		return true
	}
	for {
		select {
		case m := <-c.send:
			if !write(m) {
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.WriteWait)); err != nil {
				c.ws.Close()
				return
			}
		case <-c.closing:
			req := c.closeReq
			if req.flush {
				for done := false; !done; {
					select {
					case m := <-c.send:
						if !write(m) {
							return
						}
					default:
						done = true
					}
				}
			}
			c.writeClose(req.code, req.reason)
			return
		case <-c.ctx.Done():
			if s.ctx.Err() == nil {
				return
			}
			// Shutdown: the message being handled is finished and its answer sent (a
			// push is acknowledged, not cut in half), then what is queued, then the
			// close frame.
			idle := make(chan struct{})
			go func() { c.handling.Lock(); c.handling.Unlock(); close(idle) }()
			for waiting := true; waiting; {
				select {
				case m := <-c.send:
					if !write(m) {
						return
					}
				case <-idle:
					waiting = false
				case <-s.hardCtx.Done():
					waiting = false
				}
			}
			for flushing := true; flushing; {
				select {
				case m := <-c.send:
					if !write(m) {
						return
					}
				default:
					flushing = false
				}
			}
			c.closeWith(websocket.CloseGoingAway, ShutdownReason, false)
			c.writeClose(websocket.CloseGoingAway, ShutdownReason)
			return
		}
	}
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
