package bench_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu/bench"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

var cluster *bench.Cluster

// TestMain starts a PostgreSQL cluster only when benchmarks run (-bench), so that
// `go test ./...` stays fast. BENCH_FSYNC=off turns fsync off (default on: an
// acknowledged push is durable); BENCH_DIR puts the cluster in that directory.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run())
	}
	c, err := bench.StartCluster(context.Background(), os.Getenv("BENCH_DIR"), os.Getenv("BENCH_FSYNC") != "off")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench cluster:", err)
		os.Exit(1)
	}
	cluster = c
	// A ^C or a -timeout must not leave the cluster running.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		_ = c.Close()
		os.Exit(1)
	}()
	code := m.Run()
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "bench cluster:", err)
	}
	os.Exit(code)
}

// newDB returns a fresh database seeded with spec.
func newDB(b *testing.B, name string, spec bench.Spec) (string, *sqlx.DB) {
	b.Helper()
	ctx := context.Background()
	dbName, dsn, err := cluster.NewDatabase(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	db, err := sqlx.Connect("postgres", dsn)
	if err != nil {
		b.Fatal(err)
	}
	// A benchmark's database goes with it, so that later benchmarks in the same cluster
	// do not share the cores with autovacuum working through its tables.
	b.Cleanup(func() {
		db.Close()
		if err := cluster.DropDatabase(ctx, dbName); err != nil {
			b.Error(err)
		}
	})
	if _, err := bench.Seed(ctx, db, spec); err != nil {
		b.Fatal(err)
	}
	return dsn, db
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchStore opens a store on dsn, as the server program does, closed when b ends.
func benchStore(b *testing.B, dsn string) *postgres.Store {
	b.Helper()
	db, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return postgres.NewStore(db, hlc.NewClock("bench"), nil)
}
