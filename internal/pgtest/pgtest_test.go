package pgtest_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu/internal/pgtest"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Run(m, migrate))
}

// migrate stands in for the application's migrations.
func migrate(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE widgets (id serial PRIMARY KEY, name text NOT NULL UNIQUE)`)
	return err
}

// TestFirst and TestSecond run in parallel and write the same row: each sees
// only its own, so neither can see the other's database.
func TestFirst(t *testing.T)  { t.Parallel(); MustInsertOnlyRow(t, pgtest.NewDB(t)) }
func TestSecond(t *testing.T) { t.Parallel(); MustInsertOnlyRow(t, pgtest.NewDB(t)) }

func TestTwoDatabasesAreIsolated(t *testing.T) {
	db1, db2 := pgtest.NewDB(t), pgtest.NewDB(t)
	if got, other := CurrentDatabase(t, db1), CurrentDatabase(t, db2); got == other {
		t.Fatalf("both databases are named %q", got)
	}
	MustInsertOnlyRow(t, db1)
	var n int
	if err := db2.Get(&n, "SELECT count(*) FROM widgets"); err != nil {
		t.Fatal(err)
	}
	if got, want := n, 0; got != want {
		t.Fatalf("rows in the second database=%d, want %d", got, want)
	}
}

func TestNewDSN(t *testing.T) {
	db, err := sql.Open("postgres", pgtest.NewDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	MustInsertOnlyRow(t, sqlx.NewDb(db, "postgres"))
}

func TestDatabaseDroppedAfterTest(t *testing.T) {
	var name string
	t.Run("Inner", func(t *testing.T) {
		db := pgtest.NewDB(t)
		name = CurrentDatabase(t, db)
		// A connection left open must not keep the database from being dropped.
		if _, err := db.Conn(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	admin, err := sqlx.Open("postgres", pgtest.Cluster().DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n int
	if err := admin.Get(&n, "SELECT count(*) FROM pg_database WHERE datname = $1", name); err != nil {
		t.Fatal(err)
	}
	if got, want := n, 0; got != want {
		t.Fatalf("databases named %q after the test=%d, want %d", name, got, want)
	}
}

func TestDatabaseNames(t *testing.T) {
	t.Run("Sub test/With ÜTF-8 & Symbols!", func(t *testing.T) {
		name := CurrentDatabase(t, pgtest.NewDB(t))
		if !regexp.MustCompile(`^t_testdatabasenames_sub_test_with_tf_8_symbols_[0-9]+$`).MatchString(name) {
			t.Fatalf("database name %q", name)
		}
	})
}

func TestNewDBTiming(t *testing.T) {
	const n = 10
	begin := time.Now()
	for i := 0; i < n; i++ {
		pgtest.NewDSN(t)
	}
	t.Logf("NewDSN: %v per database (CREATE DATABASE)", (time.Since(begin) / n).Round(time.Millisecond))
	begin = time.Now()
	for i := 0; i < n; i++ {
		pgtest.NewDB(t)
	}
	t.Logf("NewDB: %v per database (CREATE DATABASE, connect, ping)", (time.Since(begin) / n).Round(time.Millisecond))
}

// TestPanicStopsCluster runs this test binary again with a test that panics
// and checks that the watchdog stops the child's cluster and removes its
// directory, which no deferred function in Run could do.
func TestPanicStopsCluster(t *testing.T) {
	if os.Getenv("PGTEST_PANIC_CHILD") == "1" {
		db := pgtest.NewDB(t)
		var dataDir string
		if err := db.Get(&dataDir, "SELECT setting FROM pg_settings WHERE name = 'data_directory'"); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
		if err != nil {
			t.Fatal(err)
		}
		var pid int
		fmt.Sscan(string(b), &pid)
		fmt.Printf("DATA_DIR=%s\nPID=%d\n", dataDir, pid)
		panic("deliberate panic to test the watchdog")
	}
	if testing.Short() {
		t.Skip("starts a second cluster")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPanicStopsCluster$")
	cmd.Env = append(os.Environ(), "PGTEST_PANIC_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("child succeeded, want a panic:\n%s", out)
	}
	m := regexp.MustCompile(`DATA_DIR=(.*)\nPID=(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("child printed no data directory:\n%s", out)
	}
	dir := filepath.Dir(string(m[1]))
	pid, _ := strconv.Atoi(string(m[2]))
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, statErr := os.Stat(dir)
		alive := syscall.Kill(pid, 0) == nil && !isZombie(pid)
		if os.IsNotExist(statErr) && !alive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("20s after the panic: %s stat err=%v, postmaster %d alive=%v", dir, statErr, pid, alive)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// isZombie reports whether pid has exited but not been reaped.
func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	return regexp.MustCompile(`\) Z `).Match(b)
}

// MustInsertOnlyRow inserts a widget and checks that it is the only one.
func MustInsertOnlyRow(tb testing.TB, db *sqlx.DB) {
	tb.Helper()
	if _, err := db.Exec("INSERT INTO widgets (name) VALUES ('same name')"); err != nil {
		tb.Fatalf("insert: %v", err)
	}
	var n int
	if err := db.Get(&n, "SELECT count(*) FROM widgets"); err != nil {
		tb.Fatal(err)
	}
	if got, want := n, 1; got != want {
		tb.Fatalf("rows=%d, want %d", got, want)
	}
}

// CurrentDatabase returns the name of the database db is connected to.
func CurrentDatabase(tb testing.TB, db *sqlx.DB) string {
	tb.Helper()
	var name string
	if err := db.Get(&name, "SELECT current_database()"); err != nil {
		tb.Fatal(err)
	}
	return name
}
