package client

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// SchemaVersion is the version of the entity fields this client was built for
// (hello.schemaVersion).
const SchemaVersion = 1

// Defaults of Config.
const (
	DefaultRequestTimeout = 2 * time.Minute
	DefaultMinBackoff     = 500 * time.Millisecond
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultPollInterval   = 30 * time.Second
	DefaultOutboxCheck    = 5 * time.Second
	DefaultPongWait       = 75 * time.Second
	DefaultPushWindow     = 2
	// defaultMaxBatch and defaultMaxMessageBytes are used until a welcome says
	// otherwise (and over HTTP, where there is no welcome): the protocol's defaults.
	defaultMaxBatch        = 500
	defaultMaxMessageBytes = 1 << 20
)

// Errors of the package. Use errors.Is.
var (
	// ErrNotFound: the record is not in the local replica.
	ErrNotFound = errors.New("record not found")
	// ErrNotConfigured: the device has no server, device id or token yet.
	ErrNotConfigured = errors.New("device not configured: set the server, device id and token")
	// ErrUnauthorized: the server refused the device token (unknown or revoked); syncing
	// cannot succeed until the device gets a new token.
	ErrUnauthorized = errors.New("the server refused the device token")
	// ErrIncompatible: the server does not accept this client (protocol or schema
	// version too old); the app must be updated.
	ErrIncompatible = errors.New("the server does not accept this client version")
	// ErrReplicaMismatch: after a full pull the replica still does not match the
	// server's checksum.
	ErrReplicaMismatch = errors.New("the replica does not match the server after a full pull")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client closed")
)

// ServerError is an error message the server sent (wire.Error), for example
// rate_limited or internal. It wraps ErrUnauthorized or ErrIncompatible where they
// apply.
type ServerError struct {
	Code    string
	Message string
}

// Error implements the error interface.
func (e *ServerError) Error() string { return "server: " + e.Code + ": " + e.Message }

// Unwrap maps permanent codes to the package's errors.
func (e *ServerError) Unwrap() error {
	switch e.Code {
	case wire.CodeUnauthorized:
		return ErrUnauthorized
	case wire.CodeProtocolVersion, wire.CodeSchemaTooOld:
		return ErrIncompatible
	}
	return nil
}

// Permanent reports whether err means that retrying cannot help until something
// changes on the device (a new token, an updated app).
func Permanent(err error) bool {
	return errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrIncompatible) || errors.Is(err, ErrNotConfigured)
}

// Config configures a Client. Empty identity fields are taken from the local
// database; non-empty ones are stored there, so a device is configured once.
type Config struct {
	// ServerURL is the server's base URL, e.g. http://127.0.0.1:8080. The WebSocket
	// endpoint is its /sync (ws:// or wss://), the HTTP fallback its /sync/push and
	// /sync/pull.
	ServerURL string
	// DeviceID and Token identify the device (registerDevice in the GraphQL API).
	// DeviceID is also the node of the device's HLC.
	DeviceID string
	Token    string
	// HTTP makes Sync and Run use the HTTP fallback instead of a WebSocket (for
	// networks whose proxies block WebSockets). Run then polls every PollInterval.
	HTTP bool
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
	// Now is the wall clock (for tests and simulated skew); nil is time.Now.
	Now func() time.Time
	// HTTPClient is used for the HTTP fallback; nil uses a client with RequestTimeout.
	HTTPClient *http.Client
	// RequestTimeout bounds the wait for each answer of the server.
	RequestTimeout time.Duration
	// MinBackoff and MaxBackoff bound Run's reconnection delay, which doubles after
	// each failure (with jitter) and resets after a successful session.
	MinBackoff, MaxBackoff time.Duration
	// PollInterval is how often Run syncs over HTTP, where there are no pokes.
	PollInterval time.Duration
	// OutboxCheck is how often Run looks at the outbox for ops written by another
	// process or handle on the same file (its own writes are pushed at once).
	OutboxCheck time.Duration
	// PongWait is how long a WebSocket may stay silent (the server pings every 25 s)
	// before the client gives it up and reconnects.
	PongWait time.Duration
	// PullLimit is the number of records asked for per pull page (0: the server's
	// maxBatch).
	PullLimit int
	// SchemaVersion is hello.schemaVersion (0: SchemaVersion).
	SchemaVersion int
	// PushWindow is how many pushes may wait for their acks at once over a WebSocket
	// (0: 2; 1: each ack is awaited before the next push is sent). With two, the
	// server applies a batch while the next is on its way, which over a slow link
	// saves a round trip per batch. Over HTTP each push waits for its answer.
	PushWindow int
}

// Client is a device's replica and outbox, and its sync sessions. Its methods are safe
// for concurrent use; one sync session runs at a time.
type Client struct {
	db    *sql.DB
	path  string
	cfg   Config
	log   *slog.Logger
	clock *hlc.Clock
	now   func() time.Time

	mu       sync.Mutex // guards the identity below and closed
	deviceID string
	token    string
	server   string
	closed   bool

	syncMu  sync.Mutex    // one sync session (Sync or a round of Run) at a time
	outbox  chan struct{} // signalled when an op is added; Run pushes
	done    chan struct{} // closed by Close; Run stops
	running sync.Mutex    // held by Run

	hooks hooks // test hooks; zero in production
}

// hooks let tests inject faults at the exact points that matter.
type hooks struct {
	// beforeSend may replace a message about to be written to the server (a push the
	// server will refuse).
	beforeSend func(m wire.Message) wire.Message
	// afterSend runs after a message was written to the server and before its answer
	// is read. A non-nil error drops the connection and is returned (a connection lost
	// mid-push, or a crash after sending).
	afterSend func(m wire.Message) error
	// beforeAckApplied runs when an ack arrived, before it is stored. A non-nil error
	// drops the ack (a crash between receiving the ack and storing it).
	beforeAckApplied func(a *wire.Ack) error
}

// NewID returns a new record or op id as devices make them: jiaoliu.NewID, a
// time-ordered UUIDv7.
func NewID() string { return jiaoliu.NewID() }

// Open opens or creates the device database at path. Non-empty identity fields of
// cfg are stored; a database that already belongs to another device with data in it
// refuses a different DeviceID.
func Open(path string, cfg Config) (*Client, error) {
	ctx := context.Background()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.OutboxCheck <= 0 {
		cfg.OutboxCheck = DefaultOutboxCheck
	}
	if cfg.PongWait <= 0 {
		cfg.PongWait = DefaultPongWait
	}
	if cfg.SchemaVersion <= 0 {
		cfg.SchemaVersion = SchemaVersion
	}
	if cfg.PushWindow <= 0 {
		cfg.PushWindow = DefaultPushWindow
	}
	if cfg.ServerURL != "" {
		u, err := normalizeServerURL(cfg.ServerURL)
		if err != nil {
			return nil, err
		}
		cfg.ServerURL = u
	}
	db, err := openDB(ctx, path)
	if err != nil {
		return nil, err
	}
	c := &Client{db: db, path: path, cfg: cfg, log: cfg.Logger, now: cfg.Now, outbox: make(chan struct{}, 1), done: make(chan struct{})}
	if err := c.loadIdentity(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

// normalizeServerURL checks a server URL and strips a trailing slash.
func normalizeServerURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("server URL %q: want http://host:port or https://host", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// loadIdentity merges the configured identity with the stored one and sets up the
// clock.
func (c *Client) loadIdentity(ctx context.Context) error {
	return c.inTx(ctx, func(tx *localTx) error {
		stored := map[string]string{}
		for _, k := range []string{metaDeviceID, metaToken, metaServerURL} {
			v, err := getMeta(ctx, tx, k)
			if err != nil {
				return err
			}
			stored[k] = v
		}
		if id := c.cfg.DeviceID; id != "" && stored[metaDeviceID] != "" && !strings.EqualFold(id, stored[metaDeviceID]) {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM outbox)`).Scan(&n); err != nil {
				return fmt.Errorf("check the local database: %w", err)
			}
			if n > 0 {
				return fmt.Errorf("%s belongs to device %s and holds its data; use another file for device %s", c.path, stored[metaDeviceID], id)
			}
			// An empty database may change hands: start over with the new device.
			for _, k := range []string{metaCursor, metaPullGen, metaFullPull, metaHLC, metaClockOffset} {
				if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key = ?`, k); err != nil {
					return fmt.Errorf("reset the local database: %w", err)
				}
			}
		}
		for k, v := range map[string]string{metaDeviceID: c.cfg.DeviceID, metaToken: c.cfg.Token, metaServerURL: c.cfg.ServerURL} {
			if v == "" {
				continue
			}
			if err := setMeta(ctx, tx, k, v); err != nil {
				return err
			}
			stored[k] = v
		}
		c.deviceID, c.token, c.server = stored[metaDeviceID], stored[metaToken], stored[metaServerURL]
		node := c.deviceID
		if node == "" {
			node = "unregistered"
		}
		now := c.now
		c.clock = hlc.NewClockWithSource(node, func() int64 { return now().UnixMilli() })
		offset, err := getMetaInt(ctx, tx, metaClockOffset)
		if err != nil {
			return err
		}
		c.clock.SetOffset(offset)
		last, err := getMeta(ctx, tx, metaHLC)
		if err != nil {
			return err
		}
		if last != "" {
			// Never issue an HLC below one issued before, even if the wall clock went back.
			c.clock.Update(last)
		}
		return nil
	})
}

// DeviceID returns the device's id ("" if not configured).
func (c *Client) DeviceID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deviceID
}

// identity returns the server URL, device id and token, or ErrNotConfigured.
func (c *Client) identity() (server, device, token string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return "", "", "", ErrClosed
	}
	if c.server == "" || c.deviceID == "" || c.token == "" {
		return "", "", "", ErrNotConfigured
	}
	return c.server, c.deviceID, c.token, nil
}

// Close closes the local database; a running Run returns ErrClosed. Ops in the outbox
// stay there for the next Open.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	c.mu.Unlock()
	// Wait for a running sync round to finish its local transaction.
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	if err := c.db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", c.path, err)
	}
	return nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *Client) checkOpen() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	return nil
}

// nowMs returns the local wall clock in unix milliseconds (uncorrected: for local
// bookkeeping only).
func (c *Client) nowMs() int64 { return c.now().UnixMilli() }
