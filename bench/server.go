package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu/graph"
	"github.com/jiaoliu/jiaoliu/internal/gcfloor"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
	"github.com/jiaoliu/jiaoliu/sync/hub"
	syncserver "github.com/jiaoliu/jiaoliu/sync/server"
)

// Server is the product's HTTP handler (GraphQL and sync, wired as server/ wires them)
// served in-process on loopback, for benchmarks that need a profile of the server.
type Server struct {
	URL   string // http://127.0.0.1:port
	WSURL string // ws://127.0.0.1:port/sync
	DB    *sqlx.DB
	Store *postgres.Store
	Sync  *syncserver.Server
	Hub   *hub.Hub
	ts    *httptest.Server
	stop  context.CancelFunc
	floor func()
}

// StartServer serves the product on a loopback port against the database at dsn. The
// sync server's per-device rate limit is lifted, since a benchmark device pushes far
// faster than a tablet is allowed to. Like the server program, it keeps the garbage
// collector's heap goal at least gcfloor.DefaultMiB (64 MiB; GC_FLOOR_MIB=0 turns it off
// here too) until Close.
func StartServer(ctx context.Context, dsn string) (*Server, error) {
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("BENCH_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	store := postgres.NewStore(db, hlc.NewClock("bench-server"), log)
	root, cancel := context.WithCancel(context.Background())
	h := hub.New(log)
	go func() {
		for root.Err() == nil {
			_ = h.Listen(root, dsn)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	select {
	case <-h.Ready():
	case <-time.After(15 * time.Second):
		cancel()
		db.Close()
		return nil, fmt.Errorf("sync hub not listening")
	}
	srv := syncserver.New(store, store, h, log)
	srv.RateLimit, srv.RateBurst = 1e9, 1e9
	mux := http.NewServeMux()
	mux.Handle("/graphql", graph.Authenticate(store, log, graph.Middleware(store, graph.NewHandler(store, log))))
	srv.Routes(mux)
	ts := httptest.NewUnstartedServer(mux)
	ts.Config.BaseContext = nil
	ts.Start()
	floor := uint64(gcfloor.DefaultMiB)
	if v, err := strconv.ParseUint(os.Getenv("GC_FLOOR_MIB"), 10, 64); err == nil {
		floor = v
	}
	return &Server{URL: ts.URL, WSURL: "ws" + strings.TrimPrefix(ts.URL, "http") + "/sync", DB: db, Store: store,
		Sync: srv, Hub: h, ts: ts, stop: cancel, floor: gcfloor.Start(floor << 20)}, nil
}

// Close stops serving and closes the database pool.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.Sync.Shutdown(ctx)
	s.ts.CloseClientConnections()
	s.ts.Close()
	s.stop()
	s.DB.Close()
	s.floor()
}
