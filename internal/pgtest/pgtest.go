// Package pgtest gives tests a real PostgreSQL database: one throwaway
// cluster per test binary, started by Run from TestMain, and a fresh
// database per test, copied from a migrated template by NewDB or NewDSN.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, postgres.Migrate)) }
//
//	func TestSomething(t *testing.T) {
//		db := pgtest.NewDB(t)
//		...
//	}
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu/internal/pgcluster"
)

// TemplateDB is the name of the migrated database that every test database
// is copied from.
const TemplateDB = "template_app"

// maxIdentifier is PostgreSQL's limit on identifier length (NAMEDATALEN-1).
const maxIdentifier = 63

// Timeouts for the work Run and the per-test helpers do on the cluster.
const (
	setupTimeout = 2 * time.Minute
	dbTimeout    = 30 * time.Second
)

// The state Run sets up before the tests run and tears down after them.
var (
	cluster  *pgcluster.Cluster
	admin    *sql.DB  // connected to the "postgres" database, for CREATE and DROP DATABASE
	tmpDir   string   // the cluster's directory, removed after the tests
	watchdog *os.File // write end of the watchdog's pipe; see startWatchdog
	seq      atomic.Int64
	// createSuffix ends CREATE DATABASE: on PostgreSQL 15 and later
	// STRATEGY FILE_COPY, which copies a small template in about 12 ms here
	// where the default WAL_LOG writes the whole copy to the WAL.
	createSuffix string
	checks       []Check
)

// A Check verifies an invariant of a test's database after the test, before the
// database is dropped (such as postgres.CheckScopeCopies); an error fails the test.
type Check func(ctx context.Context, db *sql.DB) error

// minServerVersion is the oldest server with DROP DATABASE ... WITH (FORCE).
const minServerVersion = 130000

// Run starts a throwaway cluster (in a temporary directory, with fsync off;
// in /dev/shm unless TMPDIR is set, when that has room),
// creates the database TemplateDB, calls migrate on it, marks it as a
// template, runs the tests, stops the cluster and removes the directory, and
// returns the exit code for os.Exit. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, postgres.Migrate)) }
//
// If the PostgreSQL binaries are missing, Run prints what to install and
// returns 1 rather than skipping the tests. migrate may be nil. Every test database
// is checked with checks when its test ends.
//
// The cluster is also stopped and its directory removed when the test binary
// dies before Run returns: on a panic in a test, a -timeout, SIGINT or
// SIGKILL. A watchdog process that outlives the binary does that, since no
// deferred function runs in those cases.
func Run(m *testing.M, migrate func(ctx context.Context, db *sql.DB) error, check ...Check) (code int) {
	checks = check
	// Parse the flags now (m.Run would parse them anyway) so that
	// testing.Verbose can decide whether to report timings.
	flag.Parse()
	defer func() {
		if err := teardown(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}()
	if err := setup(migrate); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	return m.Run()
}

// NewDB creates a fresh database for the test as a copy of TemplateDB and
// returns an open connection pool to it. The pool is closed and the database
// dropped when the test ends; NewDB fails the test if Run has not set up a
// cluster.
func NewDB(tb testing.TB) *sqlx.DB {
	tb.Helper()
	dsn := NewDSN(tb)
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	db, err := sqlx.ConnectContext(ctx, "postgres", dsn)
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	// Registered after NewDSN's cleanup, so it runs before the drop.
	tb.Cleanup(func() { db.Close() })
	return db
}

// NewDSN creates a fresh database for the test as a copy of TemplateDB and
// returns its lib/pq connection string, for tests that start a whole server
// with DATABASE_URL. The database is dropped when the test ends, after its
// remaining connections are terminated.
func NewDSN(tb testing.TB) string {
	tb.Helper()
	if cluster == nil {
		tb.Fatal("pgtest: no cluster: call pgtest.Run from TestMain")
	}
	name := dbName(tb.Name(), seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)+" TEMPLATE "+TemplateDB+createSuffix); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
		defer cancel()
		if err := runChecks(ctx, cluster.DSN(name)); err != nil {
			tb.Errorf("pgtest: database %s after the test: %v", name, err)
		}
		// FORCE terminates the connections the test left open.
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return cluster.DSN(name)
}

// runChecks runs the checks Run was given on the database at dsn.
func runChecks(ctx context.Context, dsn string) error {
	if len(checks) == 0 {
		return nil
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, c := range checks {
		if err := c(ctx, db); err != nil {
			return err
		}
	}
	return nil
}

// Cluster returns the cluster Run started, for fault-injection tests, or nil
// outside Run. Stopping or killing it affects every test running at the time.
func Cluster() *pgcluster.Cluster {
	return cluster
}

// setup starts the cluster and prepares the template database.
func setup(migrate func(ctx context.Context, db *sql.DB) error) error {
	if _, err := pgcluster.FindBinaries(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	dir, err := makeClusterDir()
	if err != nil {
		return err
	}
	tmpDir = dir
	if err := startWatchdog(filepath.Join(dir, "pgdata"), dir); err != nil {
		// The normal teardown still works; only crashes would leak the server.
		fmt.Fprintf(os.Stderr, "pgtest: warning: %v\n", err)
	}

	begin := time.Now()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Fsync: false, Logger: logger})
	if err != nil {
		return err
	}
	cluster = c
	started := time.Since(begin)

	admin, err = sql.Open("postgres", c.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("open admin database: %w", err)
	}
	var version int
	if err := admin.QueryRowContext(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return fmt.Errorf("query server version: %w", err)
	}
	if version < minServerVersion {
		return fmt.Errorf("PostgreSQL %d found, pgtest needs 13 or newer", version/10000)
	}
	if version >= 150000 {
		createSuffix = " STRATEGY FILE_COPY"
	}
	begin = time.Now()
	if err := createTemplate(ctx, migrate); err != nil {
		return err
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "pgtest: cluster started in %v, template migrated in %v\n",
			started.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	}
	return nil
}

// createTemplate creates TemplateDB, migrates it and marks it as a template
// that accepts no connections, so that no session can block the copies.
func createTemplate(ctx context.Context, migrate func(ctx context.Context, db *sql.DB) error) error {
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+TemplateDB); err != nil {
		return fmt.Errorf("create template database: %w", err)
	}
	if migrate != nil {
		db, err := sql.Open("postgres", cluster.DSN(TemplateDB))
		if err != nil {
			return fmt.Errorf("open template database: %w", err)
		}
		err = migrate(ctx, db)
		db.Close()
		if err != nil {
			return fmt.Errorf("migrate template database: %w", err)
		}
	}
	// A connection that migrate leaked (an unclosed *sql.Rows) would make
	// every CREATE DATABASE ... TEMPLATE fail.
	if _, err := admin.ExecContext(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "+
		"WHERE datname = $1 AND pid <> pg_backend_pid()", TemplateDB); err != nil {
		return fmt.Errorf("disconnect template database: %w", err)
	}
	if _, err := admin.ExecContext(ctx, "ALTER DATABASE "+TemplateDB+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("mark template database: %w", err)
	}
	return nil
}

// shmDir is a memory-backed file system on Linux.
const shmDir = "/dev/shm"

// minShmFree is the free space shmDir needs to hold a cluster and its
// databases; Docker's default of 64 MB is too small, for example.
const minShmFree = 1 << 30

// makeClusterDir creates the directory for the cluster: under $TMPDIR when
// it is set, else in /dev/shm when that has room, else in the default
// temporary directory. On this machine's disk (ext4 mounted with discard)
// CREATE DATABASE takes about 90 ms even with fsync off, and 9 ms in memory.
func makeClusterDir() (string, error) {
	if os.Getenv("TMPDIR") == "" {
		var st syscall.Statfs_t
		if err := syscall.Statfs(shmDir, &st); err == nil && uint64(st.Bavail)*uint64(st.Bsize) >= minShmFree {
			if dir, err := os.MkdirTemp(shmDir, "pgtest-"); err == nil {
				return dir, nil
			}
		}
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return "", fmt.Errorf("create cluster directory: %w", err)
	}
	return dir, nil
}

// teardown stops the cluster and removes its directory; it is safe to call
// after a partial setup.
func teardown() error {
	var errs []error
	if admin != nil {
		admin.Close()
	}
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if tmpDir != "" {
		if err := os.RemoveAll(tmpDir); err != nil {
			errs = append(errs, fmt.Errorf("remove cluster directory: %w", err))
		}
	}
	if watchdog != nil {
		// Nothing is left to clean; let the watchdog exit now.
		watchdog.Close()
	}
	return errors.Join(errs...)
}

// watchdogScript runs in a separate process. Its standard input is a pipe
// whose only writer is the test binary, so read returns at EOF once the
// binary has exited, however it died. It then shuts the server down
// immediately (SIGQUIT to the postmaster; signals, unlike pg_ctl, work as
// root too) and removes the cluster directory. After a normal teardown it
// finds nothing to do. Arguments: $1 the data directory, $2 the directory
// to remove.
const watchdogScript = `read -r _
pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then
	i=0
	while [ -e "$1/postmaster.pid" ] && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i+1)); done
fi
rm -rf "$2"
`

// startWatchdog starts the process that cleans up after a test binary that
// died without running teardown; see watchdogScript.
func startWatchdog(dataDir, dir string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start watchdog: %w", err)
	}
	defer r.Close()
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, "pgtest-watchdog", dataDir, dir)
	cmd.Stdin = r
	// Its own process group, so that the SIGINT of a ^C reaches only the
	// test binary and the watchdog lives to clean up after it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start watchdog: %w", err)
	}
	// Never waited for: it exits after this process. Keeping w in a package
	// variable also keeps its finalizer from closing the pipe early.
	_ = cmd.Process.Release()
	watchdog = w
	return nil
}

// dbName turns a test name and a sequence number into a unique database
// name of lower-case letters, digits and underscores, at most 63 bytes.
func dbName(testName string, n int64) string {
	suffix := "_" + strconv.FormatInt(n, 10)
	var b strings.Builder
	b.WriteString("t_")
	sep := true
	for _, r := range strings.ToLower(testName) {
		if ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') {
			b.WriteRune(r)
			sep = false
		} else if !sep {
			b.WriteByte('_')
			sep = true
		}
	}
	base := strings.TrimRight(b.String(), "_")
	if len(base)+len(suffix) > maxIdentifier {
		base = base[:maxIdentifier-len(suffix)]
	}
	return base + suffix
}
