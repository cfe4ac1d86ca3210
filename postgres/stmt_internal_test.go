package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu/internal/pgtest"
)

// TestSharedStmtsKeepThoseInUse: at the bound, the statement served longest ago is
// closed to make room, and a statement served all along is kept (a server running for
// months keeps sharing the statements of its pushes, whatever else came and went).
func TestSharedStmtsKeepThoseInUse(t *testing.T) {
	defer func(n int) { maxSharedStmts = n }(maxSharedStmts)
	maxSharedStmts = 3
	c := &sharedStmts{db: pgtest.NewDB(t)}
	wait := func() {
		t.Helper()
		for range 5000 {
			c.mu.Lock()
			n := len(c.pending)
			c.mu.Unlock()
			if n == 0 {
				return
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatal("prepares still pending")
	}
	share := func(q string) {
		t.Helper()
		for range 2 {
			c.lookup(q)
		}
		wait()
		if c.lookup(q) == nil {
			t.Fatalf("%q not shared after two lookups", q)
		}
	}
	hot := "SELECT $1::int AS hot"
	share(hot)
	var evicted []string
	for i := range 6 {
		q := fmt.Sprintf("SELECT $1::int + %d AS n", i)
		if i > 0 {
			evicted = append(evicted, fmt.Sprintf("SELECT $1::int + %d AS n", i-1))
		}
		share(q)
		c.lookup(hot) // served between the others
		c.mu.Lock()
		n, kept := len(c.m), c.m[hot] != nil
		c.mu.Unlock()
		if n > maxSharedStmts || !kept {
			t.Fatalf("after %d statements: %d kept (bound %d), the one in use kept: %v", i+2, n, maxSharedStmts, kept)
		}
	}
	// The one in use still runs; the first ones were closed.
	var got int
	if err := c.lookup(hot).GetContext(context.Background(), &got, 7); err != nil || got != 7 {
		t.Fatalf("kept statement: %d, %v", got, err)
	}
	c.mu.Lock()
	for _, q := range evicted[:3] {
		if c.m[q] != nil {
			t.Errorf("%q still kept", q)
		}
	}
	c.mu.Unlock()
}
