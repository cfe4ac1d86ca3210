package chaos_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// TestConcurrentResendAppliesOnce sends one batch on two sockets and over HTTP at the
// same moment, as a device does that reconnects while its first push is still being
// applied: every op must be applied once (one non-duplicate answer, one conflict row
// per lost field, one audit row), and all three answers must agree, also for ops the
// server re-stamps (their HLC is the server's, once). Every batch is taken for new (its
// opIds not looked up): the second application waits on the unique indexes of what the
// first writes and runs again with its opIds locked and looked up; every other round's
// batch is large enough for its results to be stored with COPY, the others with an
// INSERT. Before the write path locked op ids, the second transaction did not see the
// first's uncommitted sync_ops row and applied the batch again.
func TestConcurrentResendAppliesOnce(t *testing.T) {
	srv := newServer(t)
	w := newWorld(t, srv.URL())
	reg := registerDevice(t, w.admin, w.userA, "twice-tablet")
	db, err := sqlx.Connect("postgres", srv.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Three sessions of one device: two sockets and the HTTP fallback.
	var devs []*device
	for i := range 3 {
		devs = append(devs, newDevice(fmt.Sprintf("session-%d", i), reg, []string{w.exchangeA}, 0, true, uint64(i), srv.URL()))
	}
	clock := hlc.NewClock(reg.DeviceID)
	lesson := uuid.NewString()
	create := jiaoliu.Op{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: lesson, HLC: clock.Now(),
		Fields: map[string]any{"exchangeId": w.exchangeA, "date": "2026-10-12", "period": 1, "subject": "数学", "kind": "REGULAR", "topic": "first"}}
	if _, err := devs[2].postPush(ctx, []jiaoliu.Op{create}); err != nil {
		t.Fatal(err)
	}

	const rounds = 12
	var all []jiaoliu.Op
	var lastFuture jiaoliu.Op
	answers := map[string][]jiaoliu.OpResult{}
	for r := range rounds {
		stale := hlc.Timestamp{Wall: 1_700_000_000_000 + int64(r), Node: reg.DeviceID}.String()
		future := hlc.Timestamp{Wall: time.Now().Add(48 * time.Hour).UnixMilli(), Node: reg.DeviceID}.String()
		ops := []jiaoliu.Op{
			// Loses its field to the create: one conflict row.
			{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: lesson, HLC: stale, Fields: map[string]any{"topic": fmt.Sprintf("stale %d", r)}},
			// Two days ahead: re-stamped with the server's HLC.
			{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, Entity: "lesson", ID: lesson, HLC: future, Fields: map[string]any{"notes": fmt.Sprintf("future %d", r)}},
			// A new record.
			{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, Entity: "researchActivity", ID: uuid.NewString(), HLC: clock.Now(),
				Fields: map[string]any{"exchangeId": w.exchangeA, "date": "2026-10-13", "kind": "SURVEY", "topic": fmt.Sprint(r)}},
		}
		if r%2 == 1 {
			// 15 more: a batch of 18, whose results are stored with COPY (a second
			// application finds the first's results when it stores its own, and runs
			// again as a resend).
			for k := range 15 {
				ops = append(ops, jiaoliu.Op{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, Entity: "researchActivity", ID: uuid.NewString(), HLC: clock.Now(),
					Fields: map[string]any{"exchangeId": w.exchangeA, "date": "2026-10-14", "kind": "SURVEY", "topic": fmt.Sprint(r, "-", k)}})
			}
		}
		lastFuture = ops[1]
		all = append(all, ops...)
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, d := range devs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ack *wire.Ack
				var err error
				if i == 2 {
					<-start
					ack, err = d.postPush(ctx, ops)
				} else {
					s, serr := d.ensureSession(ctx)
					if serr != nil {
						t.Error(serr)
						return
					}
					<-start
					ack, err = d.pushOn(ctx, s, ops)
				}
				if err != nil {
					t.Errorf("%s: %v", d.name, err)
					return
				}
				mu.Lock()
				for _, res := range ack.Results {
					answers[res.OpID] = append(answers[res.OpID], res)
				}
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
	}

	applied := 0
	for _, op := range all {
		res := answers[op.OpID]
		fresh := 0
		for _, r := range res {
			if !r.Duplicate {
				fresh++
			}
			if !sameResult(r, res[0]) {
				t.Errorf("op %s: answers disagree: %+v and %+v", op.OpID, r, res[0])
			}
		}
		if len(res) != 3 || fresh != 1 {
			t.Errorf("op %s (%s): %d answers, %d not duplicate; want 3 and 1", op.OpID, op.Fields, len(res), fresh)
		}
		applied += fresh
	}
	type count struct {
		What string `db:"what"`
		N    int    `db:"n"`
	}
	ids := make([]string, len(all))
	for i, op := range all {
		ids[i] = op.OpID
	}
	var doubled []count
	if err := db.Select(&doubled, `
		SELECT 'audit ' || op_id AS what, count(*) AS n FROM audit_log WHERE op_id = ANY($1) GROUP BY op_id HAVING count(*) > 1
		UNION ALL SELECT 'conflict ' || lost_op_id, count(*) FROM sync_conflicts WHERE lost_op_id = ANY($1) GROUP BY lost_op_id HAVING count(*) > 1`, pq.Array(ids)); err != nil {
		t.Fatal(err)
	}
	for _, d := range doubled {
		t.Errorf("applied twice: %s (%d rows)", d.What, d.N)
	}
	var conflicts int
	if err := db.Get(&conflicts, `SELECT count(*) FROM sync_conflicts WHERE lost_op_id = ANY($1)`, pq.Array(ids)); err != nil {
		t.Fatal(err)
	}
	if conflicts != rounds {
		t.Errorf("%d conflict rows, want %d (one per stale op)", conflicts, rounds)
	}
	// The notes field carries the last re-stamped op's HLC from its (only) answer.
	var clockJSON string
	if err := db.Get(&clockJSON, `SELECT field_hlc::text FROM lessons WHERE id = $1`, lesson); err != nil {
		t.Fatal(err)
	}
	if r := answers[lastFuture.OpID]; len(r) == 0 || !r[0].Restamped || r[0].HLC == "" || !strings.Contains(clockJSON, r[0].HLC) {
		t.Errorf("re-stamped op: answers %+v, field clocks %s", r, clockJSON)
	}
	t.Logf("concurrent resends: %d ops sent 3 times at once, %d applications, %d conflict rows, 0 applied twice", len(all), applied, conflicts)
}
