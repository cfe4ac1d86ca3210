package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// replica is what a device holds: the last state pulled of every record.
type replica struct {
	tb      testing.TB
	records map[string]postgres.PulledRecord
	cursor  string
}

func newReplica(tb testing.TB) *replica {
	return &replica{tb: tb, records: map[string]postgres.PulledRecord{}}
}

func (r *replica) apply(recs []postgres.PulledRecord) {
	r.tb.Helper()
	for _, rec := range recs {
		key := rec.Entity + "/" + rec.ID
		if old, ok := r.records[key]; ok {
			ov, _ := strconv.ParseInt(old.Version, 10, 64)
			nv, _ := strconv.ParseInt(rec.Version, 10, 64)
			if nv < ov {
				r.tb.Errorf("%s went back from version %d to %d", key, ov, nv)
			}
		}
		r.records[key] = rec
	}
}

// fieldsOf decodes a pulled record's fields from its wire form.
func fieldsOf(tb testing.TB, rec postgres.PulledRecord) map[string]any {
	tb.Helper()
	fields, err := rec.Fields()
	if err != nil {
		tb.Fatal(err)
	}
	return fields
}

// pullOnce pulls one page and applies it.
func (r *replica) pullOnce(ctx context.Context, s *postgres.Store, limit int) bool {
	r.tb.Helper()
	recs, next, more, err := s.Pull(ctx, r.cursor, limit)
	if err != nil {
		r.tb.Fatalf("pull: %v", err)
	}
	r.apply(recs)
	r.cursor = next
	return more
}

// sync pulls until more is false.
func (r *replica) sync(ctx context.Context, s *postgres.Store, limit int) {
	r.tb.Helper()
	for i := 0; r.pullOnce(ctx, s, limit); i++ {
		if i > 10000 {
			r.tb.Fatal("pull never ends")
		}
	}
}

func (r *replica) checksum() (int, string) {
	recs := make([]wire.Record, 0, len(r.records))
	for _, rec := range r.records {
		recs = append(recs, wire.Record{Entity: rec.Entity, ID: rec.ID, Version: rec.Version, Deleted: rec.Deleted})
	}
	return wire.ChecksumOf(recs)
}

// serverState returns entity/id → version/deleted of every record in the change log.
func serverState(tb testing.TB, f *fixture) map[string]string {
	tb.Helper()
	out := map[string]string{}
	for _, name := range jiaoliu.EntityOrder {
		def := jiaoliu.Entities[name]
		var rows []struct {
			ID      string `db:"id"`
			Version int64  `db:"version"`
			Deleted bool   `db:"deleted"`
		}
		if err := f.db.Select(&rows, `SELECT id::text AS id, version, deleted FROM `+def.Table); err != nil {
			tb.Fatal(err)
		}
		for _, r := range rows {
			out[name+"/"+r.ID] = fmt.Sprintf("%d/%t", r.Version, r.Deleted)
		}
	}
	return out
}

func (r *replica) state() map[string]string {
	out := map[string]string{}
	for k, rec := range r.records {
		out[k] = rec.Version + "/" + strconv.FormatBool(rec.Deleted)
	}
	return out
}

func teacherCtx(f *fixture, teacherID string) context.Context {
	return jiaoliu.NewContextWithActor(context.Background(), &jiaoliu.Actor{UserID: newID(), Role: jiaoliu.RoleTeacher, TeacherID: teacherID, DeviceID: newID()})
}

// holdCommits makes every transaction that writes a lesson whose notes say
// "sleep:<ms>" wait that long after its change-log row is written, before it commits:
// its txid and seq are early, its commit late.
func holdCommits(tb testing.TB, f *fixture) {
	tb.Helper()
	f.db.MustExec(`CREATE FUNCTION test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
		DECLARE n text;
		BEGIN
			IF NEW.entity = 'lesson' THEN
				SELECT notes INTO n FROM lessons WHERE id = NEW.id;
				IF n LIKE 'sleep:%' THEN PERFORM pg_sleep(substr(n, 7)::int / 1000.0); END IF;
			END IF;
			RETURN NEW;
		END $$`)
	f.db.MustExec(`CREATE TRIGGER test_hold AFTER INSERT OR UPDATE ON sync_log FOR EACH ROW EXECUTE FUNCTION test_hold()`)
}

func TestPullFromStart(t *testing.T) {
	f := newFixture(t)
	id := newID()
	MustApply(t, sys(), f.store, upsert("lesson", id, lessonFields(f, "2026-10-12", 3)))
	r := newReplica(t)
	r.sync(sys(), f.store, 0)
	if got, want := len(r.records), 7; got != want {
		t.Fatalf("records=%d, want %d", got, want)
	}
	l := fieldsOf(t, r.records["lesson/"+id])
	if got, want := l["date"], any("2026-10-12"); got != want {
		t.Fatalf("date=%#v, want %#v", got, want)
	}
	if got, want := l["period"], any(json.Number("3")); got != want {
		t.Fatalf("period=%#v, want %#v", got, want)
	}
	if got, ok := l["openLevel"]; !ok || got != nil {
		t.Fatalf("openLevel=%#v (present %v), want null", got, ok)
	}
	tch := fieldsOf(t, r.records["teacher/"+f.teacher])
	if got, ok := tch["honors"].([]any); !ok || len(got) != 0 {
		t.Fatalf("honors=%#v, want an empty list", tch["honors"])
	}
	// Nothing new: an empty page, and the cursor ends a range.
	recs, _, more, err := f.store.Pull(sys(), r.cursor, 0)
	if err != nil || len(recs) != 0 || more {
		t.Fatalf("idle pull: %d records, more=%v, err=%v", len(recs), more, err)
	}
}

func TestPullScope(t *testing.T) {
	f := newFixture(t)
	teacher, other := teacherCtx(f, f.teacher), teacherCtx(f, f.other)
	id := newID()
	MustApply(t, teacher, f.store, upsert("lesson", id, lessonFields(f, "2026-10-12", 3)))
	mine := newReplica(t)
	mine.sync(teacher, f.store, 2)
	if _, ok := mine.records["lesson/"+id]; !ok {
		t.Fatalf("the teacher does not get their lesson: %v", mine.state())
	}
	theirs := newReplica(t)
	theirs.sync(other, f.store, 2)
	if _, ok := theirs.records["lesson/"+id]; ok {
		t.Fatal("another teacher gets the lesson")
	}
	if _, ok := theirs.records["teacher/"+f.other]; !ok {
		t.Fatal("a teacher does not get their own teacher record")
	}
	if _, _, _, err := f.store.Pull(context.Background(), "", 0); jiaoliu.ErrorCode(err) != jiaoliu.EUNAUTHENTICATED {
		t.Fatalf("pull without actor: err=%v, want UNAUTHENTICATED", err)
	}
}

func TestPullPagesAndCutCursors(t *testing.T) {
	f := newFixture(t)
	var ops []jiaoliu.Op
	for i := 0; i < 30; i++ {
		ops = append(ops, upsert("lesson", newID(), lessonFields(f, "2026-11-"+fmt.Sprintf("%02d", 1+i/12), 1+i%12)))
	}
	MustApply(t, sys(), f.store, ops...)
	r := newReplica(t)
	pages := 0
	for more := true; more; pages++ {
		recs, next, m, err := f.store.Pull(sys(), r.cursor, 7)
		if err != nil {
			t.Fatal(err)
		}
		more = m
		// Take only the first two records of each page and continue from the second.
		if len(recs) > 2 {
			recs, next, more = recs[:2], recs[1].Cursor, true
		}
		r.apply(recs)
		r.cursor = next
		if pages > 100 {
			t.Fatal("too many pages")
		}
	}
	if got, want := len(r.records), 36; got != want {
		t.Fatalf("records=%d, want %d", got, want)
	}
}

// TestPullOutOfOrderCommits holds one transaction open after it has taken its txid
// and written its change-log row, commits a later one, and pulls in between: the
// later change is pulled at once, and the earlier one after it commits.
func TestPullOutOfOrderCommits(t *testing.T) {
	f := newFixture(t)
	holdCommits(t, f)
	r := newReplica(t)
	r.sync(sys(), f.store, 0)

	slow, fast := newID(), newID()
	fields := lessonFields(f, "2026-10-01", 1)
	fields["notes"] = "sleep:1500"
	done := make(chan error, 1)
	go func() {
		_, err := f.store.Apply(sys(), jiaoliu.Batch{Ops: []jiaoliu.Op{upsert("lesson", slow, fields)}, Atomic: true})
		done <- err
	}()
	waitForSleeper(t, f)
	MustApply(t, sys(), f.store, upsert("lesson", fast, lessonFields(f, "2026-10-01", 2)))

	r.sync(sys(), f.store, 0)
	if _, ok := r.records["lesson/"+fast]; !ok {
		t.Fatal("a committed change is held back by an older open transaction")
	}
	if _, ok := r.records["lesson/"+slow]; ok {
		t.Fatal("an uncommitted change was pulled")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.sync(sys(), f.store, 0)
	if _, ok := r.records["lesson/"+slow]; !ok {
		t.Fatal("the change that committed late was skipped")
	}
}

func waitForSleeper(tb testing.TB, f *fixture) {
	tb.Helper()
	for i := 0; i < 200; i++ {
		var n int
		if err := f.db.Get(&n, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'`); err != nil {
			tb.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatal("no transaction is sleeping")
}

// TestPullUnderConcurrentCommits has many writers commit concurrently and out of
// order (some hold their transaction open after writing) while a device pulls in a
// loop with small pages: in the end the device holds exactly the server's state, and
// no record ever goes back to an older version.
func TestPullUnderConcurrentCommits(t *testing.T) {
	f := newFixture(t)
	holdCommits(t, f)
	const writers, batches = 8, 12
	var (
		wg      sync.WaitGroup
		stop    atomic.Bool
		day     atomic.Int64
		applied atomic.Int64
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			var mine []string
			for b := 0; b < batches; b++ {
				var ops []jiaoliu.Op
				for i := 0; i < 1+rng.IntN(3); i++ {
					switch {
					case len(mine) > 0 && rng.IntN(4) == 0:
						ops = append(ops, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: mine[rng.IntN(len(mine))], Fields: map[string]any{"topic": fmt.Sprintf("w%d b%d", w, b)}})
					case len(mine) > 0 && rng.IntN(10) == 0:
						ops = append(ops, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpDelete, Entity: "lesson", ID: mine[rng.IntN(len(mine))]})
					default:
						id, d := newID(), day.Add(1)
						fields := lessonFields(f, jiaoliu.MustDate("2026-09-01").AddDays(int(d)).String(), 1+w)
						if rng.IntN(3) == 0 {
							fields["notes"] = fmt.Sprintf("sleep:%d", 50+rng.IntN(250))
						}
						ops = append(ops, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: id, Fields: fields})
						mine = append(mine, id)
					}
				}
				for i := range ops {
					ops[i].HLC = hlc.Timestamp{Wall: time.Now().UnixMilli(), Counter: uint16(b*4 + i), Node: fmt.Sprintf("w%d", w)}.String()
				}
				res, err := f.store.Apply(sys(), jiaoliu.Batch{Ops: ops})
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				for _, r := range res {
					if r.Status == jiaoliu.StatusRejected {
						t.Errorf("writer %d: rejected %+v", w, r)
					}
				}
				applied.Add(int64(len(ops)))
			}
		}(w)
	}
	r := newReplica(t)
	pulled := make(chan struct{})
	go func() {
		defer close(pulled)
		for !stop.Load() {
			recs, next, more, err := f.store.Pull(sys(), r.cursor, 4)
			if err != nil {
				t.Errorf("pull: %v", err)
				return
			}
			r.apply(recs)
			r.cursor = next
			if !more {
				time.Sleep(2 * time.Millisecond)
			}
		}
	}()
	wg.Wait()
	stop.Store(true)
	<-pulled
	r.sync(sys(), f.store, 4)
	if t.Failed() {
		return
	}
	want, got := serverState(t, f), r.state()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: device has %q, server %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("device holds %d records, server %d", len(got), len(want))
	}
	t.Logf("%d ops applied, %d records", applied.Load(), len(want))
	cursor, n, sum, err := f.store.Verify(sys(), r.cursor)
	if err != nil {
		t.Fatal(err)
	}
	dn, dsum := r.checksum()
	if cursor != r.cursor || n != dn || sum != dsum {
		t.Fatalf("verify: cursor same=%v count=%d/%d checksum=%s/%s", cursor == r.cursor, n, dn, sum, dsum)
	}
}

// TestPullRangeWithChangesWhilePaging changes records of a range between its pages:
// the device ends with the server's state, and more stays true until it does.
func TestPullRangeWithChangesWhilePaging(t *testing.T) {
	f := newFixture(t)
	ids := make([]string, 6)
	for i := range ids {
		ids[i] = newID()
		MustApply(t, sys(), f.store, upsert("lesson", ids[i], lessonFields(f, "2026-12-01", i+1)))
	}
	r := newReplica(t)
	if !r.pullOnce(sys(), f.store, 3) {
		t.Fatal("more=false after the first of several pages")
	}
	// Change a record not delivered yet and one already delivered.
	MustApply(t, sys(), f.store, upsert("lesson", ids[5], map[string]any{"topic": "后改"}))
	MustApply(t, sys(), f.store, upsert("district", f.district, map[string]any{"code": "410183"}))
	for i := 0; r.pullOnce(sys(), f.store, 3); i++ {
		if i > 20 {
			t.Fatal("pull never ends")
		}
	}
	want, got := serverState(t, f), r.state()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: device has %q, server %q", k, got[k], v)
		}
	}
	if l := fieldsOf(t, r.records["lesson/"+ids[5]]); l["topic"] != "后改" {
		t.Fatalf("lesson=%v", l)
	}
}

func TestPullScopeChangedAndInvalidCursors(t *testing.T) {
	f := newFixture(t)
	teacher := teacherCtx(f, f.teacher)
	r := newReplica(t)
	r.sync(teacher, f.store, 0)

	if _, _, _, err := f.store.Pull(teacher, "not a cursor", 0); !errors.Is(err, postgres.ErrInvalidCursor) {
		t.Fatalf("garbage cursor: err=%v, want ErrInvalidCursor", err)
	}
	// A new exchange to a third school widens what the teacher reads.
	third := newID()
	MustApply(t, sys(), f.store,
		upsert("school", third, map[string]any{"districtId": f.district, "name": "大隗一中", "locality": "TOWN", "tier": "GENERAL"}),
		upsert("exchange", newID(), map[string]any{"teacherId": f.teacher, "sendingSchoolId": f.urban, "receivingSchoolId": third,
			"mode": "SECONDMENT", "academicYear": "2027-2028", "plannedStart": "2027-09-01", "plannedEnd": "2028-07-15", "status": "APPROVED"}))
	if _, _, _, err := f.store.Pull(teacher, r.cursor, 0); !errors.Is(err, postgres.ErrScopeChanged) {
		t.Fatalf("pull after a scope change: err=%v, want ErrScopeChanged", err)
	}
	if _, err := f.store.Pending(teacher, r.cursor); !errors.Is(err, postgres.ErrScopeChanged) {
		t.Fatalf("pending after a scope change: err=%v, want ErrScopeChanged", err)
	}
	fresh := newReplica(t)
	fresh.sync(teacher, f.store, 0)
	if _, ok := fresh.records["school/"+third]; !ok {
		t.Fatal("the new school is not pulled from the start")
	}
}

func TestPending(t *testing.T) {
	f := newFixture(t)
	r := newReplica(t)
	if p, err := f.store.Pending(sys(), ""); err != nil || !p {
		t.Fatalf("pending from nothing=%v err=%v, want true", p, err)
	}
	r.sync(sys(), f.store, 0)
	if p, err := f.store.Pending(sys(), r.cursor); err != nil || p {
		t.Fatalf("pending when synced=%v err=%v, want false", p, err)
	}
	MustApply(t, sys(), f.store, upsert("lesson", newID(), lessonFields(f, "2026-10-12", 3)))
	if p, err := f.store.Pending(sys(), r.cursor); err != nil || !p {
		t.Fatalf("pending after a change=%v err=%v, want true", p, err)
	}
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	teacher := teacherCtx(f, f.teacher)
	del := newID()
	MustApply(t, teacher, f.store, upsert("lesson", newID(), lessonFields(f, "2026-10-12", 3)), upsert("lesson", del, lessonFields(f, "2026-10-12", 4)))
	MustApply(t, teacher, f.store, jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpDelete, Entity: "lesson", ID: del, HLC: nextHLC()})
	r := newReplica(t)
	r.sync(teacher, f.store, 2)

	cursor, n, sum, err := f.store.Verify(teacher, r.cursor)
	if err != nil {
		t.Fatal(err)
	}
	dn, dsum := r.checksum()
	if cursor != r.cursor {
		t.Fatal("verify of a synced device: the cursor is not the device's")
	}
	if n != dn || sum != dsum {
		t.Fatalf("verify: count=%d checksum=%s, device %d %s", n, sum, dn, dsum)
	}
	if len(sum) != 16 {
		t.Fatalf("checksum %q is not 16 hex digits", sum)
	}
	// A change after the device's cursor: the answer is as of a newer cursor.
	MustApply(t, teacher, f.store, upsert("lesson", newID(), lessonFields(f, "2026-10-13", 1)))
	cursor2, n2, _, err := f.store.Verify(teacher, r.cursor)
	if err != nil {
		t.Fatal(err)
	}
	if cursor2 == r.cursor || n2 != n+1 {
		t.Fatalf("verify after a change: same cursor=%v count=%d, want a new cursor and %d", cursor2 == r.cursor, n2, n+1)
	}
	r.sync(teacher, f.store, 0)
	_, n3, sum3, err := f.store.Verify(teacher, r.cursor)
	dn, dsum = r.checksum()
	if err != nil || n3 != dn || sum3 != dsum {
		t.Fatalf("verify after pulling: %d %s, device %d %s, err=%v", n3, sum3, dn, dsum, err)
	}
	// Without a cursor the figures are those of a fresh cursor.
	c4, _, _, err := f.store.Verify(teacher, "")
	if err != nil || c4 == "" {
		t.Fatalf("verify without cursor: cursor=%q err=%v", c4, err)
	}
}

func TestChecksumFormula(t *testing.T) {
	// SHA-256("lesson/00000000-0000-0000-0000-000000000001/7") starts with these 8 bytes.
	n, sum := wire.ChecksumOf([]wire.Record{
		{Entity: "lesson", ID: "00000000-0000-0000-0000-000000000001", Version: "7"},
		{Entity: "lesson", ID: "00000000-0000-0000-0000-000000000002", Version: "1", Deleted: true},
	})
	want := fmt.Sprintf("%016x", wire.RecordHash("lesson", "00000000-0000-0000-0000-000000000001", "7"))
	if n != 1 || sum != want {
		t.Fatalf("checksum=%d %s, want 1 %s", n, sum, want)
	}
	f := newFixture(t)
	var dbsum string
	if err := f.db.Get(&dbsum, `SELECT left(encode(sha256('lesson/00000000-0000-0000-0000-000000000001/7'), 'hex'), 16)`); err != nil {
		t.Fatal(err)
	}
	if dbsum != sum {
		t.Fatalf("Go %s, PostgreSQL %s", sum, dbsum)
	}
}

func TestReject(t *testing.T) {
	f := newFixture(t)
	teacher := teacherCtx(f, f.teacher)
	op := upsert("lesson", newID(), map[string]any{"exchangeId": f.exchange, "lessonType": "公开课"})
	res, err := f.store.Reject(teacher, op, jiaoliu.RejectSchemaMismatch, "written for schema 0")
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != jiaoliu.StatusRejected || res.Code != jiaoliu.RejectSchemaMismatch || res.Duplicate {
		t.Fatalf("result=%+v", res)
	}
	again, err := f.store.Reject(teacher, op, jiaoliu.RejectSchemaMismatch, "written for schema 0")
	if err != nil || !again.Duplicate || again.Code != jiaoliu.RejectSchemaMismatch {
		t.Fatalf("second=%+v err=%v, want a duplicate", again, err)
	}
	// Apply answers a resend of the op from what Reject remembered.
	applied, err := f.store.Apply(teacher, jiaoliu.Batch{Ops: []jiaoliu.Op{op}})
	if err != nil || !applied[0].Duplicate || applied[0].Code != jiaoliu.RejectSchemaMismatch {
		t.Fatalf("apply of the same op=%+v err=%v", applied, err)
	}
	var row struct {
		Code   string   `db:"code"`
		Op     []byte   `db:"op"`
		Scopes []string `db:"-"`
	}
	if err := f.db.Get(&row, `SELECT code, op FROM sync_rejections WHERE op_id = $1`, op.OpID); err != nil {
		t.Fatal(err)
	}
	if row.Code != jiaoliu.RejectSchemaMismatch || len(row.Op) == 0 {
		t.Fatalf("stored=%+v", row)
	}
}

func TestDeviceBookkeeping(t *testing.T) {
	f := newFixture(t)
	ctx := teacherCtx(f, f.teacher)
	ok := true
	if err := f.store.DeviceSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.store.DeviceVerified(ctx, &ok); err != nil {
		t.Fatal(err)
	}
	if err := f.store.DeviceVerified(sys(), nil); err != nil {
		t.Fatal(err)
	}
}
