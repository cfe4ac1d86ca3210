package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// rawConn is a bare WebSocket to /sync for hostile-client tests: it sends whatever it
// is told and reads messages as maps.
type rawConn struct {
	tb testing.TB
	ws *websocket.Conn
}

// loopback returns the n-th loopback address 127.0.0.x (x in 2..254), so that tests
// can appear as many client addresses.
func loopback(n int) string { return fmt.Sprintf("127.0.%d.%d", 1+n/253, 2+n%253) }

// dialFrom opens a socket to the server from a source address ("" for any).
func dialFrom(ctx context.Context, base, from string, rcvbuf int) (*websocket.Conn, error) {
	nd := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	if rcvbuf > 0 {
		// Before connecting, so that the window the server sees stays small.
		nd.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDialContext: nd.DialContext}
	ws, _, err := d.DialContext(ctx, "ws://"+strings.TrimPrefix(base, "http://")+"/sync", nil)
	return ws, err
}

func dialRaw(tb testing.TB, base, from string) *rawConn {
	tb.Helper()
	ws, err := dialFrom(context.Background(), base, from, 0)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { ws.Close() })
	return &rawConn{tb: tb, ws: ws}
}

// hello says hello and returns the first answer.
func (c *rawConn) hello(deviceID, token string) map[string]any {
	c.tb.Helper()
	c.send(map[string]any{"type": "hello", "protocol": 1, "deviceId": deviceID, "token": token, "schemaVersion": 1})
	m, err := c.next(10 * time.Second)
	if err != nil {
		c.tb.Fatalf("hello: %v", err)
	}
	return m
}

func (c *rawConn) send(v any) {
	c.tb.Helper()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.ws.WriteJSON(v); err != nil {
		c.tb.Fatalf("send: %v", err)
	}
}

func (c *rawConn) sendRaw(typ int, data []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(typ, data)
}

var errTimeout = errors.New("timeout")

// next returns the next message, errTimeout, or the socket's error.
func (c *rawConn) next(d time.Duration) (map[string]any, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(d))
	_, data, err := c.ws.ReadMessage()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, errTimeout
	}
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("undecodable %q: %w", data, err)
	}
	return m, nil
}

// expect returns the next message of type typ, skipping pokes.
func (c *rawConn) expect(typ string) map[string]any {
	c.tb.Helper()
	for {
		m, err := c.next(10 * time.Second)
		if err != nil {
			c.tb.Fatalf("waiting for %s: %v", typ, err)
		}
		if m["type"] == "poke" && typ != "poke" {
			continue
		}
		if m["type"] != typ {
			c.tb.Fatalf("got %v, want %s", m, typ)
		}
		return m
	}
}

// expectError returns the next error message and checks its code.
func (c *rawConn) expectError(code string) map[string]any {
	c.tb.Helper()
	m := c.expect("error")
	if m["code"] != code {
		c.tb.Fatalf("error %v, want %s", m, code)
	}
	return m
}

// expectClose reads until the socket closes and checks the close code.
func (c *rawConn) expectClose(code int) *websocket.CloseError {
	c.tb.Helper()
	for {
		_, err := c.next(10 * time.Second)
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.tb.Fatalf("socket ended with %v, want close %d", err, code)
		}
		if ce.Code != code {
			c.tb.Fatalf("close %d %q, want %d", ce.Code, ce.Text, code)
		}
		return ce
	}
}

// post sends a body to a sync HTTP endpoint and returns the status and the decoded answer.
func post(tb testing.TB, base, path, token string, body []byte) (int, map[string]any) {
	tb.Helper()
	req, _ := http.NewRequest("POST", base+path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		tb.Fatalf("post %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}
