package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	syncserver "github.com/jiaoliu/jiaoliu/sync/server"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// sim drives several tablets against one real server, with faults.
type sim struct {
	t   *testing.T
	e   *env
	rng *rand.Rand
	all []*device
	// issued lists the ops each Upsert/Delete returned, per device; expectReject the
	// ops the server must refuse (with the code).
	issued       map[*device][]string
	expectReject map[string]string
	doomed       map[string]bool // records whose create the server refuses
	stats        struct{ syncs, failedSyncs, drops, crashes, lateDrops, ackCrashes int }
}

var (
	errInjected   = errors.New("injected fault")
	errLostAtOnce = fmt.Errorf("link lost right after sending: %w", errInjected)
)

func (s *sim) issue(d *device, opID string, err error) string {
	s.t.Helper()
	if err != nil {
		s.t.Fatalf("%s: %v", d.name, err)
	}
	s.issued[d] = append(s.issued[d], opID)
	return opID
}

func (s *sim) upsert(d *device, entity, id string, fields map[string]any) string {
	s.t.Helper()
	op, err := d.c.Upsert(context.Background(), entity, id, fields)
	return s.issue(d, op, err)
}

// fault picks the fault of the next sync of d: none, a link lost after the server
// committed the first push, a crash at that point, a link lost at once after sending,
// or a crash after the ack arrived and before it was stored.
func (s *sim) fault(d *device) (crash bool) {
	d.c.hooks = hooks{}
	switch p := s.rng.IntN(100); {
	case p < 20:
		s.stats.drops++
		d.c.hooks.afterSend = s.afterCommit(d)
	case p < 30:
		s.stats.crashes++
		d.c.hooks.afterSend = s.afterCommit(d)
		crash = true
	case p < 38:
		s.stats.lateDrops++
		d.c.hooks.afterSend = func(m wire.Message) error {
			if _, ok := m.(*wire.Push); ok {
				d.c.hooks.afterSend = nil
				return errLostAtOnce
			}
			return nil
		}
	case p < 44:
		s.stats.ackCrashes++
		d.c.hooks.beforeAckApplied = func(*wire.Ack) error {
			d.c.hooks.beforeAckApplied = nil
			return errInjected
		}
		crash = true
	}
	return crash
}

// afterCommit drops the link once, after the server committed the first push.
func (s *sim) afterCommit(d *device) func(wire.Message) error {
	return func(m wire.Message) error {
		p, ok := m.(*wire.Push)
		if !ok {
			return nil
		}
		d.c.hooks.afterSend = nil
		ids := make([]string, len(p.Ops))
		for i, op := range p.Ops {
			ids[i] = op.OpID
		}
		if err := s.e.waitCommitted(ids); err != nil {
			s.t.Errorf("%s: %v", d.name, err)
		}
		return errInjected
	}
}

// sync syncs d, maybe with a fault; after a fault the device (reopened from disk if
// it "crashed") syncs again at once.
func (s *sim) sync(d *device, faults bool) {
	s.t.Helper()
	crash := false
	if faults {
		crash = s.fault(d)
	}
	s.stats.syncs++
	began := time.Now()
	err := d.c.Sync(context.Background())
	if d := time.Since(began); d > 3*time.Second {
		s.t.Logf("slow sync: %v (err %v)", d, err)
	}
	d.c.hooks = hooks{}
	if err == nil {
		return
	}
	if !errors.Is(err, errInjected) {
		s.t.Fatalf("%s: sync: %v", d.name, err)
	}
	s.stats.failedSyncs++
	if errors.Is(err, errLostAtOnce) {
		// The server may still be applying the push of the lost link. Overlapping
		// copies are TestServerConcurrentResendIsIdempotent's business; here the
		// device comes back once the server has let the old session go, so that the
		// accounting below is exact whatever the timing.
		s.e.waitIdle()
	}
	if crash {
		d.crash(s.t)
	}
	s.stats.syncs++
	if err := d.c.Sync(context.Background()); err != nil {
		s.t.Fatalf("%s: sync after the fault: %v", d.name, err)
	}
}

var (
	days     = []string{"2026-10-12", "2026-10-13", "2026-10-14"}
	topics   = []string{"分数", "小数", "方程", "几何", "统计"}
	classes  = []string{"三(1)班", "三(2)班", "四(1)班"}
	statuses = []string{"PRESENT", "LEAVE", "SICK", "ABSENT"}
)

func (s *sim) pick(list []string) string { return list[s.rng.IntN(len(list))] }

func (s *sim) live(d *device, entity string) []Record {
	recs, err := d.c.List(context.Background(), entity)
	if err != nil {
		s.t.Fatal(err)
	}
	return recs
}

// lessonOp writes a lesson on exchange ex: a new one, or (half the time, like the
// tablet command) the one of the same day and period if the device has it.
func (s *sim) lessonOp(d *device, ex string) string {
	f := lessonOf(ex, s.pick(days), 1+s.rng.IntN(3))
	f["topic"] = s.pick(topics)
	if s.rng.IntN(2) == 0 {
		if r, ok, err := d.c.FindByKey(context.Background(), "lesson", f); err != nil {
			s.t.Fatal(err)
		} else if ok {
			return s.upsert(d, "lesson", r.ID, map[string]any{"topic": f["topic"]})
		}
	}
	return s.upsert(d, "lesson", NewID(), f)
}

func (s *sim) attendanceOp(d *device, ex string) string {
	f := map[string]any{"exchangeId": ex, "date": s.pick(days), "status": s.pick(statuses)}
	if s.rng.IntN(2) == 0 {
		if r, ok, err := d.c.FindByKey(context.Background(), "attendance", f); err != nil {
			s.t.Fatal(err)
		} else if ok {
			return s.upsert(d, "attendance", r.ID, map[string]any{"status": f["status"]})
		}
	}
	return s.upsert(d, "attendance", NewID(), f)
}

func (s *sim) editLesson(d *device, ex string) {
	recs := s.live(d, "lesson")
	if len(recs) == 0 {
		s.lessonOp(d, ex)
		return
	}
	r := recs[s.rng.IntN(len(recs))]
	var f map[string]any
	switch s.rng.IntN(4) {
	case 0:
		f = map[string]any{"topic": s.pick(topics)}
	case 1:
		f = map[string]any{"minutes": 30 + s.rng.IntN(31)}
	case 2:
		f = map[string]any{"className": s.pick(classes)}
	default:
		f = map[string]any{"notes": fmt.Sprintf("%s 第%d次修改", d.name, s.rng.IntN(1000)), "topic": s.pick(topics)}
	}
	op := s.upsert(d, "lesson", r.ID, f)
	if s.doomed[r.ID] {
		// An edit of a record the server never created is a create without the
		// required fields.
		s.expectReject[op] = jiaoliu.RejectValidation
	}
}

// teacherA is a random offline action of teacher A's tablets.
func (s *sim) teacherA(d *device) {
	switch p := s.rng.IntN(100); {
	case p < 25:
		s.lessonOp(d, s.e.e1)
	case p < 55:
		s.editLesson(d, s.e.e1)
	case p < 70:
		s.attendanceOp(d, s.e.e1)
	case p < 80:
		recs := s.live(d, "lesson")
		if len(recs) == 0 {
			return
		}
		l := recs[s.rng.IntN(len(recs))]
		s.upsert(d, "observation", NewID(), map[string]any{"observedTeacherId": s.e.teacherB, "date": l.Fields["date"],
			"lessonId": l.ID, "comments": "听课记录", "rating": 1 + s.rng.IntN(5)})
	case p < 85:
		recs := s.live(d, "lesson")
		if len(recs) == 0 {
			return
		}
		op, err := d.c.Delete(context.Background(), "lesson", recs[s.rng.IntN(len(recs))].ID)
		s.issue(d, op, err)
	default:
		// A new lesson, edited at once and observed: the edit and the observation
		// refer to an id the server may merge into a twin.
		id := NewID()
		f := lessonOf(s.e.e1, s.pick(days), 1+s.rng.IntN(3))
		s.upsert(d, "lesson", id, f)
		s.upsert(d, "lesson", id, map[string]any{"topic": s.pick(topics), "minutes": 45})
		s.upsert(d, "observation", NewID(), map[string]any{"observedTeacherId": s.e.teacherB, "date": f["date"], "lessonId": id})
	}
}

func (s *sim) teacherB(d *device) {
	switch p := s.rng.IntN(100); {
	case p < 40:
		s.lessonOp(d, s.e.e2)
	case p < 70:
		s.editLesson(d, s.e.e2)
	case p < 88:
		s.attendanceOp(d, s.e.e2)
	default:
		// A lesson on another teacher's exchange: the server must refuse it, and the
		// device must keep and report it.
		id := NewID()
		op := s.upsert(d, "lesson", id, lessonOf(s.e.e1, s.pick(days), 4))
		s.expectReject[op] = jiaoliu.RejectForbidden
		s.doomed[id] = true
	}
}

func (s *sim) admin(d *device) {
	if recs := s.live(d, "attendance"); len(recs) > 0 && s.rng.IntN(3) == 0 {
		r := recs[s.rng.IntN(len(recs))]
		s.upsert(d, "attendance", r.ID, map[string]any{"status": s.pick(statuses), "note": "校管理员核对"})
		return
	}
	ex := s.e.e1
	if s.rng.IntN(2) == 0 {
		ex = s.e.e2
	}
	s.attendanceOp(d, ex)
}

// TestDevicesConverge runs four tablets (two of teacher A, one of teacher B, one of
// the receiving school's admin) that edit the same records offline and sync in
// random orders through dropped links and crashes, against a real server on a real
// database. At the end every replica equals the server's state, every op is
// accounted for (applied, merged, or rejected and reported), and none was applied
// twice.
func TestDevicesConverge(t *testing.T) {
	t.Parallel()
	start := time.Now()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SYNC_TEST_SEED"); v != "" {
		seed = must(strconv.ParseUint(v, 10, 64))
	}
	t.Logf("seed %d (replay with SYNC_TEST_SEED=%d)", seed, seed)
	e := newEnv(t, func(s *syncserver.Server) { s.RateLimit = 0 })
	ctx := context.Background()
	a1, a2 := e.newDevice("a1", e.userA), e.newDevice("a2", e.userA)
	b, adm := e.newDevice("b", e.userB), e.newDevice("admin", e.admin)
	s := &sim{t: t, e: e, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), all: []*device{a1, a2, b, adm},
		issued: map[*device][]string{}, expectReject: map[string]string{}, doomed: map[string]bool{}}
	for _, d := range s.all {
		s.sync(d, false)
	}

	// Scripted conflicts first. A lesson both of A's tablets edit offline: the same
	// field (a2 first, so a1's later edit wins and a2's is reported lost) and
	// different fields (both kept).
	lesson := NewID()
	s.upsert(a1, "lesson", lesson, lessonOf(e.e1, "2026-10-12", 3))
	s.sync(a1, false)
	s.sync(a2, false)
	// Each tablet's clock is corrected by its own estimate of the server's time (the
	// middle of a round trip, so a few ms apart on a quiet machine and tens of ms
	// under the race detector on a loaded one): the competing writes below are spaced
	// by more than the estimates' spread, so that their HLCs follow the order in which
	// they were made.
	apart := 25*time.Millisecond + offsetSpread(t, s.all)
	lostOp := s.upsert(a2, "lesson", lesson, map[string]any{"topic": "小数", "className": "三(2)班"})
	time.Sleep(apart)
	s.upsert(a1, "lesson", lesson, map[string]any{"topic": "分数", "minutes": 40})
	// Twins: the same lesson slot logged on both tablets under different ids, the
	// second one edited and observed before it syncs; the same day's attendance from
	// both tablets and from the school admin.
	twinA, twinB, obs := NewID(), NewID(), NewID()
	s.upsert(a1, "lesson", twinA, lessonOf(e.e1, "2026-10-13", 1))
	time.Sleep(apart)
	twinOp := s.upsert(a2, "lesson", twinB, lessonOf(e.e1, "2026-10-13", 1))
	s.upsert(a2, "lesson", twinB, map[string]any{"topic": "方程"})
	s.upsert(a2, "observation", obs, map[string]any{"observedTeacherId": e.teacherB, "date": "2026-10-13", "lessonId": twinB})
	att1, att2, att3 := NewID(), NewID(), NewID()
	s.upsert(a1, "attendance", att1, map[string]any{"exchangeId": e.e1, "date": "2026-10-13", "status": "PRESENT"})
	time.Sleep(apart)
	attOp2 := s.upsert(a2, "attendance", att2, map[string]any{"exchangeId": e.e1, "date": "2026-10-13", "status": "LEAVE"})
	time.Sleep(apart)
	attOp3 := s.upsert(adm, "attendance", att3, map[string]any{"exchangeId": e.e1, "date": "2026-10-13", "status": "SICK", "note": "病假条已收"})
	s.stats.drops++
	s.stats.syncs += 2
	s.stats.failedSyncs += 2
	a1.c.hooks.afterSend = s.afterCommit(a1)
	if err := a1.c.Sync(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("a1: %v", err)
	}
	s.sync(a1, false)
	s.stats.crashes++
	a2.c.hooks.afterSend = s.afterCommit(a2)
	if err := a2.c.Sync(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("a2: %v", err)
	}
	a2.crash(t)
	s.sync(a2, false)
	s.sync(adm, false)
	for _, d := range s.all {
		s.sync(d, false)
	}
	s.checkScripted(lesson, lostOp, twinA, twinB, twinOp, obs, att1, attOp2, attOp3)

	// Then random rounds: offline work on every tablet, syncs in random order, faults.
	const rounds = 10
	for round := 0; round < rounds; round++ {
		for _, d := range s.all {
			for n := s.rng.IntN(5); n > 0; n-- {
				switch d {
				case a1, a2:
					s.teacherA(d)
				case b:
					s.teacherB(d)
				default:
					s.admin(d)
				}
			}
		}
		for _, i := range s.rng.Perm(len(s.all)) {
			s.sync(s.all[i], true)
		}
	}
	// Settle: every outbox empties; one more pass so that everyone pulls the end state.
	for pass := 0; ; pass++ {
		pending := 0
		for _, d := range s.all {
			s.sync(d, false)
			pending += len(must(d.c.Pending(ctx)))
		}
		if pending == 0 {
			break
		}
		if pass > 5 {
			t.Fatalf("%d ops still pending after %d passes", pending, pass)
		}
	}
	for _, d := range s.all {
		s.sync(d, false)
	}
	s.checkEnd(start)
}

// checkScripted checks the outcome of the scripted conflicts.
func (s *sim) checkScripted(lesson, lostOp, twinA, twinB, twinOp, obs, att1, attOp2, attOp3 string) {
	t, e, ctx := s.t, s.e, context.Background()
	a1, a2, adm := s.all[0], s.all[1], s.all[3]
	l := must(a2.c.Get(ctx, "lesson", lesson))
	if l.Fields["topic"] != "分数" || l.Fields["minutes"] != jsonNum(40) || l.Fields["className"] != "三(2)班" || l.Pending != 0 {
		t.Errorf("lesson edited on two tablets=%+v; want topic 分数 (later), minutes 40 and className 三(2)班 (different fields)", l.Fields)
	}
	lost := resultOf(t, a2, lostOp)
	if lost.Status != jiaoliu.StatusApplied || !slices.Equal(lost.Lost, []string{"topic"}) {
		t.Errorf("the earlier edit's result=%+v, want topic lost", lost)
	}
	var conflicts int
	if err := e.db.Get(&conflicts, `SELECT count(*) FROM sync_conflicts WHERE record_id = $1 AND field = 'topic' AND lost_op_id = $2`, lesson, lostOp); err != nil || conflicts != 1 {
		t.Errorf("conflicts recorded=%d err=%v, want 1", conflicts, err)
	}
	// The twin lesson merged into a1's; a2's edit and observation followed it.
	if r := resultOf(t, a2, twinOp); r.Status != jiaoliu.StatusMerged || r.CanonicalID != twinA {
		t.Errorf("twin lesson result=%+v, want merged into %s", r, twinA)
	}
	for _, d := range []*device{a1, a2} {
		if _, err := d.c.Get(ctx, "lesson", twinB); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s still has the merged id %s: %v", d.name, twinB, err)
		}
		if tw := must(d.c.Get(ctx, "lesson", twinA)); tw.Fields["topic"] != "方程" {
			t.Errorf("%s: merged lesson=%+v, want a2's topic", d.name, tw.Fields)
		}
		if o := must(d.c.Get(ctx, "observation", obs)); o.Fields["lessonId"] != twinA || o.Version == "" {
			t.Errorf("%s: observation=%+v, want it on the canonical lesson", d.name, o)
		}
	}
	for _, op := range []struct {
		d  *device
		id string
	}{{a2, attOp2}, {adm, attOp3}} {
		if r := resultOf(t, op.d, op.id); r.Status != jiaoliu.StatusMerged || r.CanonicalID != att1 {
			t.Errorf("%s: attendance twin=%+v, want merged into %s", op.d.name, r, att1)
		}
	}
	for _, d := range s.all[:2] {
		recs := must(d.c.List(ctx, "attendance"))
		n := 0
		for _, r := range recs {
			if r.Fields["date"] == "2026-10-13" {
				n++
				if r.ID != att1 || r.Fields["status"] != "SICK" || r.Fields["note"] != "病假条已收" {
					t.Errorf("%s: the day's attendance=%+v, want the admin's later status on %s", d.name, r, att1)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s: %d attendance records for one day", d.name, n)
		}
	}
}

// offsetSpread is how far apart the devices' corrections of their clocks are.
func offsetSpread(t *testing.T, devs []*device) time.Duration {
	t.Helper()
	var lo, hi time.Duration
	for i, d := range devs {
		off := must(d.c.Status(context.Background())).ClockOffset
		if i == 0 || off < lo {
			lo = off
		}
		if i == 0 || off > hi {
			hi = off
		}
	}
	t.Logf("clock offsets %v … %v", lo, hi)
	return hi - lo
}

func jsonNum(n int) any { return json.Number(strconv.Itoa(n)) }

func resultOf(t *testing.T, d *device, opID string) Result {
	t.Helper()
	for _, r := range must(d.c.Results(context.Background())) {
		if r.OpID == opID {
			return r
		}
	}
	t.Fatalf("%s: no result for op %s", d.name, opID)
	return Result{}
}

// checkEnd checks convergence, accounting and exactly-once application.
func (s *sim) checkEnd(start time.Time) {
	t, e, ctx := s.t, s.e, context.Background()
	var allOps []string
	counts := map[string]int{}
	dups := 0
	// expected holds, per record, the winning op of each field (by HLC) among the ops
	// the server took: the model of per-field last-writer-wins.
	type win struct {
		hlc   string
		value any
	}
	expected := map[string]map[string]win{}
	deleted := map[string]bool{}
	for _, d := range s.all {
		ids := s.issued[d]
		allOps = append(allOps, ids...)
		if n := len(must(d.c.Pending(ctx))); n != 0 {
			t.Errorf("%s: %d ops still pending", d.name, n)
		}
		byOp := map[string]Result{}
		for _, r := range must(d.c.Results(ctx)) {
			byOp[r.OpID] = r
		}
		for _, id := range ids {
			r, ok := byOp[id]
			if !ok {
				t.Errorf("%s: op %s was lost: no result", d.name, id)
				continue
			}
			counts[r.Status]++
			if r.Duplicate {
				dups++
			}
			if r.Restamped {
				t.Errorf("%s: op %s was re-stamped", d.name, id)
			}
			want, mustReject := s.expectReject[id]
			switch {
			case mustReject && (r.Status != jiaoliu.StatusRejected || r.Code != want):
				t.Errorf("%s: op %s=%+v, want rejected %s", d.name, id, r, want)
			case !mustReject && r.Status == jiaoliu.StatusRejected:
				t.Errorf("%s: op %s rejected unexpectedly: %s %s %v (%s %s %v)", d.name, id, r.Code, r.Message, r.FieldErrors, r.Kind, r.Entity, r.Fields)
			}
			if r.Status == jiaoliu.StatusRejected {
				continue
			}
			key := r.Entity + "/" + r.ID
			if r.CanonicalID != "" {
				key = r.Entity + "/" + r.CanonicalID
			}
			if r.Kind == jiaoliu.OpDelete {
				deleted[key] = true
				continue
			}
			if expected[key] == nil {
				expected[key] = map[string]win{}
			}
			for f, v := range r.Fields {
				if w, ok := expected[key][f]; !ok || r.HLC > w.hlc {
					expected[key][f] = win{r.HLC, v}
				}
			}
		}
		rejections := 0
		for _, r := range must(d.c.Rejections(ctx)) {
			if _, ok := s.expectReject[r.OpID]; !ok {
				t.Errorf("%s: unexpected rejection %+v", d.name, r)
			}
			rejections++
		}
		wantRej := 0
		for _, id := range ids {
			if _, ok := s.expectReject[id]; ok {
				wantRej++
			}
		}
		if rejections != wantRej {
			t.Errorf("%s: %d rejections reported, want %d", d.name, rejections, wantRej)
		}
	}
	// The server's state follows the model.
	server := e.serverState(sys())
	for key, fields := range expected {
		rec, ok := server[key]
		if !ok {
			t.Errorf("the server has no %s", key)
			continue
		}
		if rec.Deleted != deleted[key] {
			t.Errorf("%s deleted=%v, want %v", key, rec.Deleted, deleted[key])
		}
		got, err := rec.Fields()
		if err != nil {
			t.Fatal(err)
		}
		for f, w := range fields {
			if a, b := canonJSON(got[f]), canonJSON(w.value); a != b {
				t.Errorf("%s.%s=%s, want %s (the value of the latest write, %s)", key, f, a, b, w.hlc)
			}
		}
	}
	// Exactly once: every op reached the server once; no record was created twice; no
	// op wrote twice.
	var stored int
	if err := e.db.Get(&stored, `SELECT count(*) FROM sync_ops WHERE op_id = ANY($1)`, pq.Array(allOps)); err != nil || stored != len(allOps) {
		t.Errorf("sync_ops holds %d of the %d ops (err %v)", stored, len(allOps), err)
	}
	var twice []string
	if err := e.db.Select(&twice, `SELECT op_id FROM audit_log WHERE op_id = ANY($1) GROUP BY op_id HAVING count(*) > 1`, pq.Array(allOps)); err != nil || len(twice) > 0 {
		t.Errorf("ops audited more than once: %v (err %v)", twice, err)
	}
	var created []string
	if err := e.db.Select(&created, `SELECT entity || '/' || record_id FROM audit_log WHERE action = 'CREATE' GROUP BY entity, record_id HAVING count(*) > 1`); err != nil || len(created) > 0 {
		t.Errorf("records created twice: %v (err %v)", created, err)
	}
	var creates, records int
	if err := e.db.Get(&creates, `SELECT count(*) FROM audit_log WHERE action = 'CREATE' AND entity IN ('lesson', 'attendance', 'observation')`); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Get(&records, `SELECT (SELECT count(*) FROM lessons) + (SELECT count(*) FROM attendance) + (SELECT count(*) FROM observations)`); err != nil {
		t.Fatal(err)
	}
	if creates != records {
		t.Errorf("%d CREATE audit rows for %d records", creates, records)
	}
	var rejRows, rejOps int
	if err := e.db.QueryRow(`SELECT count(*), count(DISTINCT op_id) FROM sync_rejections`).Scan(&rejRows, &rejOps); err != nil || rejRows != len(s.expectReject) || rejOps != rejRows {
		t.Errorf("sync_rejections: %d rows for %d ops, want %d (err %v)", rejRows, rejOps, len(s.expectReject), err)
		var rows []struct {
			OpID, Code, Message string
			At                  time.Time
		}
		_ = e.db.Select(&rows, `SELECT op_id AS opid, code, message, created_at AS at FROM sync_rejections ORDER BY id`)
		for _, r := range rows {
			t.Logf("rejection %+v (expected: %v)", r, s.expectReject[r.OpID] != "")
		}
	}
	// Every replica equals the server's view for its user, and verified.
	for _, d := range s.all {
		e.assertReplicaMatches(d)
		if st := must(d.c.Status(ctx)); !st.VerifyOK {
			t.Errorf("%s: last verify did not match: %+v", d.name, st)
		}
	}
	var live int
	for _, r := range server {
		if !r.Deleted && (r.Entity == "lesson" || r.Entity == "attendance" || r.Entity == "observation") {
			live++
		}
	}
	t.Logf("%d devices, %d ops (%d applied, %d merged, %d rejected as expected), %d answered as duplicates; "+
		"%d syncs (%d cut by faults: %d links lost after commit, %d crashes after commit, %d links lost at once, %d crashes before storing an ack); "+
		"%d device records on the server (%d live); %v",
		len(s.all), len(allOps), counts[jiaoliu.StatusApplied], counts[jiaoliu.StatusMerged], counts[jiaoliu.StatusRejected], dups,
		s.stats.syncs, s.stats.failedSyncs, s.stats.drops, s.stats.crashes, s.stats.lateDrops, s.stats.ackCrashes,
		records, live, time.Since(start).Round(time.Millisecond))
	if dups == 0 {
		t.Error("no op was answered as a duplicate: the faults did not exercise resends")
	}
}
