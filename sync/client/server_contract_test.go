package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	syncserver "github.com/jiaoliu/jiaoliu/sync/server"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// TestServerConcurrentResendIsIdempotent checks the contract's idempotency ("an opId
// that was seen before changes nothing and returns its first result with duplicate:
// true") when the copies of one push overlap.
//
// A device whose link drops right after it sent a push reconnects and resends the
// same ops, while the server may still be applying the first copy on the old
// connection. This test sends six copies of one push at once over the HTTP fallback.
// Against the server as first delivered it failed every round: both transactions
// looked the opId up in sync_ops before either committed, both applied the op, and the
// later one overwrote the first result (INSERT … ON CONFLICT (op_id) DO UPDATE):
//   - more than one copy of each op was answered duplicate:false;
//   - a rejected op was stored two or three times in sync_rejections;
//   - a lesson's create, once its first copy committed, was found by the natural-key
//     lookup of the second copy and answered "merged" into its own id, which replaced
//     the op's remembered result;
//   - a create without a natural key (an observation) failed on the primary key in the
//     second copy and was answered rejected validation_failed ("a observation with
//     the same key already exists") although the record was created; that rejection
//     was stored and replaced the op's remembered result.
//
// The write path now takes an advisory lock per opId before the lookup.
func TestServerConcurrentResendIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(s *syncserver.Server) { s.RateLimit = 0 })
	a := e.newDevice("a", e.userA)
	const copies, rounds = 6, 4
	var problems []string
	for round := 0; round < rounds; round++ {
		lesson := NewID()
		create := sysOp("lesson", lesson, lessonOf(e.e1, "2026-10-12", 1+round))
		forbidden := sysOp("lesson", NewID(), lessonOf(e.e2, "2026-10-12", 1+round)) // teacher B's exchange
		observe := sysOp("observation", NewID(), map[string]any{"observedTeacherId": e.teacherB, "date": "2026-10-12"})
		create.HLC, forbidden.HLC, observe.HLC = create.HLC[:19]+a.id, forbidden.HLC[:19]+a.id, observe.HLC[:19]+a.id
		creates := []jiaoliu.Op{create, observe}
		body, err := wire.Encode(&wire.Push{BatchID: fmt.Sprintf("r-%d", round), Ops: []jiaoliu.Op{observe, forbidden, create}})
		if err != nil {
			t.Fatal(err)
		}
		acks := make([]*wire.Ack, copies)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range copies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				acks[i] = postPush(t, e.ts.URL, a.token, body)
			}()
		}
		close(start)
		wg.Wait()
		fresh := map[string]int{}
		for i, ack := range acks {
			if ack == nil {
				continue
			}
			for _, r := range ack.Results {
				if !r.Duplicate {
					fresh[r.OpID]++
				}
				if (r.OpID == create.OpID || r.OpID == observe.OpID) && r.Status != jiaoliu.StatusApplied {
					problems = append(problems, fmt.Sprintf("round %d copy %d: a create was answered %s %s %q canonicalId=%s (duplicate=%v)",
						round, i, r.Status, r.Code, r.Message, r.CanonicalID, r.Duplicate))
				}
			}
		}
		for _, op := range []jiaoliu.Op{create, forbidden, observe} {
			if fresh[op.OpID] != 1 {
				problems = append(problems, fmt.Sprintf("round %d: %d of %d copies of op %s were answered as first results (want 1, the others duplicate)", round, fresh[op.OpID], copies, op.OpID))
			}
		}
		var rejections int
		if err := e.db.Get(&rejections, `SELECT count(*) FROM sync_rejections WHERE op_id = $1`, forbidden.OpID); err != nil {
			t.Fatal(err)
		}
		if rejections != 1 {
			problems = append(problems, fmt.Sprintf("round %d: the rejected op is stored %d times in sync_rejections", round, rejections))
		}
		for _, op := range creates {
			var stored []byte
			if err := e.db.Get(&stored, `SELECT result FROM sync_ops WHERE op_id = $1`, op.OpID); err != nil {
				t.Fatal(err)
			}
			var first jiaoliu.OpResult
			if err := json.Unmarshal(stored, &first); err != nil {
				t.Fatal(err)
			}
			if first.Status != jiaoliu.StatusApplied {
				problems = append(problems, fmt.Sprintf("round %d: the remembered result of the %s create is %s %s: every later resend gets it", round, op.Entity, first.Status, first.Code))
			}
			var creates int
			if err := e.db.Get(&creates, `SELECT count(*) FROM audit_log WHERE record_id = $1 AND action = 'CREATE'`, op.ID); err != nil || creates != 1 {
				problems = append(problems, fmt.Sprintf("round %d: %d CREATE audit rows for the %s (err %v)", round, creates, op.Entity, err))
			}
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// postPush posts a push body to the HTTP fallback and decodes the ack.
func postPush(t *testing.T, server, token string, body []byte) *wire.Ack {
	req, err := http.NewRequest(http.MethodPost, server+"/sync/push", bytes.NewReader(body))
	if err != nil {
		t.Error(err)
		return nil
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	m, err := wire.Decode(data)
	if err != nil {
		t.Errorf("push answered %d %s: %v", resp.StatusCode, data, err)
		return nil
	}
	ack, ok := m.(*wire.Ack)
	if !ok {
		t.Errorf("push answered %d %s", resp.StatusCode, data)
		return nil
	}
	return ack
}
