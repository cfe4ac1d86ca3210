package pgcluster_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu/internal/pgcluster"
)

func TestFindBinaries(t *testing.T) {
	dir, err := pgcluster.FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("FindBinaries()=%s: %v", dir, err)
		}
	}
}

// TestCluster walks one cluster through the life cycle the other packages
// rely on: start, stop, start on the same data, crash and recovery, restart.
func TestCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	outer := t // clusters started in subtests must outlive them

	c := MustStart(t, dir)
	db := MustOpen(t, c, "postgres")
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("SELECT 1: %v", err)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before stop')"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	t.Run("StopIsIdempotent", func(t *testing.T) {
		if err := c.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := c.Stop(); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "pgdata", "postmaster.pid")); !os.IsNotExist(err) {
			t.Fatalf("postmaster.pid after Stop: err=%v, want not exist", err)
		}
	})

	t.Run("DataPersistsAcrossStart", func(t *testing.T) {
		c = MustStart(outer, dir)
		MustHaveRow(t, c, "before stop")
	})

	t.Run("KillThenStart", func(t *testing.T) {
		if err := c.Kill(); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "pgdata", "postmaster.pid")); err != nil {
			t.Fatalf("Kill should leave a stale postmaster.pid: %v", err)
		}
		if err := c.Kill(); err == nil {
			t.Fatal("Kill of a dead server returned nil, want an error")
		}
		if err := MustOpen(t, c, "postgres").PingContext(ctx); err == nil {
			t.Fatal("ping after Kill succeeded, want failure")
		}
		if err := c.Stop(); err != nil {
			t.Fatalf("Stop after Kill: %v", err)
		}
		c = MustStart(outer, dir)
		MustHaveRow(t, c, "before stop")
	})

	t.Run("Restart", func(t *testing.T) {
		db := MustOpen(t, c, "postgres")
		if _, err := db.ExecContext(ctx, "INSERT INTO kept VALUES ('before restart')"); err != nil {
			t.Fatal(err)
		}
		if err := c.Restart(ctx); err != nil {
			t.Fatalf("Restart: %v", err)
		}
		MustHaveRow(t, c, "before restart")
	})

	t.Run("KillThenRestart", func(t *testing.T) {
		if err := c.Kill(); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		if err := c.Restart(ctx); err != nil {
			t.Fatalf("Restart: %v", err)
		}
		MustHaveRow(t, c, "before restart")
	})
}

// TestStartStopsLeftoverServer starts a second Cluster on a directory whose
// server is still running, as after a test binary that died without Stop.
func TestStartStopsLeftoverServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c1 := MustStart(t, dir)
	db := MustOpen(t, c1, "postgres")
	if _, err := db.Exec("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('leftover')"); err != nil {
		t.Fatal(err)
	}
	c2 := MustStart(t, dir)
	MustHaveRow(t, c2, "leftover")
}

// TestLongDir checks the short socket directory under /tmp that a long Dir
// needs, and quoting of a path with a space and a quote in the DSN and the
// server configuration.
func TestLongDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a dir with a space and a 'quote'", strings.Repeat("long", 25))
	c := MustStart(t, dir)
	dsn := c.DSN("postgres")
	if !strings.Contains(dsn, "host=/tmp/pgsock-") {
		t.Fatalf("DSN()=%q, want a socket directory under /tmp", dsn)
	}
	MustOpen(t, c, "postgres")
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(strings.Fields(dsn)[0], "host=")
	if _, err := os.Stat(host); !os.IsNotExist(err) {
		t.Fatalf("socket directory %s after Stop: err=%v, want not exist", host, err)
	}
}

// TestCollatesByCodePoint: a new cluster collates with C (memcmp, the fast path of
// PostgreSQL's text comparisons) and classifies characters as C.UTF-8 does, where it is
// installed: upper() of a non-ASCII letter still works, and text sorts by code point,
// as it did under C.UTF-8.
func TestCollatesByCodePoint(t *testing.T) {
	t.Parallel()
	c := MustStart(t, t.TempDir())
	db := MustOpen(t, c, "postgres")
	defer db.Close()
	var collate, ctype string
	if err := db.QueryRow(`SELECT datcollate, datctype FROM pg_database WHERE datname = current_database()`).Scan(&collate, &ctype); err != nil {
		t.Fatal(err)
	}
	if collate != "C" {
		t.Errorf("datcollate = %q, want C", collate)
	}
	if ctype == "C.UTF-8" {
		var up string
		if err := db.QueryRow(`SELECT upper('é')`).Scan(&up); err != nil || up != "É" {
			t.Errorf("upper('é') = %q (%v), want É under ctype C.UTF-8", up, err)
		}
	}
	var sorted string
	if err := db.QueryRow(`SELECT string_agg(x, ',' ORDER BY x) FROM unnest(ARRAY['李四', 'b', 'é', '张三', 'B', 'a', '教研10', '教研2', 'z']) x`).Scan(&sorted); err != nil {
		t.Fatal(err)
	}
	if want := "B,a,b,z,é,张三,教研10,教研2,李四"; sorted != want {
		t.Errorf("sorted %s, want %s (code points)", sorted, want)
	}
}

func TestStartEmptyDir(t *testing.T) {
	if _, err := pgcluster.Start(context.Background(), pgcluster.Options{}); err == nil {
		t.Fatal("Start with an empty Dir returned nil, want an error")
	}
}

// MustStart starts a cluster on dir with fsync off and stops it when the test ends.
func MustStart(tb testing.TB, dir string) *pgcluster.Cluster {
	tb.Helper()
	begin := time.Now()
	c, err := pgcluster.Start(context.Background(), pgcluster.Options{Dir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Logf("cluster started in %v", time.Since(begin).Round(time.Millisecond))
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Errorf("Stop: %v", err)
		}
	})
	return c
}

// MustOpen opens database dbname of c, pings it, and closes it when the test ends.
func MustOpen(tb testing.TB, c *pgcluster.Cluster, dbname string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("postgres", c.DSN(dbname))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// MustHaveRow fails the test unless table kept holds the value v.
func MustHaveRow(tb testing.TB, c *pgcluster.Cluster, v string) {
	tb.Helper()
	db := MustOpen(tb, c, "postgres")
	var n int
	if err := db.QueryRow("SELECT count(*) FROM kept WHERE v = $1", v).Scan(&n); err != nil {
		tb.Fatalf("query kept: %v", err)
	}
	if got, want := n, 1; got != want {
		tb.Fatalf("rows with %q=%d, want %d", v, got, want)
	}
}
