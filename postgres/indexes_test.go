package postgres_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lib/pq"

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

// TestNaturalKeysAmongLiveRows checks migration 00021's natural keys of lessons and
// attendance: unique among live rows, any number of deleted rows beside them, and usable
// by a query for all of an exchange's rows (deleted ones too), as the scope refresh of
// an exchange's children asks.
func TestNaturalKeysAmongLiveRows(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		entity, table string
		fields        map[string]any
	}{
		{"lesson", "lessons", lessonFields(f, "2026-10-12", 3)},
		{"attendance", "attendance", map[string]any{"exchangeId": f.exchange, "date": "2026-10-12", "status": "PRESENT"}},
	}
	for _, c := range cases {
		t.Run(c.entity, func(t *testing.T) {
			// Created, deleted and created again twice: two deleted rows and a live one
			// with the same key, each created anew rather than merged into a deleted one.
			var ids []string
			for i := range 3 {
				id := newID()
				res := MustApply(t, sys(), f.store, upsert(c.entity, id, c.fields))
				if res[0].Status != jiaoliu.StatusApplied || res[0].ID != id {
					t.Fatalf("create %d: %+v, want applied as %s", i, res[0], id)
				}
				if i < 2 {
					MustApply(t, sys(), f.store, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpDelete, Entity: c.entity, ID: id, HLC: nextHLC()})
				}
				ids = append(ids, id)
			}
			var n int
			if err := f.db.Get(&n, `SELECT count(*) FROM `+c.table+` WHERE exchange_id = $1`, f.exchange); err != nil {
				t.Fatal(err)
			}
			if n != 3 {
				t.Fatalf("%d rows of the key, want 3", n)
			}
			// A second live row with the key is refused by the index itself.
			_, err := f.db.Exec(`UPDATE `+c.table+` SET deleted = false WHERE id = $1`, ids[0])
			var pe *pq.Error
			if !errors.As(err, &pe) || pe.Code != "23505" || pe.Constraint != c.table+"_natural_key" {
				t.Fatalf("undelete beside a live row: %v, want a unique violation of %s_natural_key", err, c.table)
			}
			// An exchange's rows, deleted ones too, are found by that index.
			tx, err := f.db.Beginx()
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			var plan []string
			if _, err := tx.Exec(`SET LOCAL enable_seqscan = off`); err != nil {
				t.Fatal(err)
			}
			if err := tx.Select(&plan, `EXPLAIN SELECT id FROM `+c.table+` WHERE exchange_id = $1`, f.exchange); err != nil {
				t.Fatal(err)
			}
			if p := strings.Join(plan, "\n"); !strings.Contains(p, c.table+"_natural_key") {
				t.Fatalf("an exchange's rows are not read by %s_natural_key:\n%s", c.table, p)
			}
		})
	}
}
