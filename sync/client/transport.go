package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// transport carries protocol messages to the server and back: a WebSocket, or the
// HTTP fallback, where each message sent is answered by exactly one message.
type transport interface {
	// send writes a message to the server.
	send(ctx context.Context, m wire.Message) error
	// recv returns the next message from the server.
	recv(ctx context.Context) (wire.Message, error)
	// incoming delivers the server's messages as they arrive, for a session that is
	// idle; nil for HTTP.
	incoming() <-chan wire.Message
	// closed is closed when the connection ended; err then tells why.
	closed() <-chan struct{}
	err() error
	// close ends the connection politely; drop ends it abruptly (a lost link).
	close()
	drop()
}

// errConnClosed is the error of a transport that was closed by this side.
var errConnClosed = errors.New("connection closed")

// wsTransport is a WebSocket session. One goroutine reads the socket into a channel;
// the session's goroutine writes (gorilla allows one writer plus control frames).
type wsTransport struct {
	ws       *websocket.Conn
	in       chan wire.Message
	done     chan struct{}
	once     sync.Once
	mu       sync.Mutex
	readErr  error
	timeout  time.Duration
	pongWait time.Duration
	log      *slog.Logger
}

// wsURL turns the server's base URL into its WebSocket endpoint.
func wsURL(server string) string {
	switch {
	case strings.HasPrefix(server, "https://"):
		return "wss://" + strings.TrimPrefix(server, "https://") + "/sync"
	default:
		return "ws://" + strings.TrimPrefix(server, "http://") + "/sync"
	}
}

func dialWS(ctx context.Context, server string, cfg Config, log *slog.Logger) (*wsTransport, error) {
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: cfg.RequestTimeout,
		ReadBufferSize:   16 << 10,
		WriteBufferSize:  16 << 10,
	}
	ws, resp, err := d.DialContext(ctx, wsURL(server), nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("connect to %s: %w (HTTP %d)", wsURL(server), err, resp.StatusCode)
		}
		return nil, fmt.Errorf("connect to %s: %w", wsURL(server), err)
	}
	// The server keeps its messages under maxMessageBytes (1 MiB by default); this is
	// only a guard against a runaway peer.
	ws.SetReadLimit(64 << 20)
	t := &wsTransport{ws: ws, in: make(chan wire.Message, 256), done: make(chan struct{}),
		timeout: cfg.RequestTimeout, pongWait: cfg.PongWait, log: log}
	ws.SetPingHandler(func(data string) error {
		_ = ws.SetReadDeadline(time.Now().Add(t.pongWait))
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(10*time.Second))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			return err
		}
		return nil
	})
	go t.read()
	return t, nil
}

// read delivers the server's messages until the socket ends.
func (t *wsTransport) read() {
	defer close(t.in)
	for {
		_ = t.ws.SetReadDeadline(time.Now().Add(t.pongWait))
		typ, data, err := t.ws.ReadMessage()
		if err != nil {
			t.fail(err)
			return
		}
		if typ != websocket.TextMessage {
			t.log.Warn("sync: server sent a binary frame; ignored")
			continue
		}
		m, err := wire.Decode(data)
		if err != nil {
			t.fail(fmt.Errorf("the server sent an invalid message: %w", err))
			return
		}
		select {
		case t.in <- m:
		case <-t.done:
			return
		}
	}
}

func (t *wsTransport) fail(err error) {
	t.mu.Lock()
	if t.readErr == nil {
		t.readErr = err
	}
	t.mu.Unlock()
	t.once.Do(func() { close(t.done) })
	t.ws.Close()
}

func (t *wsTransport) send(ctx context.Context, m wire.Message) error {
	data, err := wire.Encode(m)
	if err != nil {
		return err
	}
	select {
	case <-t.done:
		return t.err()
	default:
	}
	deadline := time.Now().Add(t.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = t.ws.SetWriteDeadline(deadline)
	if err := t.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		t.fail(err)
		return fmt.Errorf("send %s: %w", m.MessageType(), err)
	}
	return nil
}

func (t *wsTransport) recv(ctx context.Context) (wire.Message, error) {
	timer := time.NewTimer(t.timeout)
	defer timer.Stop()
	select {
	case m, ok := <-t.in:
		if !ok {
			return nil, t.err()
		}
		return m, nil
	case <-ctx.Done():
		t.drop()
		return nil, ctx.Err()
	case <-timer.C:
		// The answer may still come; the conversation is out of step, so start over.
		t.drop()
		return nil, fmt.Errorf("no answer from the server within %v", t.timeout)
	}
}

func (t *wsTransport) incoming() <-chan wire.Message { return t.in }
func (t *wsTransport) closed() <-chan struct{}       { return t.done }

func (t *wsTransport) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.readErr == nil {
		return errConnClosed
	}
	var ce *websocket.CloseError
	if errors.As(t.readErr, &ce) {
		return fmt.Errorf("the server closed the connection (%d %s): %w", ce.Code, ce.Text, errConnClosed)
	}
	return fmt.Errorf("connection lost: %w", t.readErr)
}

func (t *wsTransport) close() {
	_ = t.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	t.fail(errConnClosed)
}

func (t *wsTransport) drop() { t.fail(errConnClosed) }

// httpTransport is the HTTP fallback: each message is POSTed to its endpoint and the
// body of the answer is the reply.
type httpTransport struct {
	client  *http.Client
	server  string
	token   string
	pending wire.Message
	done    chan struct{}
	once    sync.Once
	// onDate receives the server's Date header (its clock, to the second) with the
	// device's clock when the request left and when the answer came.
	onDate func(server, sent, received time.Time)
	now    func() time.Time
}

func (t *httpTransport) send(ctx context.Context, m wire.Message) error {
	switch m.(type) {
	case *wire.Push, *wire.Pull, *wire.Verify:
	default:
		return fmt.Errorf("the HTTP fallback cannot carry %s", m.MessageType())
	}
	select {
	case <-t.done:
		return errConnClosed
	default:
	}
	t.pending = m
	return nil
}

// errNoVerifyEndpoint: the server has no POST /sync/verify (it is an extension).
var errNoVerifyEndpoint = errors.New("the server has no HTTP verify endpoint")

func (t *httpTransport) recv(ctx context.Context) (wire.Message, error) {
	m := t.pending
	if m == nil {
		return nil, errors.New("HTTP fallback: nothing was sent")
	}
	t.pending = nil
	body, err := wire.Encode(m)
	if err != nil {
		return nil, err
	}
	url := t.server + "/sync/" + m.MessageType()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", url, err)
	}
	req.Header.Set("Authorization", "Bearer "+t.token)
	req.Header.Set("Content-Type", "application/json")
	sent := t.now()
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("POST %s: read the answer: %w", url, err)
	}
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil && t.onDate != nil {
		t.onDate(d, sent, t.now())
	}
	reply, derr := wire.Decode(data)
	if derr != nil {
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			if _, ok := m.(*wire.Verify); ok {
				return nil, errNoVerifyEndpoint
			}
		}
		return nil, fmt.Errorf("POST %s: HTTP %d: %w", url, resp.StatusCode, derr)
	}
	if _, isErr := reply.(*wire.Error); resp.StatusCode != http.StatusOK && !isErr {
		return nil, fmt.Errorf("POST %s: HTTP %d with a %s", url, resp.StatusCode, reply.MessageType())
	}
	return reply, nil
}

func (t *httpTransport) incoming() <-chan wire.Message { return nil }
func (t *httpTransport) closed() <-chan struct{}       { return t.done }
func (t *httpTransport) err() error                    { return errConnClosed }
func (t *httpTransport) close()                        { t.once.Do(func() { close(t.done) }) }
func (t *httpTransport) drop()                         { t.close() }
