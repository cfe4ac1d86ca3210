package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// TestSeedClock restarts a store with a wall clock an hour behind, on a database whose
// high-water mark is in the future: the next HLC is larger than every one issued
// before, and the mark keeps ahead of what the clock issues.
func TestSeedClock(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDB(t)
	now := time.Now().UnixMilli()

	first := postgres.NewStore(db, hlc.NewClockWithSource("server-a", func() int64 { return now }), nil)
	if err := first.SeedClock(ctx); err != nil {
		t.Fatal(err)
	}
	var last string
	for range 100 {
		last = first.Clock().Now()
	}
	var mark int64
	if err := db.GetContext(ctx, &mark, `SELECT wall_ms FROM server_clock WHERE node = 'server-a'`); err != nil {
		t.Fatal(err)
	}
	if ts, _ := hlc.Parse(last); mark < ts.Wall {
		t.Fatalf("high-water mark %d below an issued HLC %s", mark, last)
	}

	// The restart: the wall clock went back an hour; another node left a mark a day ahead.
	future := now + 24*time.Hour.Milliseconds()
	db.MustExec(`INSERT INTO server_clock (node, wall_ms) VALUES ('server-b', $1)`, future)
	restarted := postgres.NewStore(db, hlc.NewClockWithSource("server-a", func() int64 { return now - time.Hour.Milliseconds() }), nil)
	if err := restarted.SeedClock(ctx); err != nil {
		t.Fatal(err)
	}
	got := restarted.Clock().Now()
	if ts, _ := hlc.Parse(got); got <= last || ts.Wall <= future {
		t.Fatalf("after the restart Now()=%s, want after %s and past the mark %d", got, last, future)
	}
	if err := db.GetContext(ctx, &mark, `SELECT wall_ms FROM server_clock WHERE node = 'server-a'`); err != nil {
		t.Fatal(err)
	}
	if ts, _ := hlc.Parse(got); mark < ts.Wall {
		t.Fatalf("high-water mark %d below the issued HLC %s", mark, got)
	}
}
