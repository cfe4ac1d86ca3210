package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// bulkWorld is a fixture with fixed ids, so that two databases can be compared row by
// row: a district, two schools, a teacher on an exchange with a user and a device, and
// a second teacher's exchange.
type bulkWorld struct {
	district, urban, rural, teacher, other, exchange, otherExchange string
}

var bw = bulkWorld{
	district: "00000000-0000-4000-8000-000000000001", urban: "00000000-0000-4000-8000-000000000002",
	rural: "00000000-0000-4000-8000-000000000003", teacher: "00000000-0000-4000-8000-000000000004",
	other: "00000000-0000-4000-8000-000000000005", exchange: "00000000-0000-4000-8000-000000000006",
	otherExchange: "00000000-0000-4000-8000-000000000007",
}

func fixedID(n int) string {
	return "10000000-0000-4000-8000-" + strings.Repeat("0", 12-len(itoa(n))) + itoa(n)
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func setupBulkWorld(tb testing.TB) (*postgres.Store, *sqlx.DB, context.Context) {
	tb.Helper()
	db := pgtest.NewDB(tb)
	s := postgres.NewStore(db, hlc.NewClock("server"), nil)
	at := func(i int64) string { return hlcAt(1767225600000+i, "setup") }
	op := func(i int64, entity, id string, f map[string]any) jiaoliu.Op {
		return jiaoliu.Op{OpID: fixedID(9000 + int(i)), Kind: jiaoliu.OpUpsert, Entity: entity, ID: id, HLC: at(i), Fields: f}
	}
	if _, err := s.Apply(sys(), jiaoliu.Batch{Atomic: true, Ops: []jiaoliu.Op{
		op(1, "district", bw.district, map[string]any{"name": "新密市"}),
		op(2, "school", bw.urban, map[string]any{"districtId": bw.district, "name": "双河五小", "locality": "URBAN", "tier": "QUALITY"}),
		op(3, "school", bw.rural, map[string]any{"districtId": bw.district, "name": "曹河教学点", "locality": "TEACHING_POINT", "tier": "WEAK"}),
		op(4, "teacher", bw.teacher, map[string]any{"name": "王芳", "gender": "FEMALE", "birthDate": "1985-03-02", "schoolId": bw.urban, "joinedSchoolOn": "2015-09-01"}),
		op(5, "teacher", bw.other, map[string]any{"name": "李强", "gender": "MALE", "birthDate": "1980-01-02", "schoolId": bw.rural, "joinedSchoolOn": "2010-09-01"}),
		op(6, "exchange", bw.exchange, map[string]any{"teacherId": bw.teacher, "sendingSchoolId": bw.urban, "receivingSchoolId": bw.rural,
			"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"}),
		op(7, "exchange", bw.otherExchange, map[string]any{"teacherId": bw.other, "sendingSchoolId": bw.rural, "receivingSchoolId": bw.urban,
			"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"}),
	}}); err != nil {
		tb.Fatal(err)
	}
	// The user and device rows get fixed ids too, so audit rows compare.
	if _, err := db.Exec(`INSERT INTO users (id, username, password_hash, role, district_id, school_id, teacher_id)
		VALUES ('20000000-0000-4000-8000-000000000001', 'wangfang', 'x', 'TEACHER', $1, $2, $3)`, bw.district, bw.urban, bw.teacher); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO devices (id, user_id, name, token_hash)
		VALUES ('20000000-0000-4000-8000-000000000002', '20000000-0000-4000-8000-000000000001', 'tablet', sha256('dev_bulk'::bytea))`); err != nil {
		tb.Fatal(err)
	}
	actor, err := s.AuthenticateToken(context.Background(), "dev_bulk")
	if err != nil {
		tb.Fatal(err)
	}
	return s, db, jiaoliu.NewContextWithActor(context.Background(), actor)
}

// bulkBatches are device batches that mix what the bulk path takes (runs of new
// lessons, attendance and research activities) with everything it must hand back:
// duplicates, natural-key merges, updates, field errors, unknown references, another
// teacher's exchange (forbidden), deletes, observations and restamped HLCs.
func bulkBatches() [][]jiaoliu.Op {
	n := 0
	hlcN := int64(0)
	next := func(entity, id string, f map[string]any) jiaoliu.Op {
		n++
		hlcN++
		return jiaoliu.Op{OpID: fixedID(n), Kind: jiaoliu.OpUpsert, Entity: entity, ID: id, HLC: hlcAt(1767225700000+hlcN, "tab"), Fields: f}
	}
	lesson := func(id, x, date string, period int) jiaoliu.Op {
		return next("lesson", id, map[string]any{"exchangeId": x, "date": date, "period": float64(period), "subject": "数学", "kind": "REGULAR", "topic": "分数"})
	}
	var b1 []jiaoliu.Op
	for i := 1; i <= 8; i++ {
		b1 = append(b1, lesson(fixedID(100+i), bw.exchange, "2026-10-12", i))
	}
	b1 = append(b1,
		next("attendance", fixedID(200), map[string]any{"exchangeId": bw.exchange, "date": "2026-10-12", "status": "PRESENT"}),
		next("researchActivity", fixedID(201), map[string]any{"exchangeId": bw.exchange, "date": "2026-10-12", "kind": "SURVEY", "topic": "调研"}),
		lesson(fixedID(202), bw.exchange, "2026-10-13", 1),
		lesson(fixedID(203), bw.exchange, "2026-10-13", 2),
	)
	dup := b1[3]
	b2 := []jiaoliu.Op{
		lesson(fixedID(300), bw.exchange, "2026-10-14", 1),
		lesson(fixedID(301), bw.exchange, "2026-10-14", 2),
		dup, // an op seen in the first batch: duplicate
		lesson(fixedID(302), bw.exchange, "2026-10-12", 1), // natural key of 101: merged
		lesson(fixedID(303), bw.exchange, "2026-10-14", 3),
		lesson(fixedID(304), bw.exchange, "2026-10-14", 13), // period out of range: rejected
		lesson(fixedID(305), bw.exchange, "2026-10-14", 4),
		lesson(fixedID(306), bw.exchange, "2026-10-14", 5),
		lesson(fixedID(307), "30000000-0000-4000-8000-000000000000", "2026-10-14", 6), // unknown exchange
		lesson(fixedID(308), bw.exchange, "2026-10-14", 7),
		lesson(fixedID(309), bw.exchange, "2026-10-14", 8),
		lesson(fixedID(310), bw.exchange, "2026-10-15", 1),
		lesson(fixedID(311), bw.exchange, "2026-10-15", 2),
		next("lesson", fixedID(101), map[string]any{"topic": "小数"}), // update
		lesson(fixedID(312), bw.otherExchange, "2026-10-15", 3),     // another teacher's: forbidden
		lesson(fixedID(313), bw.exchange, "2026-10-15", 4),
		lesson(fixedID(314), bw.exchange, "2026-10-15", 5),
		lesson(fixedID(315), bw.exchange, "2026-10-15", 6),
		lesson(fixedID(316), bw.exchange, "2026-10-15", 7),
		lesson(fixedID(316), bw.exchange, "2026-10-15", 8), // the same id twice in a run
		next("attendance", fixedID(400), map[string]any{"exchangeId": bw.exchange, "date": "2026-10-15", "status": "LEAVE"}),
		next("attendance", fixedID(401), map[string]any{"exchangeId": bw.exchange, "date": "2026-10-15", "status": "SICK"}), // same key in a run
		next("observation", fixedID(402), map[string]any{"observedTeacherId": bw.other, "date": "2026-10-15", "lessonId": fixedID(313)}),
	}
	future := lesson(fixedID(500), bw.exchange, "2026-10-16", 1)
	future.HLC = hlcAt(4102444800000, "tab") // 2100: restamped
	b3 := []jiaoliu.Op{future}
	for i := 2; i <= 6; i++ {
		b3 = append(b3, lesson(fixedID(500+i), bw.exchange, "2026-10-16", i))
	}
	b3 = append(b3, jiaoliu.Op{OpID: fixedID(600), Kind: jiaoliu.OpDelete, Entity: "lesson", ID: fixedID(502), HLC: hlcAt(1767225800000, "tab")})
	// A run the database refuses as a whole (an unknown school on one lesson).
	b4 := []jiaoliu.Op{}
	for i := 1; i <= 6; i++ {
		op := lesson(fixedID(700+i), bw.exchange, "2026-10-17", i)
		if i == 4 {
			op.Fields["schoolId"] = "30000000-0000-4000-8000-000000000001"
		}
		if i == 5 {
			op.Fields["schoolId"] = bw.rural
		}
		b4 = append(b4, op)
	}
	return [][]jiaoliu.Op{b1, b2, b3, b4}
}

// bulkState is what the two paths must agree on: the rows of its queries, and of the
// queries of more (name to query), which callers add.
func bulkState(tb testing.TB, db *sqlx.DB, more map[string]string) map[string][]string {
	tb.Helper()
	qs := map[string]string{
		"lessons":    `SELECT concat_ws('|', id, exchange_id, school_id, date, period, subject, kind, topic, deleted, field_hlc, device_id) FROM lessons ORDER BY id`,
		"attendance": `SELECT concat_ws('|', id, exchange_id, date, status, deleted, field_hlc) FROM attendance ORDER BY id`,
		"research":   `SELECT concat_ws('|', id, exchange_id, date, kind, topic, field_hlc) FROM research_activities ORDER BY id`,
		"sync_log":   `SELECT concat_ws('|', entity, id, deleted, scopes) FROM sync_log ORDER BY entity, id`,
		"audit":      `SELECT concat_ws('|', user_id, username, device_id, entity, record_id, op_id, action, changes, scopes) FROM audit_log ORDER BY id`,
		"rejections": `SELECT concat_ws('|', op_id, device_id, entity, record_id, op, code, message, fields, scopes) FROM sync_rejections ORDER BY id`,
		"ops":        `SELECT concat_ws('|', op_id, device_id, result - 'version' - 'hlc') FROM sync_ops ORDER BY op_id`,
		"conflicts":  `SELECT concat_ws('|', entity, record_id, field, kept_value, lost_value, lost_op_id) FROM sync_conflicts ORDER BY id`,
		"scopes ok":  `SELECT entity || '/' || id FROM sync_log WHERE scopes <> scope_tokens(entity, id)`,
	}
	maps.Copy(qs, more)
	out := map[string][]string{}
	for name, q := range qs {
		var rows []string
		if err := db.Select(&rows, q); err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		out[name] = rows
	}
	return out
}

// TestBulkPathIsThePerOpPath applies the same device batches with and without the bulk
// path and compares results, records, change log, audit trail, rejections and stored
// results.
// applyComparable applies the batches one by one and returns their results without
// what differs between two runs of the same batches (versions, re-stamped clocks).
func applyComparable(t *testing.T, ctx context.Context, s *postgres.Store, batches [][]jiaoliu.Op) [][]jiaoliu.OpResult {
	t.Helper()
	var all [][]jiaoliu.OpResult
	for _, b := range batches {
		res, err := s.Apply(ctx, jiaoliu.Batch{Ops: b})
		if err != nil {
			t.Fatal(err)
		}
		for i := range res {
			res[i].Version = ""
			if res[i].Restamped {
				res[i].HLC = "restamped"
			}
		}
		all = append(all, res)
	}
	return all
}

func TestBulkPathIsThePerOpPath(t *testing.T) {
	run := func(bulk bool) ([][]jiaoliu.OpResult, map[string][]string) {
		defer postgres.SetBulk(bulk)()
		s, db, ctx := setupBulkWorld(t)
		return applyComparable(t, ctx, s, bulkBatches()), bulkState(t, db, nil)
	}
	slowRes, slowState := run(false)
	fastRes, fastState := run(true)
	for i := range slowRes {
		for j := range slowRes[i] {
			if !reflect.DeepEqual(slowRes[i][j], fastRes[i][j]) {
				t.Errorf("batch %d op %d: per-op %+v, bulk %+v", i, j, slowRes[i][j], fastRes[i][j])
			}
		}
	}
	// HLCs of restamped ops are the server's clock of each run.
	restamped := func(rows []string) []string {
		out := make([]string, len(rows))
		for i, r := range rows {
			out[i] = r
			if strings.Contains(r, fixedID(500)) {
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
	if len(fastState["scopes ok"]) > 0 {
		t.Errorf("change log rows whose scopes are not scope_tokens: %v", fastState["scopes ok"])
	}
	var statuses []string
	for _, b := range fastRes {
		for _, r := range b {
			statuses = append(statuses, r.Status+r.Code)
		}
	}
	t.Logf("statuses: %v", statuses)
}

func diffLines(a, b []string) string {
	var out strings.Builder
	for i := 0; i < max(len(a), len(b)); i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			fmt.Fprintf(&out, "  per-op: %s\n  bulk:   %s\n", x, y)
		}
	}
	return out.String()
}

// TestChildScopeTokensAreThoseOf00002 checks that migration 00005's scope_tokens gives
// every record of the fixture the tokens that 00002's definition gives.
func TestChildScopeTokensAreThoseOf00002(t *testing.T) {
	s, db, ctx := setupBulkWorld(t)
	for _, b := range bulkBatches() {
		if _, err := s.Apply(ctx, jiaoliu.Batch{Ops: b}); err != nil {
			t.Fatal(err)
		}
	}
	// A semester report and a lesson at a school, through the per-op path.
	if _, err := s.Apply(sys(), jiaoliu.Batch{Atomic: true, Ops: []jiaoliu.Op{
		{OpID: fixedID(800), Kind: jiaoliu.OpUpsert, Entity: "semesterReport", ID: fixedID(801), HLC: hlcAt(1767225900000, "x"),
			Fields: map[string]any{"exchangeId": bw.exchange, "term": "2026-2027-1", "content": "总结"}},
		{OpID: fixedID(802), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: fixedID(803), HLC: hlcAt(1767225900001, "x"),
			Fields: map[string]any{"exchangeId": bw.exchange, "schoolId": bw.rural, "date": "2026-11-01", "period": float64(1), "subject": "数学", "kind": "REGULAR"}},
	}}); err != nil {
		t.Fatal(err)
	}
	createFunctionOf00002(t, db, "scope_tokens", "scope_tokens_v1")
	var diff []string
	if err := db.Select(&diff, `SELECT entity || '/' || id || ': ' || scope_tokens(entity, id)::text || ' vs ' || scope_tokens_v1(entity, id)::text
		FROM sync_log WHERE scope_tokens(entity, id) <> scope_tokens_v1(entity, id)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM sync_log WHERE entity IN ('lesson', 'attendance', 'researchActivity', 'semesterReport')`); err != nil {
		t.Fatal(err)
	}
	if len(diff) > 0 || n < 30 {
		t.Fatalf("%d child records; scope tokens differ from 00002's: %v", n, diff)
	}
}
