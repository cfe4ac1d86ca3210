package graph

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"

	"github.com/jiaoliu/jiaoliu"
)

// Timings of the GraphQL websocket.
const (
	// DefaultKeepAlive is how often the server sends graphql-ws keepalives ("ka") and
	// graphql-transport-ws pings; a graphql-transport-ws client that answers no ping
	// for twice as long is disconnected.
	DefaultKeepAlive = 25 * time.Second
	// WebsocketInitTimeout is how long a client may take to send connection_init.
	WebsocketInitTimeout = 10 * time.Second
	wsWriteWait          = 10 * time.Second
	wsCloseGrace         = time.Second
)

// Close codes of the GraphQL websocket (those of graphql-transport-ws, which the
// legacy graphql-ws clients handle as well).
const (
	// CloseForbidden refuses a connection_init without valid credentials, or from a
	// user who may not subscribe.
	CloseForbidden = 4403
	// CloseInternal refuses a connection_init that could not be checked (the database
	// is away); the client may retry.
	CloseInternal = 4500
)

// CheckOrigin returns the origin check of the server's websockets (this one and the
// sync endpoint's): it allows requests without Origin (not a browser: no cross-site
// risk), pages of this server (the Origin's host is the request's Host), and pages
// matching one of patterns — a host ("admin.example.org", "*.example.org") or a scheme
// and host ("https://*.example.org"), matched with path.Match, case-insensitively (the
// rules of coder/websocket's OriginPatterns).
func CheckOrigin(patterns []string) func(r *http.Request) bool {
	patterns = slices.Clone(patterns)
	return func(r *http.Request) bool { return originAllowed(r, patterns) }
}

func originAllowed(r *http.Request, patterns []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(p), strings.ToLower(target)); err == nil && ok {
			return true
		}
	}
	return false
}

// websocketTransport returns gqlgen's websocket transport (graphql-transport-ws and
// the legacy graphql-ws) over gorilla/websocket — the library of the sync endpoint, so
// the server speaks websocket through one library — authenticating each connection
// from its connection_init payload.
func websocketTransport(auth jiaoliu.Authenticator, cfg handlerConfig, log *slog.Logger) transport.Websocket {
	limit := int64(MaxBodyBytes)
	return transport.Websocket{
		Implementation: gorillaWebsocket{upgrader: websocket.Upgrader{
			ReadBufferSize:  1024,
			WriteBufferSize: 4096,
			CheckOrigin:     func(r *http.Request) bool { return originAllowed(r, cfg.origins) },
			// gqlgen answers a failed upgrade itself; writing here too would answer twice.
			Error: func(http.ResponseWriter, *http.Request, int, error) {},
		}},
		InitFunc:              websocketInit(auth, log),
		InitTimeout:           WebsocketInitTimeout,
		KeepAlivePingInterval: cfg.keepAlive,
		PingPongInterval:      cfg.keepAlive,
		PayloadReadLimit:      &limit,
		ErrorFunc: func(ctx context.Context, err error) {
			log.DebugContext(ctx, "graphql websocket", "error", err.Error())
		},
	}
}

// websocketInit authenticates a websocket from its connection_init payload:
// {"Authorization": "Bearer <token>"} (what GraphiQL sends from its headers pane),
// {"authToken": "<token>"}, or {"headers": {"Authorization": "Bearer <token>"}}; or,
// without any, from the upgrade request's Authorization header (see Authenticate).
// Anyone else, and users who may not subscribe (teachers), are refused with close
// code 4403.
func websocketInit(auth jiaoliu.Authenticator, log *slog.Logger) transport.WebsocketInitFunc {
	refuse := func(ctx context.Context, code int, err *jiaoliu.Error) (context.Context, *transport.InitPayload, error) {
		reason := "Forbidden: " + err.Message
		if code == CloseInternal {
			reason = "Internal error: " + err.Message
		}
		if len(reason) > 123 { // the most a close frame's reason may hold
			reason = reason[:123]
		}
		ctx = transport.WithWebsocketCloseCode(ctx, code)
		return transport.AppendCloseReason(ctx, reason), nil, err
	}
	return func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		token := initToken(payload)
		actor := jiaoliu.ActorFromContext(ctx)
		if token != "" {
			a, err := auth.AuthenticateToken(ctx, token)
			switch code := jiaoliu.ErrorCode(err); {
			case err == nil && a != nil:
				actor = a
				ctx = withToken(jiaoliu.NewContextWithActor(ctx, a), token)
			case err == nil || code == jiaoliu.EUNAUTHENTICATED:
				return refuse(ctx, CloseForbidden, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "invalid or expired token"))
			default:
				log.ErrorContext(ctx, "graphql websocket: authenticate", "error", err.Error())
				return refuse(ctx, CloseInternal, jiaoliu.Errorf(jiaoliu.EINTERNAL, "cannot check the token now; try again"))
			}
		}
		if actor == nil {
			return refuse(ctx, CloseForbidden, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED,
				`sign in: send {"Authorization": "Bearer <token>"} in connection_init`))
		}
		if !mayWatchActivity(actor) {
			return refuse(ctx, CloseForbidden, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "subscriptions are for administrators and auditors"))
		}
		return context.WithValue(ctx, websocketKey{}, true), nil, nil
	}
}

// websocketKey marks the context of a websocket's operations.
type websocketKey struct{}

// overWebsocket reports whether ctx is that of an operation over the websocket.
func overWebsocket(ctx context.Context) bool {
	v, _ := ctx.Value(websocketKey{}).(bool)
	return v
}

// initToken returns the token of a connection_init payload.
func initToken(p transport.InitPayload) string {
	fromHeader := func(h string) string {
		h = strings.TrimSpace(h)
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:])
		}
		return ""
	}
	if t := fromHeader(p.Authorization()); t != "" {
		return t
	}
	if t := strings.TrimSpace(p.GetString("authToken")); t != "" {
		return t
	}
	if h, ok := p["headers"].(map[string]any); ok {
		for k, v := range h {
			if s, ok := v.(string); ok && strings.EqualFold(k, "authorization") {
				return fromHeader(s)
			}
		}
	}
	return ""
}

// gorillaWebsocket is gqlgen's websocket implementation on gorilla/websocket.
type gorillaWebsocket struct {
	upgrader websocket.Upgrader
}

var _ transport.WebsocketImplementation = gorillaWebsocket{}

// Accept implements transport.WebsocketImplementation.
func (g gorillaWebsocket) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	u := g.upgrader
	u.Subprotocols = append(append([]string(nil), u.Subprotocols...), opts.Subprotocols...)
	ws, err := u.Upgrade(w, r, opts.ResponseHeader)
	if err != nil {
		return nil, err
	}
	return &gorillaConn{ws: ws}, nil
}

// gorillaConn adapts a gorilla connection to gqlgen. gqlgen serializes its writes
// (WriteJSON, WriteClose) and reads from one goroutine, as gorilla requires.
type gorillaConn struct {
	ws        *websocket.Conn
	closeSent atomic.Bool
}

var (
	_ transport.WebsocketConn          = (*gorillaConn)(nil)
	_ transport.WebsocketReadLimiter   = (*gorillaConn)(nil)
	_ transport.WebsocketReadDeadliner = (*gorillaConn)(nil)
)

// NextReader implements transport.WebsocketConn; a normal close by the peer is
// transport.ErrWebsocketClosed.
func (c *gorillaConn) NextReader() (int, io.Reader, error) {
	typ, r, err := c.ws.NextReader()
	if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseNoStatusReceived, websocket.CloseGoingAway) {
		return typ, nil, transport.ErrWebsocketClosed
	}
	return typ, r, err
}

// WriteJSON implements transport.WebsocketConn. A client that does not read within
// wsWriteWait is disconnected rather than holding the connection's goroutines.
func (c *gorillaConn) WriteJSON(v any) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(wsWriteWait))
	if err := c.ws.WriteJSON(v); err != nil {
		_ = c.ws.Close()
		return err
	}
	return nil
}

// WriteClose implements transport.WebsocketConn.
func (c *gorillaConn) WriteClose(code int, reason string) error {
	err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(wsWriteWait))
	if err == nil {
		c.closeSent.Store(true)
	}
	if errors.Is(err, websocket.ErrCloseSent) {
		return nil
	}
	return err
}

// Close implements transport.WebsocketConn. After a close frame it gives the client
// wsCloseGrace to read it before the TCP connection ends (closing at once with unread
// input could reset the connection and lose the frame, and with it the close code).
func (c *gorillaConn) Close() error {
	if c.closeSent.Load() {
		_ = c.ws.SetReadDeadline(time.Now().Add(wsCloseGrace))
		time.AfterFunc(wsCloseGrace, func() { _ = c.ws.Close() })
		return nil
	}
	return c.ws.Close()
}

// Subprotocol implements transport.WebsocketConn.
func (c *gorillaConn) Subprotocol() string { return c.ws.Subprotocol() }

// SetReadLimit implements transport.WebsocketReadLimiter.
func (c *gorillaConn) SetReadLimit(limit int64) { c.ws.SetReadLimit(limit) }

// SetReadDeadline implements transport.WebsocketReadDeadliner.
func (c *gorillaConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }
