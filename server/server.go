package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/playground"
	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu/graph"
	"github.com/jiaoliu/jiaoliu/internal/gcfloor"
	"github.com/jiaoliu/jiaoliu/internal/pgcluster"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
	"github.com/jiaoliu/jiaoliu/sync/hub"
)

var errHelp = flag.ErrHelp

// Config is the server's configuration: environment variables, overridden by flags of
// the same meaning.
type Config struct {
	Addr          string // ADDR, -addr: listen address
	DatabaseURL   string // DATABASE_URL, -database-url: use this PostgreSQL instead of the embedded one
	DataDir       string // DATA_DIR, -data-dir: where the embedded PostgreSQL keeps its data
	AdminPassword string // ADMIN_PASSWORD: password of the admin created on first start
	Demo          string // DEMO, -demo: load demo data: auto (embedded database only), true, false
	LogLevel      string // LOG_LEVEL, -log-level: debug, info, warn, error
	NodeID        string // NODE_ID: this replica's HLC node id
	// DebugAddr (DEBUG_ADDR, -debug-addr): when set, serve Go's profiles
	// (/debug/pprof/) on this address, a separate listener that should stay on loopback.
	DebugAddr string
	// AllowedOrigins (ALLOWED_ORIGINS, -allowed-origins): comma-separated origin
	// patterns of browser pages, besides the server's own, that may open the websockets
	// (/graphql, /sync): "admin.example.org", "*.example.org", "https://admin.example.org".
	AllowedOrigins string
	// GCFloorMiB (GC_FLOOR_MIB, -gc-floor-mib): the garbage collector's heap goal is
	// never below this many MiB (internal/gcfloor); 0 leaves GOGC alone. Default 64.
	GCFloorMiB int
}

// Main is the whole program, so that tests can run it in-process.
type Main struct {
	Config Config
	Log    *slog.Logger

	cluster *pgcluster.Cluster
	dsn     string
	node    string
	db      *sqlx.DB
	Store   *postgres.Store
	// Hub fans out this replica's notifications: pokes to devices, sync activity to
	// GraphQL subscribers. Activity publishes this replica's sync activity to all.
	Hub       *hub.Hub
	Activity  *hub.Publisher
	http      *http.Server
	ln        net.Listener
	cancel    context.CancelFunc // cancels the root context of long-lived connections
	debugAddr string             // where the profiles are served (DEBUG_ADDR), once listening
	closers   []func(context.Context) error
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main {
	return &Main{
		Config: Config{Addr: "127.0.0.1:8080", DataDir: "./data", Demo: "auto", LogLevel: "info", GCFloorMiB: gcfloor.DefaultMiB},
		Log:    slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
}

// ParseFlags reads the environment through getenv, then the flags in args.
func (m *Main) ParseFlags(args []string, getenv func(string) string) error {
	c := &m.Config
	for key, dst := range map[string]*string{"ADDR": &c.Addr, "DATABASE_URL": &c.DatabaseURL, "DATA_DIR": &c.DataDir,
		"ADMIN_PASSWORD": &c.AdminPassword, "DEMO": &c.Demo, "LOG_LEVEL": &c.LogLevel, "NODE_ID": &c.NodeID,
		"ALLOWED_ORIGINS": &c.AllowedOrigins, "DEBUG_ADDR": &c.DebugAddr} {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	if v := getenv("GC_FLOOR_MIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("GC_FLOOR_MIB %q: want a number of MiB, 0 or more", v)
		}
		c.GCFloorMiB = n
	}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (ADDR)")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "PostgreSQL URL; empty starts an embedded PostgreSQL (DATABASE_URL)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data directory of the embedded PostgreSQL (DATA_DIR)")
	fs.StringVar(&c.Demo, "demo", c.Demo, "load demo data: auto, true or false (DEMO)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (LOG_LEVEL)")
	fs.StringVar(&c.DebugAddr, "debug-addr", c.DebugAddr, "serve /debug/pprof/ on this address, e.g. 127.0.0.1:6060 (DEBUG_ADDR)")
	fs.IntVar(&c.GCFloorMiB, "gc-floor-mib", c.GCFloorMiB, "the garbage collector's heap goal is never below this many MiB; 0 leaves GOGC alone (GC_FLOOR_MIB)")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", c.AllowedOrigins, "comma-separated origin patterns that may open websockets besides the server's own (ALLOWED_ORIGINS)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.GCFloorMiB < 0 {
		return fmt.Errorf("-gc-floor-mib %d: want 0 or more", c.GCFloorMiB)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("LOG_LEVEL %q: %w", c.LogLevel, err)
	}
	if c.Demo != "auto" && c.Demo != "true" && c.Demo != "false" {
		return fmt.Errorf("DEMO %q: want auto, true or false", c.Demo)
	}
	m.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return nil
}

// Run starts the database (embedded or not), migrates it, loads demo data when asked,
// and starts serving. It returns once the server listens; Close stops everything.
func (m *Main) Run(ctx context.Context) error {
	dsn := m.Config.DatabaseURL
	embedded := dsn == ""
	if embedded {
		var err error
		if dsn, err = m.startEmbedded(ctx); err != nil {
			return err
		}
	}
	m.dsn = dsn
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		return err
	}
	m.db = db
	if err := postgres.Migrate(ctx, db.DB); err != nil {
		return err
	}
	node := m.Config.NodeID
	if node == "" {
		host, _ := os.Hostname()
		node = "server-" + strings.ReplaceAll(host, "-", "")
	}
	m.node = node
	m.Store = postgres.NewStore(db, hlc.NewClock(node), m.Log)
	// The clock never goes below the HLCs issued before a restart (server_clock).
	if err := m.Store.SeedClock(ctx); err != nil {
		return err
	}
	if err := m.ensureAdmin(ctx); err != nil {
		return err
	}
	if m.Config.Demo == "true" || (m.Config.Demo == "auto" && embedded) {
		start := time.Now()
		loaded, err := loadDemo(ctx, m.Store)
		if err != nil {
			return fmt.Errorf("demo data: %w", err)
		}
		if loaded {
			m.Log.Info("demo data loaded", "duration", time.Since(start).Round(time.Millisecond).String())
		}
	}

	rootCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	mux, err := m.routes(rootCtx)
	if err != nil {
		return err
	}
	// Today's district dashboards are computed before anyone asks, and again after
	// each midnight in China (postgres/policy_warm.go).
	go m.Store.KeepDashboardsWarm(rootCtx)
	ln, err := net.Listen("tcp", m.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", m.Config.Addr, err)
	}
	m.ln = ln
	m.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return rootCtx }}
	go func() {
		if err := m.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("serve", "error", err.Error())
		}
	}()
	if m.Config.DebugAddr != "" {
		if err := m.serveDebug(); err != nil {
			return err
		}
	}
	m.Log.Info("listening", "addr", "http://"+ln.Addr().String(), "playground", "http://"+ln.Addr().String()+"/", "graphql", "http://"+ln.Addr().String()+"/graphql")
	return nil
}

// serveDebug serves net/http/pprof's handlers on their own listener, so that they are
// never reachable through the public address.
func (m *Main) serveDebug() error {
	ln, err := net.Listen("tcp", m.Config.DebugAddr)
	if err != nil {
		return fmt.Errorf("listen on DEBUG_ADDR %s: %w", m.Config.DebugAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	m.closers = append(m.closers, srv.Shutdown)
	m.debugAddr = ln.Addr().String()
	m.Log.Info("profiles", "addr", "http://"+ln.Addr().String()+"/debug/pprof/")
	return nil
}

// Addr returns the address the server listens on (useful with ADDR=127.0.0.1:0).
func (m *Main) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

func (m *Main) startEmbedded(ctx context.Context) (string, error) {
	dir, err := filepath.Abs(m.Config.DataDir)
	if err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	m.Log.Info("starting embedded PostgreSQL", "dir", dir)
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "postgres"), Fsync: true, Logger: m.Log})
	if err != nil {
		return "", err
	}
	m.cluster = c
	admin, err := postgres.Open(ctx, c.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer admin.Close()
	var exists bool
	if err := admin.GetContext(ctx, &exists, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'jiaoliu')`); err != nil {
		return "", fmt.Errorf("embedded database: %w", err)
	}
	if !exists {
		if _, err := admin.ExecContext(ctx, `CREATE DATABASE jiaoliu`); err != nil {
			return "", fmt.Errorf("embedded database: %w", err)
		}
	}
	return c.DSN("jiaoliu"), nil
}

// ensureAdmin creates the admin on first start, with ADMIN_PASSWORD or a generated
// password printed once.
func (m *Main) ensureAdmin(ctx context.Context) error {
	password := m.Config.AdminPassword
	generated := password == ""
	if generated {
		raw := make([]byte, 12)
		if _, err := rand.Read(raw); err != nil {
			return fmt.Errorf("admin password: %w", err)
		}
		password = base64.RawURLEncoding.EncodeToString(raw)
	}
	created, err := m.Store.EnsureAdmin(ctx, "admin", password)
	if err != nil {
		return err
	}
	if created && generated {
		fmt.Fprintf(os.Stderr, "\n  Created user \"admin\" with password %s\n  (shown once; set ADMIN_PASSWORD to choose it)\n\n", password)
	} else if created {
		m.Log.Info("created admin user from ADMIN_PASSWORD", "username", "admin")
	}
	return nil
}

// origins returns the configured origin patterns.
func (m *Main) origins() []string {
	var out []string
	for _, p := range strings.Split(m.Config.AllowedOrigins, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (m *Main) routes(rootCtx context.Context) (*http.ServeMux, error) {
	mux := http.NewServeMux()
	// The sync endpoints first: they start the hub that GraphQL subscriptions use too.
	if err := m.syncRoutes(rootCtx, mux); err != nil {
		return nil, err
	}
	api := graph.Authenticate(m.Store, m.Log, graph.Middleware(m.Store, graph.NewHandler(m.Store, m.Log,
		graph.WithActivity(m.Hub, m.Activity), graph.WithOrigins(m.origins()...))))
	mux.Handle("/graphql", api)
	mux.Handle("GET /{$}", playground.Handler("教师交流轮岗 GraphQL", "/graphql"))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain")
		if err := m.Store.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	m.exportRoutes(rootCtx, mux)
	return mux, nil
}

// Close drains HTTP requests, closes long-lived connections with a reason, closes the
// database pool and stops the embedded PostgreSQL.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var errs []error
	if m.http != nil {
		for _, c := range m.closers {
			errs = append(errs, c(ctx))
		}
		errs = append(errs, m.http.Shutdown(ctx))
	}
	if m.cancel != nil {
		m.cancel()
	}
	if m.db != nil {
		errs = append(errs, m.db.Close())
	}
	if m.cluster != nil {
		errs = append(errs, m.cluster.Stop())
	}
	return errors.Join(errs...)
}
