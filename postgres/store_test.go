package postgres_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, postgres.Migrate, postgres.CheckScopeCopies)) }

// fixture is a small world: one district, two schools, a teacher on an exchange.
type fixture struct {
	store                    *postgres.Store
	db                       *sqlx.DB
	district, urban, rural   string
	teacher, other, exchange string
}

func sys() context.Context {
	return jiaoliu.NewContextWithActor(context.Background(), jiaoliu.SystemActor)
}

func newID() string { return uuid.NewString() }

var tick int64

// hlcAt returns an HLC at wall ms w from node n.
func hlcAt(w int64, n string) string {
	return hlc.Timestamp{Wall: w, Node: n}.String()
}

func nextHLC() string { tick++; return hlcAt(1767225600000+tick, "test") }

func upsert(entity, id string, fields map[string]any) jiaoliu.Op {
	return jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: entity, ID: id, HLC: nextHLC(), Fields: fields}
}

// exchangeOp creates an exchange of 2026-2027 of teacher from school from to school to,
// with status.
func exchangeOp(id, teacher, from, to, status string) jiaoliu.Op {
	return upsert("exchange", id, map[string]any{"teacherId": teacher, "sendingSchoolId": from, "receivingSchoolId": to,
		"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": status})
}

// MustApply applies ops atomically and fails the test on error.
func MustApply(tb testing.TB, ctx context.Context, s *postgres.Store, ops ...jiaoliu.Op) []jiaoliu.OpResult {
	tb.Helper()
	res, err := s.Apply(ctx, jiaoliu.Batch{Ops: ops, Atomic: true})
	if err != nil {
		tb.Fatalf("apply: %v", err)
	}
	return res
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	return newFixtureDB(tb, pgtest.NewDB(tb))
}

// newFixtureDB is newFixture on a pool of the caller's, to a fresh database.
func newFixtureDB(tb testing.TB, db *sqlx.DB) *fixture {
	tb.Helper()
	f := &fixture{store: postgres.NewStore(db, hlc.NewClock("server"), nil), db: db,
		district: newID(), urban: newID(), rural: newID(), teacher: newID(), other: newID(), exchange: newID()}
	MustApply(tb, sys(), f.store,
		upsert("district", f.district, map[string]any{"name": "新密市"}),
		upsert("school", f.urban, map[string]any{"districtId": f.district, "name": "双河五小", "locality": "URBAN", "tier": "QUALITY"}),
		upsert("school", f.rural, map[string]any{"districtId": f.district, "name": "曹河教学点", "locality": "TEACHING_POINT", "tier": "WEAK"}),
		upsert("teacher", f.teacher, map[string]any{"name": "王芳", "gender": "FEMALE", "birthDate": "1985-03-02", "schoolId": f.urban, "joinedSchoolOn": "2015-09-01"}),
		upsert("teacher", f.other, map[string]any{"name": "李强", "gender": "MALE", "birthDate": "1980-01-02", "schoolId": f.rural, "joinedSchoolOn": "2010-09-01"}),
		upsert("exchange", f.exchange, map[string]any{"teacherId": f.teacher, "sendingSchoolId": f.urban, "receivingSchoolId": f.rural,
			"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"}),
	)
	return f
}

// teacherDevice creates a user for the fixture's teacher and registers a device for it,
// returning the device and its token.
func (f *fixture) teacherDevice(tb testing.TB, username string) (*jiaoliu.Device, string) {
	tb.Helper()
	u, err := f.store.CreateUser(sys(), postgres.NewUser{Username: username, DisplayName: "王芳", Password: "a long enough password",
		Role: jiaoliu.RoleTeacher, TeacherID: f.teacher})
	if err != nil {
		tb.Fatal(err)
	}
	dev, token, err := f.store.RegisterDevice(sys(), "平板", u.ID)
	if err != nil {
		tb.Fatal(err)
	}
	return dev, token
}

func lessonFields(f *fixture, date string, period int) map[string]any {
	return map[string]any{"exchangeId": f.exchange, "date": date, "period": float64(period), "subject": "数学", "kind": "REGULAR"}
}

func TestApplyCreatesAndReads(t *testing.T) {
	f := newFixture(t)
	id := newID()
	res := MustApply(t, sys(), f.store, upsert("lesson", id, lessonFields(f, "2026-10-12", 3)))
	if got, want := res[0].Status, jiaoliu.StatusApplied; got != want {
		t.Fatalf("status=%q, want %q", got, want)
	}
	l, err := postgres.Get[jiaoliu.Lesson](sys(), f.store, jiaoliu.LessonEntity, id)
	if err != nil {
		t.Fatal(err)
	}
	if l.Period != 3 || l.Subject != "数学" || l.Date.String() != "2026-10-12" || l.Kind != jiaoliu.LessonRegular {
		t.Fatalf("lesson=%+v", l)
	}
	if l.Version == 0 {
		t.Fatal("version not set")
	}
}

func TestPerFieldLastWriterWins(t *testing.T) {
	f := newFixture(t)
	id := newID()
	MustApply(t, sys(), f.store, jiaoliu.Op{OpID: newID(), Kind: "upsert", Entity: "lesson", ID: id, HLC: hlcAt(1000_000_000_000, "a"), Fields: lessonFields(f, "2026-10-12", 3)})
	// Device b edits the topic later; device a edits the topic earlier and the notes later.
	MustApply(t, sys(), f.store, jiaoliu.Op{OpID: newID(), Kind: "upsert", Entity: "lesson", ID: id, HLC: hlcAt(1000_000_000_300, "b"), Fields: map[string]any{"topic": "分数"}})
	res := MustApply(t, sys(), f.store, jiaoliu.Op{OpID: newID(), Kind: "upsert", Entity: "lesson", ID: id, HLC: hlcAt(1000_000_000_200, "a"), Fields: map[string]any{"topic": "小数", "notes": "带教具"}})
	if got := res[0].Lost; len(got) != 1 || got[0] != "topic" {
		t.Fatalf("lost=%v, want [topic]", got)
	}
	l, err := postgres.Get[jiaoliu.Lesson](sys(), f.store, jiaoliu.LessonEntity, id)
	if err != nil {
		t.Fatal(err)
	}
	if l.Topic != "分数" || l.Notes != "带教具" {
		t.Fatalf("topic=%q notes=%q, want 分数 / 带教具", l.Topic, l.Notes)
	}
	var n int
	if err := f.db.Get(&n, `SELECT count(*) FROM sync_conflicts WHERE record_id = $1 AND field = 'topic'`, id); err != nil || n != 1 {
		t.Fatalf("conflicts=%d err=%v, want 1", n, err)
	}
}

func TestNaturalKeyMerge(t *testing.T) {
	f := newFixture(t)
	first, second := newID(), newID()
	MustApply(t, sys(), f.store, upsert("attendance", first, map[string]any{"exchangeId": f.exchange, "date": "2026-10-12", "status": "PRESENT"}))
	res := MustApply(t, sys(), f.store, upsert("attendance", second, map[string]any{"exchangeId": f.exchange, "date": "2026-10-12", "status": "SICK"}))
	if res[0].Status != jiaoliu.StatusMerged || res[0].CanonicalID != first {
		t.Fatalf("result=%+v, want merged into %s", res[0], first)
	}
	a, err := postgres.Get[jiaoliu.Attendance](sys(), f.store, jiaoliu.AttendanceEntity, first)
	if err != nil || a.Status != jiaoliu.AttendanceSick {
		t.Fatalf("attendance=%+v err=%v, want SICK", a, err)
	}
}

func TestIdempotentOps(t *testing.T) {
	f := newFixture(t)
	op := upsert("lesson", newID(), lessonFields(f, "2026-10-13", 1))
	ctx := sys()
	r1, err := f.store.Apply(ctx, jiaoliu.Batch{Ops: []jiaoliu.Op{op}})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := f.store.Apply(ctx, jiaoliu.Batch{Ops: []jiaoliu.Op{op}})
	if err != nil {
		t.Fatal(err)
	}
	if !r2[0].Duplicate || r2[0].Version != r1[0].Version || r2[0].Status != r1[0].Status {
		t.Fatalf("second=%+v, want duplicate of %+v", r2[0], r1[0])
	}
	var n int
	if err := f.db.Get(&n, `SELECT count(*) FROM audit_log WHERE entity = 'lesson'`); err != nil || n != 1 {
		t.Fatalf("audit rows=%d err=%v, want 1", n, err)
	}
}

// TestResentBatchesAreAnsweredFromTheirFirstResults: a device batch large enough to be
// taken for new (its opIds not looked up before it is applied) and then resent whole,
// or partly with new ops, or carrying an op stored by Reject: the ops seen before are
// answered with their first results and applied once, the new ones applied.
func TestResentBatchesAreAnsweredFromTheirFirstResults(t *testing.T) {
	f := newFixture(t)
	ctx := sys()
	var ops []jiaoliu.Op
	for d := 1; d <= 20; d++ {
		ops = append(ops, upsert("lesson", newID(), lessonFields(f, fmt.Sprintf("2026-10-%02d", d), 1)))
	}
	apply := func(ops []jiaoliu.Op) []jiaoliu.OpResult {
		t.Helper()
		res, err := f.store.Apply(ctx, jiaoliu.Batch{Ops: ops})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	audited := func() (n int) {
		t.Helper()
		if err := f.db.Get(&n, `SELECT count(*) FROM audit_log WHERE entity = 'lesson'`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	retries := postgres.SeenRetries()
	first := apply(ops)
	if got := postgres.SeenRetries() - retries; got != 0 {
		t.Fatalf("a new batch was run again %d times", got)
	}
	again := apply(ops)
	for i, r := range again {
		if want := first[i]; !r.Duplicate || r.Version != want.Version || r.Status != want.Status || r.ID != want.ID {
			t.Fatalf("resent op %d: %+v, want a duplicate of %+v", i, r, want)
		}
	}
	if got := postgres.SeenRetries() - retries; got != 1 {
		t.Fatalf("the resent batch was run again %d times, want 1", got)
	}
	if n := audited(); n != 20 {
		t.Fatalf("%d audit rows, want 20: an op applied twice", n)
	}
	// Half resent, half new, and one op a sync server refused (Store.Reject) before.
	refused := upsert("lesson", newID(), lessonFields(f, "2026-11-30", 1))
	if _, err := f.store.Reject(ctx, refused, jiaoliu.RejectSchemaMismatch, "schema 1 is gone"); err != nil {
		t.Fatal(err)
	}
	mixed := append([]jiaoliu.Op{refused}, ops[10:]...)
	for d := 1; d <= 10; d++ {
		mixed = append(mixed, upsert("lesson", newID(), lessonFields(f, fmt.Sprintf("2026-11-%02d", d), 1)))
	}
	res := apply(mixed)
	if r := res[0]; !r.Duplicate || r.Status != jiaoliu.StatusRejected || r.Code != jiaoliu.RejectSchemaMismatch {
		t.Fatalf("refused op: %+v, want its rejection again", r)
	}
	for i, r := range res[1:11] {
		if !r.Duplicate || r.Version != first[10+i].Version {
			t.Fatalf("resent op %d: %+v, want a duplicate of %+v", i, r, first[10+i])
		}
	}
	for i, r := range res[11:] {
		if r.Duplicate || r.Status != jiaoliu.StatusApplied {
			t.Fatalf("new op %d: %+v, want applied", i, r)
		}
	}
	if n := audited(); n != 30 {
		t.Fatalf("%d audit rows, want 30", n)
	}
}

func TestRejectionsAreStoredAndDoNotStopTheBatch(t *testing.T) {
	f := newFixture(t)
	bad := upsert("lesson", newID(), lessonFields(f, "2026-10-14", 13))
	missing := upsert("lesson", newID(), map[string]any{"exchangeId": newID(), "date": "2026-10-14", "period": 1.0, "subject": "语文", "kind": "REGULAR"})
	unknown := upsert("spaceship", newID(), map[string]any{"x": 1})
	good := upsert("lesson", newID(), lessonFields(f, "2026-10-14", 2))
	res, err := f.store.Apply(sys(), jiaoliu.Batch{Ops: []jiaoliu.Op{bad, missing, unknown, good}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"validation_failed", "missing_reference", "unknown_entity", ""}
	for i, r := range res {
		if r.Code != want[i] {
			t.Fatalf("result %d=%+v, want code %q", i, r, want[i])
		}
	}
	if res[0].Fields["period"] != "must be 1..12" {
		t.Fatalf("fields=%v", res[0].Fields)
	}
	var n int
	if err := f.db.Get(&n, `SELECT count(*) FROM sync_rejections`); err != nil || n != 3 {
		t.Fatalf("stored rejections=%d err=%v, want 3", n, err)
	}
}

func TestAtomicBatchWritesNothingOnError(t *testing.T) {
	f := newFixture(t)
	_, err := f.store.Apply(sys(), jiaoliu.Batch{Atomic: true, Ops: []jiaoliu.Op{
		upsert("lesson", newID(), lessonFields(f, "2026-10-15", 1)),
		upsert("lesson", newID(), lessonFields(f, "2026-10-15", 0)),
	}})
	if jiaoliu.ErrorCode(err) != jiaoliu.EINVALID {
		t.Fatalf("err=%v, want INVALID", err)
	}
	var n int
	if err := f.db.Get(&n, `SELECT count(*) FROM lessons`); err != nil || n != 0 {
		t.Fatalf("lessons=%d err=%v, want 0", n, err)
	}
}

func TestTombstoneKeepsLateEdits(t *testing.T) {
	f := newFixture(t)
	id := newID()
	MustApply(t, sys(), f.store, upsert("lesson", id, lessonFields(f, "2026-10-16", 1)))
	MustApply(t, sys(), f.store, jiaoliu.Op{OpID: newID(), Kind: "delete", Entity: "lesson", ID: id, HLC: nextHLC()})
	MustApply(t, sys(), f.store, upsert("lesson", id, map[string]any{"topic": "迟到的修改"}))
	var row struct {
		Deleted bool   `db:"deleted"`
		Topic   string `db:"topic"`
	}
	if err := f.db.Get(&row, `SELECT deleted, topic FROM lessons WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if !row.Deleted || row.Topic != "迟到的修改" {
		t.Fatalf("row=%+v, want deleted with the late topic", row)
	}
}

func TestExchangeStatusWorkflow(t *testing.T) {
	f := newFixture(t)
	_, err := f.store.Apply(sys(), jiaoliu.Batch{Atomic: true, Ops: []jiaoliu.Op{upsert("exchange", f.exchange, map[string]any{"status": "COMPLETED"})}})
	if got := jiaoliu.ErrorFields(err)["status"]; got == "" {
		t.Fatalf("err=%v, want a status field error", err)
	}
	_, err = f.store.Apply(sys(), jiaoliu.Batch{Atomic: true, Ops: []jiaoliu.Op{upsert("exchange", f.exchange, map[string]any{"status": "PUBLISHED"})}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.store.Apply(sys(), jiaoliu.Batch{Atomic: true, Ops: []jiaoliu.Op{upsert("exchange", f.exchange, map[string]any{"status": "ACTIVE"})}})
	if got := jiaoliu.ErrorFields(err)["reportedOn"]; got == "" {
		t.Fatalf("err=%v, want reportedOn required for ACTIVE", err)
	}
}

func TestFinalizedEvaluationIsLocked(t *testing.T) {
	f := newFixture(t)
	id := newID()
	MustApply(t, sys(), f.store, upsert("evaluation", id, map[string]any{"exchangeId": f.exchange, "period": "SEMESTER", "term": "2026-2027-1",
		"evaluatorSchoolId": f.rural, "grade": "QUALIFIED", "finalized": true}))
	_, err := f.store.Apply(sys(), jiaoliu.Batch{Ops: []jiaoliu.Op{upsert("evaluation", id, map[string]any{"grade": "EXCELLENT"})}, Atomic: true})
	if jiaoliu.ErrorCode(err) != jiaoliu.ELOCKED {
		t.Fatalf("err=%v, want LOCKED", err)
	}
}

func TestTeacherScope(t *testing.T) {
	f := newFixture(t)
	teacher := jiaoliu.NewContextWithActor(context.Background(), &jiaoliu.Actor{UserID: newID(), Role: jiaoliu.RoleTeacher, TeacherID: f.teacher})
	other := jiaoliu.NewContextWithActor(context.Background(), &jiaoliu.Actor{UserID: newID(), Role: jiaoliu.RoleTeacher, TeacherID: f.other})
	id := newID()
	MustApply(t, teacher, f.store, upsert("lesson", id, lessonFields(f, "2026-10-20", 1)))
	if _, err := postgres.Get[jiaoliu.Lesson](other, f.store, jiaoliu.LessonEntity, id); jiaoliu.ErrorCode(err) != jiaoliu.ENOTFOUND {
		t.Fatalf("other teacher reading: err=%v, want NOT_FOUND", err)
	}
	res, err := f.store.Apply(other, jiaoliu.Batch{Ops: []jiaoliu.Op{upsert("lesson", id, map[string]any{"topic": "x"})}})
	if err != nil || res[0].Code != jiaoliu.RejectMissingRef {
		t.Fatalf("other teacher writing: res=%+v err=%v, want missing_reference", res, err)
	}
	res, err = f.store.Apply(other, jiaoliu.Batch{Ops: []jiaoliu.Op{upsert("lesson", newID(), lessonFields(f, "2026-10-21", 1))}})
	if err != nil || res[0].Code != jiaoliu.RejectForbidden {
		t.Fatalf("lesson on another's exchange: res=%+v err=%v, want forbidden", res, err)
	}
	page, err := postgres.List[jiaoliu.Exchange](teacher, f.store, jiaoliu.ExchangeEntity, jiaoliu.ListQuery{})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("own exchanges=%d err=%v, want 1", len(page.Items), err)
	}
	if _, err := f.store.Apply(teacher, jiaoliu.Batch{Atomic: true, Ops: []jiaoliu.Op{upsert("exchange", f.exchange, map[string]any{"note": "x"})}}); jiaoliu.ErrorCode(err) != jiaoliu.EFORBIDDEN {
		t.Fatalf("teacher editing exchange: err=%v, want FORBIDDEN", err)
	}
}

func TestListPagination(t *testing.T) {
	f := newFixture(t)
	var ops []jiaoliu.Op
	for d := 1; d <= 9; d++ {
		for p := 1; p <= 3; p++ {
			ops = append(ops, upsert("lesson", newID(), lessonFields(f, "2026-10-0"+string(rune('0'+d)), p)))
		}
	}
	MustApply(t, sys(), f.store, ops...)
	seen := map[string]bool{}
	after := ""
	for pages := 0; ; pages++ {
		page, err := postgres.List[jiaoliu.Lesson](sys(), f.store, jiaoliu.LessonEntity, jiaoliu.ListQuery{First: 4, After: after, WithTotal: true,
			Filter: jiaoliu.Filter{SchoolID: f.rural}})
		if err != nil {
			t.Fatal(err)
		}
		if page.TotalCount != 27 {
			t.Fatalf("total=%d, want 27", page.TotalCount)
		}
		for _, l := range page.Items {
			if seen[l.ID] {
				t.Fatalf("lesson %s seen twice", l.ID)
			}
			seen[l.ID] = true
		}
		if !page.HasNext {
			break
		}
		after = page.Cursors[len(page.Cursors)-1]
	}
	if len(seen) != 27 {
		t.Fatalf("seen=%d, want 27", len(seen))
	}
}

// createFunctionOf00002 creates, under the name as, the function name as migration
// 00002 first wrote it: tests compare a later body with the original.
func createFunctionOf00002(tb testing.TB, db *sqlx.DB, name, as string) {
	tb.Helper()
	raw, err := os.ReadFile("migrations/00002_scopes.sql")
	if err != nil {
		tb.Fatal(err)
	}
	src := string(raw)
	start := strings.Index(src, "CREATE FUNCTION "+name)
	end := strings.Index(src[start:], "-- +goose StatementEnd")
	if _, err := db.Exec(strings.Replace(src[start:start+end], "CREATE FUNCTION "+name, "CREATE FUNCTION "+as, 1)); err != nil {
		tb.Fatal(err)
	}
}

// A created record's field clock names the create's HLC once (the compact form, see
// postgres/fieldclock.go) and still means what it meant: a field the create set keeps
// its HLC against an earlier edit, a field it did not set takes any edit. Both paths:
// an atomic batch of one op (per op) and a batch of 20 (bulk).
func TestCreatedFieldClock(t *testing.T) {
	f := newFixture(t)
	const created, earlier = 1000_000_000_500, 1000_000_000_100
	for _, n := range []int{1, 20} {
		ops := make([]jiaoliu.Op, n)
		for i := range ops {
			ops[i] = jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: newID(), HLC: hlcAt(created, "a"),
				Fields: lessonFields(f, fmt.Sprintf("2026-%02d-%02d", 10+n/20, 1+i), 1)}
			ops[i].Fields["topic"] = "分数"
		}
		res, err := f.store.Apply(sys(), jiaoliu.Batch{Ops: ops, Atomic: n == 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Status != jiaoliu.StatusApplied {
				t.Fatalf("batch of %d: %+v", n, r)
			}
		}
		id := ops[n-1].ID
		var stored string
		if err := f.db.Get(&stored, `SELECT field_hlc::text FROM lessons WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		if strings.Count(stored, hlcAt(created, "a")) != 1 {
			t.Errorf("batch of %d: field clock %s names the create's HLC more than once", n, stored)
		}
		res = MustApply(t, sys(), f.store, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: id, HLC: hlcAt(earlier, "b"),
			Fields: map[string]any{"topic": "小数", "notes": "带教具"}})
		if got := res[0].Lost; len(got) != 1 || got[0] != "topic" {
			t.Errorf("batch of %d: lost=%v, want [topic] (notes was never set)", n, got)
		}
		l, err := postgres.Get[jiaoliu.Lesson](sys(), f.store, jiaoliu.LessonEntity, id)
		if err != nil {
			t.Fatal(err)
		}
		if l.Topic != "分数" || l.Notes != "带教具" {
			t.Errorf("batch of %d: topic=%q notes=%q, want 分数 / 带教具", n, l.Topic, l.Notes)
		}
	}
}

// The only op of a device batch is applied without a savepoint; rejected, the batch
// runs again with one. Each kind of rejection then gives the answer, the stored
// rejection and the stored result a batch of several gives, once, and writes nothing
// else: rejected in Go before any write (a field), by the database (a reference), and
// after the record was written (a teacher's lesson on another teacher's exchange, whose
// scope is checked once the record's tokens are known).
func TestSingleOpRejections(t *testing.T) {
	f := newFixture(t)
	other := teacherCtx(f, f.other)
	for _, c := range []struct {
		name string
		ctx  context.Context
		op   jiaoliu.Op
		code string
	}{
		{"field", sys(), upsert("lesson", newID(), lessonFields(f, "2026-10-14", 13)), jiaoliu.RejectValidation},
		{"reference", sys(), upsert("lesson", newID(), map[string]any{"exchangeId": newID(), "date": "2026-10-14", "period": 1.0, "subject": "语文", "kind": "REGULAR"}), jiaoliu.RejectMissingRef},
		{"scope", other, upsert("lesson", newID(), lessonFields(f, "2026-10-15", 1)), jiaoliu.RejectForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := f.store.Apply(c.ctx, jiaoliu.Batch{Ops: []jiaoliu.Op{c.op}})
			if err != nil {
				t.Fatal(err)
			}
			if r := res[0]; r.Status != jiaoliu.StatusRejected || r.Code != c.code || r.Duplicate {
				t.Fatalf("result %+v, want rejected %s", r, c.code)
			}
			again, err := f.store.Apply(c.ctx, jiaoliu.Batch{Ops: []jiaoliu.Op{c.op}})
			if err != nil {
				t.Fatal(err)
			}
			if r := again[0]; !r.Duplicate || r.Code != c.code {
				t.Fatalf("resend %+v, want the duplicate of %+v", r, res[0])
			}
			var n struct {
				Rejections int `db:"rejections"`
				Results    int `db:"results"`
				Lessons    int `db:"lessons"`
				Logged     int `db:"logged"`
				Audited    int `db:"audited"`
			}
			if err := f.db.Get(&n, `SELECT (SELECT count(*) FROM sync_rejections WHERE op_id = $1) AS rejections,
				(SELECT count(*) FROM sync_ops WHERE op_id = $1) AS results,
				(SELECT count(*) FROM lessons WHERE id = $2) AS lessons,
				(SELECT count(*) FROM sync_log WHERE id = $2) AS logged,
				(SELECT count(*) FROM audit_log WHERE op_id = $1) AS audited`, c.op.OpID, c.op.ID); err != nil {
				t.Fatal(err)
			}
			if n.Rejections != 1 || n.Results != 1 || n.Lessons != 0 || n.Logged != 0 || n.Audited != 0 {
				t.Fatalf("stored %+v, want one rejection and one result, nothing else", n)
			}
		})
	}
}

// TestOpsFollowAMergeInTheirBatch: a device writes a lesson and, in the same batch, edits
// it and records an observation of it, before it can know that the server merges the
// lesson into one another device wrote. The edit is applied to the twin and the
// observation refers to the twin, through the bulk path and the per-op path alike, and
// in a resend whose merge is answered as a duplicate. The caller's ops are not changed.
func TestOpsFollowAMergeInTheirBatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		filler int // lessons before and after the merge: a bulk run from 4 on
	}{{"per-op", 0}, {"bulk", 6}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := sys()
			twin := newID()
			MustApply(t, ctx, f.store, upsert("lesson", twin, lessonFields(f, "2026-10-20", 3)))
			mine := newID()
			var ops []jiaoliu.Op
			period := 3
			fill := func() {
				for range tc.filler {
					period++
					ops = append(ops, upsert("lesson", newID(), lessonFields(f, "2026-10-20", period%12+1)))
				}
			}
			fill()
			create := len(ops)
			ops = append(ops, upsert("lesson", mine, lessonFields(f, "2026-10-20", 3)))
			fill()
			edit := len(ops)
			ops = append(ops, upsert("lesson", mine, map[string]any{"topic": "分数的初步认识"}))
			observed := len(ops)
			observation := newID()
			ops = append(ops, upsert("observation", observation, map[string]any{"observedTeacherId": f.teacher, "date": "2026-10-20", "lessonId": mine}))
			fill()
			sent := slices.Clone(ops)
			res, err := f.store.Apply(ctx, jiaoliu.Batch{Ops: ops})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(ops, sent, func(a, b jiaoliu.Op) bool { return a.ID == b.ID && fmt.Sprint(a.Fields) == fmt.Sprint(b.Fields) }) {
				t.Fatal("Apply changed the caller's ops")
			}
			for i, r := range res {
				if r.Status == jiaoliu.StatusRejected {
					t.Fatalf("op %d rejected: %+v", i, r)
				}
			}
			if r := res[create]; r.Status != jiaoliu.StatusMerged || r.CanonicalID != twin {
				t.Fatalf("create %+v, want merged into %s", r, twin)
			}
			if r := res[edit]; r.Status != jiaoliu.StatusApplied || r.ID != twin {
				t.Fatalf("edit %+v, want applied to %s", r, twin)
			}
			var topic, lessonID string
			if err := f.db.Get(&topic, `SELECT topic FROM lessons WHERE id = $1`, twin); err != nil || topic != "分数的初步认识" {
				t.Fatalf("twin's topic %q (%v), want the edit's", topic, err)
			}
			if err := f.db.Get(&lessonID, `SELECT lesson_id FROM observations WHERE id = $1`, observation); err != nil || lessonID != twin {
				t.Fatalf("observation's lesson %q (%v), want %s (result %+v)", lessonID, err, twin, res[observed])
			}
			var n int
			if err := f.db.Get(&n, `SELECT count(*) FROM lessons WHERE id = $1`, mine); err != nil || n != 0 {
				t.Fatalf("%d lessons under the merged id (%v)", n, err)
			}

			// A resend with an edit written since: the merge is a duplicate, the new
			// edit follows it too.
			again := upsert("lesson", mine, map[string]any{"notes": "补记"})
			res, err = f.store.Apply(ctx, jiaoliu.Batch{Ops: append(slices.Clone(sent), again)})
			if err != nil {
				t.Fatal(err)
			}
			if r := res[len(res)-1]; r.Status != jiaoliu.StatusApplied || r.ID != twin {
				t.Fatalf("edit in the resend %+v, want applied to %s", r, twin)
			}
			var notes string
			if err := f.db.Get(&notes, `SELECT notes FROM lessons WHERE id = $1`, twin); err != nil || notes != "补记" {
				t.Fatalf("twin's notes %q (%v), want the resend's edit", notes, err)
			}
		})
	}
}
