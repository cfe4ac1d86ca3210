package postgres_test

import (
	"strings"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
)

// TestListScopeIndexes checks that every entity's list has a GIN index of its own on
// the scope tokens (migration 00008), except the two high-volume entities that every
// push writes. (That the planner uses them on a district-sized table is shown by the
// list benchmark in BENCHMARKS.md: an empty test table is read by its primary key.)
func TestListScopeIndexes(t *testing.T) {
	db := pgtest.NewDB(t)
	var preds []string
	if err := db.Select(&preds, `SELECT indexdef FROM pg_indexes WHERE tablename = 'sync_log' AND indexdef LIKE '%gin (scopes) WHERE%'`); err != nil {
		t.Fatal(err)
	}
	shared := map[string]bool{"lesson": true, "attendance": true}
	for _, name := range jiaoliu.EntityOrder {
		found := false
		for _, p := range preds {
			if strings.Contains(p, "entity = '"+name+"'::text") {
				found = true
			}
		}
		if found == shared[name] {
			t.Errorf("entity %s: partial scope index present=%v, want %v", name, found, !shared[name])
		}
	}
}
