// Package postgres implements the domain's store on PostgreSQL with sqlx over lib/pq:
// the one write path (Apply), scoped reads for GraphQL and sync, and the embedded
// migrations.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the PostgreSQL driver
	"github.com/pressly/goose/v3"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies every pending migration to db.
func Migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Open connects to PostgreSQL at dsn and checks the connection.
func Open(ctx context.Context, dsn string) (*sqlx.DB, error) {
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.SetMaxOpenConns(PoolSize)
	db.SetMaxIdleConns(PoolSize)
	db.SetConnMaxIdleTime(5 * time.Minute)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return db, nil
}

// Store is the PostgreSQL implementation of the domain's services.
type Store struct {
	db    *sqlx.DB
	clock *hlc.Clock
	log   *slog.Logger

	keyMu sync.Mutex
	key   []byte // HMAC key of session tokens, loaded on first use

	// writeSlots bounds the write transactions of Apply running at once. More than a
	// few do not write faster on a small machine, and each device batch holds an
	// advisory lock per natural key until it commits: 40 batches of 500 lessons at once
	// overflowed PostgreSQL's shared lock table ("out of shared memory").
	writeSlots chan struct{}

	stmts      preparedCache // prepared statements of the read path
	writeStmts sharedStmts   // prepared statements of the write path (stmt.go)
	sessions   sessionCache  // recently authenticated sessions

	// teachers caches the teachers of the district views, checked against a
	// fingerprint on every use (see policy.go).
	teachers sync.Map
	// views caches the parts of the district views (see policy_cache.go).
	views viewCache
	// synced holds, by device id, when this Store last wrote the device's
	// last_sync_at (see DeviceSynced).
	synced sync.Map
}

// PoolSize is how many connections to PostgreSQL a process opens at most, all kept
// while idle (for at most 5 minutes): 5 per core, at least 10 and at most 40. When a
// burst of devices arrives at once (100 pushing their backlog), every connection of
// the pool is busy; on 2 cores 40 backends at once spent 25 % more PostgreSQL CPU per
// pushed op than 10 (148–166 against 118–120 µs, BENCHMARKS.md), and closing the
// connections above an idle limit after the burst made the next one start backends
// afresh. The environment variable JIAOLIU_DB_CONNS overrides it (the database may have
// more cores than this process sees).
var PoolSize = func() int {
	if n, err := strconv.Atoi(os.Getenv("JIAOLIU_DB_CONNS")); err == nil && n > 0 {
		return n
	}
	return min(max(5*runtime.NumCPU(), 10), 40)
}()

// ConcurrentWrites is how many Apply transactions a Store runs at once (the others wait
// for a slot): two per core, at least 2 and at most 8. A transaction keeps its slot
// while its Go side builds rows and while its commit waits for the WAL flush, so one
// per core left the cores idle a sixth of the time: on 2 cores, 4 slots push 6–8 %
// more ops per second than 2 at the same CPU per op (BENCHMARKS.md, session 16). Many
// more writing backends than cores mostly wait for each other's buffer and lock-manager
// locks: 8 at once cost 10–30 % more PostgreSQL CPU per pushed op than 2 (push
// session 3). The environment variable JIAOLIU_WRITE_SLOTS overrides it (the database
// may have more cores than this process sees).
var ConcurrentWrites = func() int {
	if n, err := strconv.Atoi(os.Getenv("JIAOLIU_WRITE_SLOTS")); err == nil && n > 0 {
		return n
	}
	return min(2*runtime.NumCPU(), 8) // at least 2: a process sees at least one core
}()

var _ jiaoliu.Writer = (*Store)(nil)

// NewStore returns a store on db that stamps server-side edits with clock.
func NewStore(db *sqlx.DB, clock *hlc.Clock, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{db: db, clock: clock, log: log, writeSlots: make(chan struct{}, ConcurrentWrites), writeStmts: sharedStmts{db: db}}
}

// DB returns the underlying database handle.
func (s *Store) DB() *sqlx.DB { return s.db }

// Clock returns the server's HLC.
func (s *Store) Clock() *hlc.Clock { return s.clock }

// Ready reports whether the database answers and is migrated.
func (s *Store) Ready(ctx context.Context) error {
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT count(*) FROM districts WHERE false`); err != nil {
		return fmt.Errorf("database not ready: %w", err)
	}
	return nil
}

// CheckScopeCopies returns an error naming the records whose district_scopes differ
// from the district tokens of their change log's scopes (migration 00018: a copy kept
// by a trigger, which a district reader's lists read instead of the change log), or nil
// when every copy agrees. Tests run it on every test database.
func CheckScopeCopies(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT entity, id::text, district_scopes::text, coalesce(scopes::text, 'no change-log row')
		FROM scope_copy_disagreements() LIMIT 5`)
	if err != nil {
		return fmt.Errorf("check scope copies: %w", err)
	}
	defer rows.Close()
	var bad []string
	for rows.Next() {
		var entity, id, copied, scopes string
		if err := rows.Scan(&entity, &id, &copied, &scopes); err != nil {
			return fmt.Errorf("check scope copies: %w", err)
		}
		bad = append(bad, fmt.Sprintf("%s %s has district_scopes %s, change log %s", entity, id, copied, scopes))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check scope copies: %w", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("records whose district_scopes disagree with the change log: %s", strings.Join(bad, "; "))
	}
	return nil
}
