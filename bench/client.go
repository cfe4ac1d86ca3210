package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// Device is a raw protocol client: one WebSocket session speaking sync/wire, with one
// request (push, pull) in flight at a time (or a window of pushes: PushEncodedAll), and
// pokes reported to a callback. It is what the load generator and the benchmarks drive;
// it keeps no replica.
type Device struct {
	ID      string
	ws      *websocket.Conn
	replies chan wire.Message
	done    chan struct{}
	err     atomic.Pointer[error]
	wmu     sync.Mutex

	// OnPoke, if set before Dial returns, is called (on the reader goroutine) with the
	// arrival time of each poke.
	OnPoke func(at time.Time)
	Pokes  atomic.Int64
	Resets atomic.Int64
	// Received counts the bytes of the messages received.
	Received atomic.Int64
	cursor   string
}

// Dialer is shared by the devices: small buffers, as a tablet would use.
var Dialer = &websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}

// Dial opens a session for a device at url (ws://host/sync) and says hello.
func Dial(ctx context.Context, url, deviceID, token string, onPoke func(time.Time)) (*Device, error) {
	return DialWith(ctx, Dialer, url, deviceID, token, onPoke)
}

// DialWith is Dial with another dialer (the load generator spreads its devices over
// loopback source addresses).
func DialWith(ctx context.Context, dialer *websocket.Dialer, url, deviceID, token string, onPoke func(time.Time)) (*Device, error) {
	ws, _, err := dialer.DialContext(ctx, url, http.Header{})
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	d := &Device{ID: deviceID, ws: ws, replies: make(chan wire.Message, 4), done: make(chan struct{}), OnPoke: onPoke}
	ws.SetReadLimit(4 << 20)
	if err := d.send(wire.MustEncode(&wire.Hello{Protocol: wire.ProtocolVersion, DeviceID: deviceID, Token: token, SchemaVersion: 1})); err != nil {
		ws.Close()
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	m, derr := wire.Decode(data)
	if derr != nil {
		ws.Close()
		return nil, fmt.Errorf("hello: %v", derr)
	}
	if e, ok := m.(*wire.Error); ok {
		ws.Close()
		return nil, fmt.Errorf("hello: %w", e)
	}
	if _, ok := m.(*wire.Welcome); !ok {
		ws.Close()
		return nil, fmt.Errorf("hello: got %s", m.MessageType())
	}
	_ = ws.SetReadDeadline(time.Time{})
	go d.readLoop()
	return d, nil
}

func (d *Device) send(data []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	_ = d.ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return d.ws.WriteMessage(websocket.TextMessage, data)
}

func (d *Device) readLoop() {
	defer close(d.done)
	for {
		_, data, err := d.ws.ReadMessage()
		if err != nil {
			d.err.Store(&err)
			return
		}
		d.Received.Add(int64(len(data)))
		m, derr := wire.Decode(data)
		if derr != nil {
			e := error(derr)
			d.err.Store(&e)
			return
		}
		switch m := m.(type) {
		case *wire.Poke:
			d.Pokes.Add(1)
			if d.OnPoke != nil {
				d.OnPoke(time.Now())
			}
		default:
			if _, ok := m.(*wire.Reset); ok {
				d.Resets.Add(1)
			}
			select {
			case d.replies <- m:
			case <-time.After(time.Minute):
				e := errors.New("reply not taken")
				d.err.Store(&e)
				return
			}
		}
	}
}

// roundTrip sends m and waits for the next reply that is not a poke or reset.
func (d *Device) roundTrip(ctx context.Context, m wire.Message) (wire.Message, error) {
	data, err := wire.Encode(m)
	if err != nil {
		return nil, err
	}
	_, isPull := m.(*wire.Pull)
	return d.roundTripData(ctx, isPull, data)
}

// roundTripData is roundTrip of a message encoded as data.
func (d *Device) roundTripData(ctx context.Context, isPull bool, data []byte) (wire.Message, error) {
	if err := d.send(data); err != nil {
		return nil, err
	}
	return d.reply(ctx, isPull)
}

// reply waits for the next reply that is not a poke, nor a reset unless isPull.
func (d *Device) reply(ctx context.Context, isPull bool) (wire.Message, error) {
	for {
		select {
		case r := <-d.replies:
			if _, ok := r.(*wire.Reset); ok && !isPull {
				continue // an unsolicited reset (scope changed): not this request's answer
			}
			if e, ok := r.(*wire.Error); ok {
				return nil, e
			}
			return r, nil
		case <-d.done:
			if p := d.err.Load(); p != nil {
				return nil, *p
			}
			return nil, errors.New("session closed")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// EncodedPush is a push encoded before it is sent: encoding a batch is the device's
// work, which the push benchmark does before its clock runs, as it generates the ops.
// It keeps the bytes only: the ops themselves, maps of fields, would be heap the
// server's collector marks again and again while the benchmark pushes (the devices run
// in the server's process).
type EncodedPush struct {
	data []byte
}

// Len is the encoded push's size in bytes.
func (e *EncodedPush) Len() int { return len(e.data) }

// EncodePush encodes p for PushEncoded.
func EncodePush(p *wire.Push) (*EncodedPush, error) {
	data, err := wire.Encode(p)
	if err != nil {
		return nil, err
	}
	return &EncodedPush{data: data}, nil
}

// Push sends a batch and returns its ack.
func (d *Device) Push(ctx context.Context, p *wire.Push) (*wire.Ack, error) {
	e, err := EncodePush(p)
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	return d.PushEncoded(ctx, e)
}

// PushEncoded sends a batch encoded beforehand and returns its ack.
func (d *Device) PushEncoded(ctx context.Context, e *EncodedPush) (*wire.Ack, error) {
	r, err := d.roundTripData(ctx, false, e.data)
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	a, ok := r.(*wire.Ack)
	if !ok {
		return nil, fmt.Errorf("push: got %s", r.MessageType())
	}
	return a, nil
}

// PushEncodedAll sends batches encoded beforehand with up to window of them unacknowledged
// (1: each answer awaited before the next batch is sent), as the client package does
// (client.Config.PushWindow), and gives each batch's answer to answer, in order: its
// ack, or the error the server answered it with (rate_limited, batch_too_large …). The
// server handles a socket's messages in order, so the answers come in the order of
// the batches. It stops at the first error of the connection or of answer.
func (d *Device) PushEncodedAll(ctx context.Context, pushes []*EncodedPush, window int, answer func(i int, a *wire.Ack, e *wire.Error) error) error {
	window = max(window, 1)
	sent := 0
	for i := range pushes {
		for ; sent < len(pushes) && sent-i < window; sent++ {
			if err := d.send(pushes[sent].data); err != nil {
				return fmt.Errorf("push: %w", err)
			}
		}
		r, err := d.reply(ctx, false)
		var e *wire.Error
		if errors.As(err, &e) {
			if err := answer(i, nil, e); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("push: %w", err)
		}
		a, ok := r.(*wire.Ack)
		if !ok {
			return fmt.Errorf("push: got %s", r.MessageType())
		}
		if err := answer(i, a, nil); err != nil {
			return err
		}
	}
	return nil
}

// PullAll follows the cursor from the device's last one until more is false and
// returns the number of records and bytes received.
func (d *Device) PullAll(ctx context.Context, limit int) (records, bytes int, err error) {
	start := d.Received.Load()
	defer func() { bytes = int(d.Received.Load() - start) }()
	for {
		r, err := d.roundTrip(ctx, &wire.Pull{Cursor: d.cursor, Limit: limit})
		if err != nil {
			return records, bytes, fmt.Errorf("pull: %w", err)
		}
		switch c := r.(type) {
		case *wire.Changes:
			records += len(c.Records)
			d.cursor = c.Cursor
			if !c.More {
				return records, bytes, nil
			}
		case *wire.Reset:
			d.cursor = ""
		default:
			return records, bytes, fmt.Errorf("pull: got %s", r.MessageType())
		}
	}
}

// Close closes the session.
func (d *Device) Close() error {
	d.wmu.Lock()
	_ = d.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	d.wmu.Unlock()
	err := d.ws.Close()
	<-d.done
	return err
}
