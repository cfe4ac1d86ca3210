package postgres_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// editBatches are device batches of edits, deletes and natural-key merges of the
// records of the first of bulkBatches, with everything the bulk path must leave to
// the per-op path or get exactly right: lost fields (conflicts), edits that change
// nothing, tombstones edited, a record edited twice in a batch, records the per-op
// path wrote earlier in the batch, natural keys moved (onto a free key and onto a
// taken one), a lesson moved to another school (its scope changes), a record of
// another teacher, unknown fields, MustExist on a missing record, re-stamped HLCs,
// and a run the database refuses (an unknown school).
func editBatches() [][]jiaoliu.Op {
	n := 1000
	w := int64(1767226000000)
	op := func(kind, entity, id string, f map[string]any) jiaoliu.Op {
		n++
		w++
		return jiaoliu.Op{OpID: fixedID(n), Kind: kind, Entity: entity, ID: id, HLC: hlcAt(w, "tab2"), Fields: f}
	}
	edit := func(entity, id string, f map[string]any) jiaoliu.Op { return op(jiaoliu.OpUpsert, entity, id, f) }
	del := func(entity, id string) jiaoliu.Op { return op(jiaoliu.OpDelete, entity, id, nil) }
	lesson := func(id, date string, period int) jiaoliu.Op {
		return edit("lesson", id, map[string]any{"exchangeId": bw.exchange, "date": date, "period": float64(period), "subject": "语文", "kind": "GUIDANCE", "topic": "合并"})
	}
	old := func(o jiaoliu.Op) jiaoliu.Op { o.HLC = hlcAt(1767225600000, "old"); return o } // before every create
	obs := func(id string) jiaoliu.Op {
		return edit("observation", id, map[string]any{"observedTeacherId": bw.other, "date": "2026-10-20"})
	}
	future := edit("lesson", fixedID(107), map[string]any{"notes": "来自未来"})
	future.HLC = hlcAt(4102444800000, "tab2")
	mustExist := edit("lesson", fixedID(950), map[string]any{"topic": "无此课"})
	mustExist.MustExist = true

	b1 := []jiaoliu.Op{
		edit("lesson", fixedID(101), map[string]any{"topic": "小数", "notes": "第一次"}),
		old(edit("lesson", fixedID(102), map[string]any{"topic": "旧的", "minutes": float64(45)})), // both lost
		edit("lesson", fixedID(103), map[string]any{"subject": "数学"}),                            // same value: a new version, no audit
		del("lesson", fixedID(104)),
		lesson(fixedID(302), "2026-10-12", 5), // the key of 105: merged
		edit("attendance", fixedID(210), map[string]any{"exchangeId": bw.exchange, "date": "2026-10-12", "status": "LEAVE"}), // merged into 200
		edit("researchActivity", fixedID(201), map[string]any{"topic": "调研：分数", "notes": "记录"}),
		edit("lesson", fixedID(104), map[string]any{"notes": "删除后补记"}),     // a tombstone, edited twice in the batch
		edit("lesson", fixedID(106), map[string]any{"period": float64(7)}), // onto 107's key: conflict
		edit("lesson", fixedID(106), map[string]any{"period": float64(9)}), // onto a free key
		lesson(fixedID(303), "2026-10-12", 9),                              // now 106's key: merged into 106
		edit("lesson", fixedID(108), map[string]any{"schoolId": bw.rural}), // scope changes
		edit("lesson", fixedID(900), map[string]any{"topic": "别人的"}),       // another teacher's: not found
		edit("lesson", fixedID(101), map[string]any{"colour": "red"}),      // unknown field
		mustExist,
		future,
		del("attendance", fixedID(951)), // not found
		edit("lesson", fixedID(202), map[string]any{"topic": "再改"}),
		edit("lesson", fixedID(203), map[string]any{"className": "三（1）班", "minutes": float64(35)}),
	}
	// Short runs between observations go through the per-op path; the long run after
	// them meets records the per-op path wrote.
	b2 := []jiaoliu.Op{
		obs(fixedID(960)),
		edit("lesson", fixedID(101), map[string]any{"notes": "逐个"}),
		obs(fixedID(961)),
		lesson(fixedID(304), "2026-10-13", 3),
		obs(fixedID(962)),
		edit("lesson", fixedID(101), map[string]any{"topic": "成批"}),
		edit("lesson", fixedID(304), map[string]any{"topic": "成批"}),
		lesson(fixedID(305), "2026-10-13", 3), // the key the per-op path created: merged
		edit("lesson", fixedID(102), map[string]any{"topic": "新的"}),
		edit("lesson", fixedID(103), map[string]any{"topic": "新的"}),
		del("researchActivity", fixedID(201)),
		edit("lesson", fixedID(105), map[string]any{"notes": "合并后"}),
	}
	// The database refuses the run (an unknown school): the per-op path applies it.
	b3 := []jiaoliu.Op{
		edit("lesson", fixedID(101), map[string]any{"notes": "三"}),
		edit("lesson", fixedID(102), map[string]any{"schoolId": "30000000-0000-4000-8000-000000000001"}),
		edit("lesson", fixedID(103), map[string]any{"notes": "三"}),
		edit("lesson", fixedID(105), map[string]any{"notes": "三"}),
		edit("lesson", fixedID(107), map[string]any{"notes": "三"}),
	}
	return [][]jiaoliu.Op{b1, b2, b3}
}

// editState is what both paths must agree on after the edit batches, beyond bulkState.
func editState(tb testing.TB, db *sqlx.DB) map[string][]string {
	tb.Helper()
	return bulkState(tb, db, map[string]string{
		"lessons all": `SELECT concat_ws('|', id, school_id, date, period, grade_level, class_name, subject, kind, topic, minutes, notes, deleted, field_hlc)
			FROM lessons ORDER BY id`,
		"research all": `SELECT concat_ws('|', id, topic, notes, deleted, field_hlc) FROM research_activities ORDER BY id`,
		"change order": `SELECT entity || '/' || id FROM sync_log ORDER BY seq`,
		"versions":     `SELECT l.entity || '/' || l.id FROM sync_log l LEFT JOIN lessons t ON l.entity = 'lesson' AND t.id = l.id WHERE l.entity = 'lesson' AND t.version IS DISTINCT FROM l.seq`,
		"audit all":    `SELECT concat_ws('|', entity, record_id, op_id, action, changes, scopes) FROM audit_log ORDER BY id`,
		"conflicts all": `SELECT concat_ws('|', entity, record_id, field, kept_value, kept_hlc, lost_value, lost_hlc, lost_op_id, lost_device_id)
			FROM sync_conflicts ORDER BY id`,
	})
}

// TestBulkEditsAreThePerOpPath applies the same edit batches with and without the bulk
// path and compares results, records (every column and field clock), the change log
// and its order, audit trail, conflicts, rejections and stored results.
func TestBulkEditsAreThePerOpPath(t *testing.T) {
	run := func(bulk bool) ([][]jiaoliu.OpResult, map[string][]string) {
		defer postgres.SetBulk(bulk)()
		if bulk {
			// Every op the bulk path can take, not only runs of four or more.
			defer postgres.SetMinBulk(1)()
		}
		s, db, ctx := setupBulkWorld(t)
		// A lesson of the other teacher's exchange.
		if _, err := s.Apply(sys(), jiaoliu.Batch{Atomic: true, Ops: []jiaoliu.Op{{OpID: fixedID(899), Kind: jiaoliu.OpUpsert, Entity: "lesson",
			ID: fixedID(900), HLC: hlcAt(1767225650000, "x"), Fields: map[string]any{"exchangeId": bw.otherExchange, "date": "2026-10-12",
				"period": float64(1), "subject": "数学", "kind": "REGULAR"}}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply(ctx, jiaoliu.Batch{Ops: bulkBatches()[0]}); err != nil {
			t.Fatal(err)
		}
		return applyComparable(t, ctx, s, editBatches()), editState(t, db)
	}
	slowRes, slowState := run(false)
	applied0, refused0 := postgres.BulkCounts()
	fastRes, fastState := run(true)
	applied1, refused1 := postgres.BulkCounts()
	// Of the edit batches, the bulk path takes the runs of b1 and b2 and gives b3 back.
	if applied, refused := applied1-applied0, refused1-refused0; applied < 30 || refused < 5 {
		t.Errorf("bulk path applied %d ops and gave back %d refused, want at least 30 and 5", applied, refused)
	} else {
		t.Logf("bulk path: %d ops applied, %d given back", applied, refused)
	}
	var statuses []string
	for i := range slowRes {
		for j := range slowRes[i] {
			if !reflect.DeepEqual(slowRes[i][j], fastRes[i][j]) {
				t.Errorf("batch %d op %d: per-op %+v, bulk %+v", i, j, slowRes[i][j], fastRes[i][j])
			}
			statuses = append(statuses, fastRes[i][j].Status+fastRes[i][j].Code)
		}
	}
	// The re-stamped edit's field clock is the server's clock of each run.
	restamped := func(rows []string) []string {
		out := make([]string, len(rows))
		for i, r := range rows {
			out[i] = r
			if strings.Contains(r, fixedID(107)) || strings.Contains(r, "来自未来") {
				out[i] = "restamped row"
			}
		}
		return out
	}
	for name := range slowState {
		if a, b := restamped(slowState[name]), restamped(fastState[name]); !reflect.DeepEqual(a, b) {
			t.Errorf("%s differ:\n%s", name, diffLines(a, b))
		}
	}
	for _, name := range []string{"scopes ok", "versions"} {
		if len(fastState[name]) > 0 {
			t.Errorf("%s: %v", name, fastState[name])
		}
	}
	if len(fastState["conflicts all"]) < 2 {
		t.Errorf("conflicts: %v, want the two lost fields of lesson 102 at least", fastState["conflicts all"])
	}
	t.Logf("statuses: %v", statuses)
}
