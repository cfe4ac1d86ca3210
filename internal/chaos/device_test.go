package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// device is a simulated tablet that speaks the sync protocol from the contract alone
// (docs/sync-protocol.md), over a WebSocket and the HTTP fallback: it writes ops while
// offline, resends every unacknowledged op unchanged until it is acknowledged, pulls
// to more=false, verifies its replica, and keeps every op and every answer for the
// checker. Its misbehaviour is deliberate and seeded: it resends acknowledged batches,
// sends one batch on two connections at once, shuffles batches, and drops its socket.
type device struct {
	name      string
	reg       registration
	exchanges []string // the exchanges whose records it writes
	correct   bool     // corrects its clock by welcome.serverTime, as the contract asks
	skew      atomic.Int64
	// storm asks the device's own loop (the only user of its socket) to resend
	// acknowledged ops and push one batch on two connections at once.
	storm   atomic.Bool
	clock   *hlc.Clock
	rng     *rand.Rand
	wsURL   string // through the proxy
	httpURL string // through the proxy
	// requestTimeout bounds a request; a device that times out drops its socket.
	requestTimeout time.Duration

	mu       sync.Mutex
	ops      map[string]*opRecord
	order    []string // opIds in the order they were made
	outbox   []string // unacknowledged opIds, in order
	replica  map[string]wire.Record
	cursor   string
	reset    bool // a reset arrived: pull from the start
	poked    bool
	sess     *session
	lastSess *session // the last session opened, for its close frame
	seq      int
	stats    deviceStats
	lastSync time.Time
}

// opRecord is an op a device made and what the server answered.
type opRecord struct {
	op    jiaoliu.Op
	sends int
	ack   *jiaoliu.OpResult // the first answer
	// lastSent is when it was last sent, for the restamp check.
	lastSent time.Time
}

type deviceStats struct {
	made, acked, applied, merged, rejected, duplicates, restamped, lostFields int
	resent, pushes, httpPushes, dupPushes, concurrentPushes, shuffled         int
	inconsistent, reapplied, restampWrong, restampNoHLC                       int
	pulls, pokes, resets, verifyOK, verifyMismatch, verifyOther               int
	connects, connectFails, timeouts, internalErrors, rateLimited             int
	rejections                                                                []string
}

func (s *deviceStats) add(o deviceStats) {
	s.made += o.made
	s.acked += o.acked
	s.applied += o.applied
	s.merged += o.merged
	s.rejected += o.rejected
	s.duplicates += o.duplicates
	s.restamped += o.restamped
	s.lostFields += o.lostFields
	s.resent += o.resent
	s.pushes += o.pushes
	s.httpPushes += o.httpPushes
	s.dupPushes += o.dupPushes
	s.concurrentPushes += o.concurrentPushes
	s.shuffled += o.shuffled
	s.inconsistent += o.inconsistent
	s.reapplied += o.reapplied
	s.restampWrong += o.restampWrong
	s.restampNoHLC += o.restampNoHLC
	s.pulls += o.pulls
	s.pokes += o.pokes
	s.resets += o.resets
	s.verifyOK += o.verifyOK
	s.verifyMismatch += o.verifyMismatch
	s.verifyOther += o.verifyOther
	s.connects += o.connects
	s.connectFails += o.connectFails
	s.timeouts += o.timeouts
	s.internalErrors += o.internalErrors
	s.rateLimited += o.rateLimited
	s.rejections = append(s.rejections, o.rejections...)
}

func newDevice(name string, reg registration, exchanges []string, skew time.Duration, correct bool, seed uint64, baseURL string) *device {
	d := &device{name: name, reg: reg, exchanges: exchanges, correct: correct,
		rng:   rand.New(rand.NewPCG(seed, uint64(len(name))*7919)),
		wsURL: "ws://" + strings.TrimPrefix(baseURL, "http://") + "/sync", httpURL: baseURL,
		requestTimeout: 4 * time.Second,
		ops:            map[string]*opRecord{}, replica: map[string]wire.Record{}}
	d.skew.Store(skew.Milliseconds())
	d.clock = hlc.NewClockWithSource(reg.DeviceID, func() int64 { return time.Now().UnixMilli() + d.skew.Load() })
	return d
}

// Stats returns a copy of the device's counters.
func (d *device) Stats() deviceStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.rejections = slices.Clone(d.stats.rejections)
	return s
}

// --- the workload ---

var (
	subjects       = []string{"数学", "语文", "英语", "科学", "音乐"}
	lessonKinds    = []string{"REGULAR", "DEMONSTRATION", "GUIDANCE", "LECTURE"}
	attendanceKind = []string{"PRESENT", "LEAVE", "SICK", "ABSENT"}
	researchKinds  = []string{"JOINT_PREPARATION", "GROUP_ACTIVITY", "LECTURE", "SURVEY"}
)

// day returns one of the few school days the devices write about, so that devices
// collide on natural keys (a lesson per exchange, date and period; attendance per
// exchange and date) and on records.
func (d *device) day(n int) string { return fmt.Sprintf("2026-10-%02d", 10+d.rng.IntN(n)) }

// target is a record a device may edit.
type target struct{ entity, id, exchange string }

// targets returns the records the device knows and may write: those in its replica
// and those it created (acknowledged), of the exchanges it writes for.
func (d *device) targets() []target {
	seen := map[string]bool{}
	var out []target
	for k, r := range d.replica {
		ex, _ := r.Fields["exchangeId"].(string)
		if !slices.Contains(d.exchanges, ex) {
			continue
		}
		switch r.Entity {
		case "lesson", "attendance", "researchActivity":
			seen[k] = true
			out = append(out, target{r.Entity, r.ID, ex})
		}
	}
	for _, id := range d.order {
		o := d.ops[id]
		if o.ack == nil || o.ack.Status == jiaoliu.StatusRejected || o.op.Kind != jiaoliu.OpUpsert {
			continue
		}
		ex, _ := o.op.Fields["exchangeId"].(string)
		if ex == "" {
			continue
		}
		rid := o.op.ID
		if o.ack.CanonicalID != "" {
			rid = o.ack.CanonicalID
		}
		if k := o.op.Entity + "/" + rid; !seen[k] {
			seen[k] = true
			out = append(out, target{o.op.Entity, rid, ex})
		}
	}
	slices.SortFunc(out, func(a, b target) int { return strings.Compare(a.entity+a.id, b.entity+b.id) })
	return out
}

// makeOps writes n ops offline, as a teacher would in a classroom without a link.
func (d *device) makeOps(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for range n {
		d.seq++
		text := fmt.Sprintf("%s-%d", d.name, d.seq)
		ex := d.exchanges[d.rng.IntN(len(d.exchanges))]
		op := jiaoliu.Op{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, ID: uuid.NewString()}
		targets := d.targets()
		switch r := d.rng.IntN(100); {
		case r < 30 || len(targets) == 0:
			op.Entity = "lesson"
			op.Fields = map[string]any{"exchangeId": ex, "date": d.day(4), "period": 1 + d.rng.IntN(4),
				"subject": subjects[d.rng.IntN(len(subjects))], "kind": lessonKinds[d.rng.IntN(len(lessonKinds))],
				"topic": "课题 " + text, "minutes": 40 + d.rng.IntN(6), "notes": "笔记 " + text}
		case r < 42:
			op.Entity = "attendance"
			op.Fields = map[string]any{"exchangeId": ex, "date": d.day(8), "status": attendanceKind[d.rng.IntN(len(attendanceKind))], "note": text}
		case r < 50:
			op.Entity = "researchActivity"
			op.Fields = map[string]any{"exchangeId": ex, "date": d.day(8), "kind": researchKinds[d.rng.IntN(len(researchKinds))], "topic": text}
		case r < 96:
			t := targets[d.rng.IntN(len(targets))]
			op.Entity, op.ID = t.entity, t.id
			op.Fields = map[string]any{}
			pick := func(name string, v any) {
				if d.rng.IntN(2) == 0 || len(op.Fields) == 0 {
					op.Fields[name] = v
				}
			}
			switch t.entity {
			case "lesson":
				pick("topic", "课题 "+text)
				pick("notes", "笔记 "+text)
				pick("minutes", 30+d.rng.IntN(30))
				pick("kind", lessonKinds[d.rng.IntN(len(lessonKinds))])
				pick("className", fmt.Sprintf("%d班", 1+d.rng.IntN(5)))
			case "attendance":
				pick("note", text)
				pick("status", attendanceKind[d.rng.IntN(len(attendanceKind))])
			case "researchActivity":
				pick("notes", text)
				pick("topic", text)
			}
		default:
			t := targets[d.rng.IntN(len(targets))]
			op.Kind, op.Entity, op.ID = jiaoliu.OpDelete, t.entity, t.id
		}
		op.HLC = d.clock.Now()
		d.ops[op.OpID] = &opRecord{op: op}
		d.order = append(d.order, op.OpID)
		d.outbox = append(d.outbox, op.OpID)
		d.stats.made++
	}
}

// run is the device's life until ctx ends: write, push, pull, verify, misbehave.
func (d *device) run(ctx context.Context) {
	for ctx.Err() == nil {
		if d.rng.IntN(3) == 0 {
			d.makeOps(1 + d.rng.IntN(4))
		}
		if d.storm.Load() {
			d.resendAcked(ctx)
			d.pushConcurrently(ctx)
			d.storm.Store(false)
		}
		d.mu.Lock()
		poked, reset := d.poked, d.reset
		d.mu.Unlock()
		switch r := d.rng.IntN(100); {
		case poked || reset || r < 15:
			d.pullAll(ctx, 5+d.rng.IntN(200))
		case r < 55:
			d.push(ctx, d.rng.IntN(10) == 0)
		case r < 65:
			d.pushHTTP(ctx)
		case r < 70:
			d.resendAcked(ctx)
		case r < 75:
			d.pushConcurrently(ctx)
		case r < 80:
			d.verify(ctx)
		case r < 83:
			d.dropSession()
		}
		sleep(ctx, time.Duration(20+d.rng.IntN(60))*time.Millisecond)
	}
}

// --- sessions ---

// session is one WebSocket to the server.
type session struct {
	ws   *websocket.Conn
	in   chan wire.Message
	done chan struct{}
	err  error // why the socket ended, once done is closed
}

// ensureSession returns the open session, dialing one if needed.
func (d *device) ensureSession(ctx context.Context) (*session, error) {
	d.mu.Lock()
	s := d.sess
	cursor := d.cursor
	if d.reset {
		cursor = ""
	}
	d.mu.Unlock()
	if s != nil {
		select {
		case <-s.done:
			d.dropSession()
		default:
			return s, nil
		}
	}
	dialer := websocket.Dialer{HandshakeTimeout: 3 * time.Second}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ws, _, err := dialer.DialContext(dctx, d.wsURL, nil)
	if err != nil {
		d.count(func(s *deviceStats) { s.connectFails++ })
		return nil, err
	}
	s = &session{ws: ws, in: make(chan wire.Message, 256), done: make(chan struct{})}
	go s.readLoop()
	hello := &wire.Hello{Protocol: 1, DeviceID: d.reg.DeviceID, Token: d.reg.Token, SchemaVersion: 1, Cursor: cursor}
	m, err := d.exchange(ctx, s, hello, func(m wire.Message) bool { _, ok := m.(*wire.Welcome); return ok })
	if err != nil {
		ws.Close()
		d.count(func(s *deviceStats) { s.connectFails++ })
		return nil, fmt.Errorf("hello: %w", err)
	}
	if w := m.(*wire.Welcome); d.correct {
		d.clock.SetOffset(w.ServerTime - (time.Now().UnixMilli() + d.skew.Load()))
	}
	d.mu.Lock()
	d.sess, d.lastSess = s, s
	d.stats.connects++
	d.mu.Unlock()
	return s, nil
}

func (s *session) readLoop() {
	defer close(s.done)
	for {
		_, data, err := s.ws.ReadMessage()
		if err != nil {
			s.err = err
			return
		}
		m, err := wire.Decode(data)
		if err != nil {
			s.err = fmt.Errorf("undecodable message %.100s: %w", data, err)
			return
		}
		select {
		case s.in <- m:
		default:
			s.err = errors.New("device fell behind reading")
			return
		}
	}
}

// dropSession closes the socket without ceremony, as a lost link does.
func (d *device) dropSession() {
	d.mu.Lock()
	s := d.sess
	d.sess = nil
	d.mu.Unlock()
	if s != nil {
		s.ws.Close()
	}
}

// exchange sends msg and returns the first answer that want accepts, handling the
// pokes, resets and errors that come in between. A timeout drops the socket, so that
// a late answer never reaches a later request.
func (d *device) exchange(ctx context.Context, s *session, msg wire.Message, want func(wire.Message) bool) (wire.Message, error) {
	data, err := wire.Encode(msg)
	if err != nil {
		return nil, err
	}
	_ = s.ws.SetWriteDeadline(time.Now().Add(d.requestTimeout))
	if err := s.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		// The server may have closed the socket already: report its close frame.
		select {
		case <-s.done:
			err = fmt.Errorf("socket closed: %w (write: %v)", s.err, err)
		case <-time.After(time.Second):
		}
		d.dropSessionIf(s)
		return nil, err
	}
	timer := time.NewTimer(d.requestTimeout)
	defer timer.Stop()
	for {
		m, err := d.next(ctx, s, timer.C)
		if err != nil {
			return nil, err
		}
		switch m := m.(type) {
		case *wire.Poke:
			d.count(func(st *deviceStats) { st.pokes++; d.poked = true })
			continue
		case *wire.Reset:
			d.count(func(st *deviceStats) { st.resets++; d.reset = true })
			if _, ok := msg.(*wire.Pull); ok {
				return m, nil
			}
			continue
		case *wire.Error:
			switch m.Code {
			case wire.CodeInternal:
				d.count(func(st *deviceStats) { st.internalErrors++ })
			case wire.CodeRateLimited:
				d.count(func(st *deviceStats) { st.rateLimited++ })
			}
			return nil, m
		}
		if want(m) {
			return m, nil
		}
		return nil, fmt.Errorf("unexpected %s message", m.MessageType())
	}
}

// next returns the next message of the session; what arrived before the socket ended
// is still delivered.
func (d *device) next(ctx context.Context, s *session, timeout <-chan time.Time) (wire.Message, error) {
	select {
	case m := <-s.in:
		return m, nil
	default:
	}
	select {
	case m := <-s.in:
		return m, nil
	case <-s.done:
		select {
		case m := <-s.in:
			return m, nil
		default:
		}
		d.dropSessionIf(s)
		return nil, fmt.Errorf("socket closed: %w", s.err)
	case <-timeout:
		d.count(func(s *deviceStats) { s.timeouts++ })
		d.dropSessionIf(s)
		return nil, errors.New("timeout")
	case <-ctx.Done():
		d.dropSessionIf(s)
		return nil, ctx.Err()
	}
}

func (d *device) dropSessionIf(s *session) {
	d.mu.Lock()
	if d.sess == s {
		d.sess = nil
	}
	d.mu.Unlock()
	s.ws.Close()
}

func (d *device) count(f func(*deviceStats)) {
	d.mu.Lock()
	f(&d.stats)
	d.mu.Unlock()
}

// --- push ---

// batch takes up to n unacknowledged ops, in order, marking them sent.
func (d *device) batch(n int) []jiaoliu.Op {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ops []jiaoliu.Op
	now := time.Now()
	for _, id := range d.outbox {
		if len(ops) == n {
			break
		}
		o := d.ops[id]
		o.sends++
		o.lastSent = now
		if o.sends > 1 {
			d.stats.resent++
		}
		ops = append(ops, o.op)
	}
	return ops
}

// push sends the next batch over the WebSocket; shuffle sends it out of order (ops of
// a device's batch are independent here: edits only target records the server has).
func (d *device) push(ctx context.Context, shuffle bool) bool {
	return d.pushN(ctx, 1+d.rng.IntN(40), shuffle)
}

// pushN sends up to n unacknowledged ops over the WebSocket.
func (d *device) pushN(ctx context.Context, n int, shuffle bool) bool {
	ops := d.batch(n)
	if len(ops) == 0 {
		return true
	}
	if shuffle {
		d.rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		d.count(func(s *deviceStats) { s.shuffled++ })
	}
	s, err := d.ensureSession(ctx)
	if err != nil {
		return false
	}
	d.count(func(s *deviceStats) { s.pushes++ })
	ack, err := d.pushOn(ctx, s, ops)
	if err != nil {
		return false
	}
	d.record(ops, ack, false)
	return true
}

func (d *device) pushOn(ctx context.Context, s *session, ops []jiaoliu.Op) (*wire.Ack, error) {
	batchID := "b-" + uuid.NewString()[:8]
	m, err := d.exchange(ctx, s, &wire.Push{BatchID: batchID, Ops: ops}, func(m wire.Message) bool {
		a, ok := m.(*wire.Ack)
		return ok && a.BatchID == batchID
	})
	if err != nil {
		return nil, err
	}
	return m.(*wire.Ack), nil
}

// pushHTTP sends the next batch over the HTTP fallback.
func (d *device) pushHTTP(ctx context.Context) {
	ops := d.batch(1 + d.rng.IntN(40))
	if len(ops) == 0 {
		return
	}
	d.count(func(s *deviceStats) { s.httpPushes++ })
	if ack, err := d.postPush(ctx, ops); err == nil {
		d.record(ops, ack, false)
	}
}

func (d *device) postPush(ctx context.Context, ops []jiaoliu.Op) (*wire.Ack, error) {
	m, err := d.post(ctx, d.httpURL, "/sync/push", &wire.Push{BatchID: "h-" + uuid.NewString()[:8], Ops: ops})
	if err != nil {
		return nil, err
	}
	a, ok := m.(*wire.Ack)
	if !ok {
		return nil, fmt.Errorf("push answered %s", m.MessageType())
	}
	return a, nil
}

// post sends one message over the HTTP fallback to base and returns the answer.
func (d *device) post(ctx context.Context, base, path string, msg wire.Message) (wire.Message, error) {
	data, err := wire.Encode(msg)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, d.requestTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, "POST", base+path, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+d.reg.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	m, err := wire.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("status %d: %w", resp.StatusCode, err)
	}
	if e, ok := m.(*wire.Error); ok {
		switch e.Code {
		case wire.CodeInternal:
			d.count(func(st *deviceStats) { st.internalErrors++ })
		case wire.CodeRateLimited:
			d.count(func(st *deviceStats) { st.rateLimited++ })
		}
		return nil, e
	}
	return m, nil
}

// resendAcked sends acknowledged ops again: every answer must say duplicate and
// repeat the first result.
func (d *device) resendAcked(ctx context.Context) {
	d.mu.Lock()
	var ops []jiaoliu.Op
	for i := len(d.order) - 1; i >= 0 && len(ops) < 10; i-- {
		if o := d.ops[d.order[i]]; o.ack != nil && d.rng.IntN(2) == 0 {
			ops = append(ops, o.op)
		}
	}
	d.mu.Unlock()
	if len(ops) == 0 {
		return
	}
	s, err := d.ensureSession(ctx)
	if err != nil {
		return
	}
	d.count(func(s *deviceStats) { s.dupPushes++ })
	if ack, err := d.pushOn(ctx, s, ops); err == nil {
		d.record(ops, ack, true)
	}
}

// pushConcurrently sends the same batch on the WebSocket and over HTTP at once, as a
// device does that reconnects while its first push is still being applied: the ops
// must be applied once, and both answers must agree.
func (d *device) pushConcurrently(ctx context.Context) {
	ops := d.batch(1 + d.rng.IntN(10))
	if len(ops) == 0 {
		return
	}
	s, err := d.ensureSession(ctx)
	if err != nil {
		return
	}
	d.count(func(s *deviceStats) { s.concurrentPushes++ })
	var wg sync.WaitGroup
	var httpAck *wire.Ack
	wg.Add(1)
	go func() {
		defer wg.Done()
		httpAck, _ = d.postPush(ctx, ops)
	}()
	wsAck, _ := d.pushOn(ctx, s, ops)
	wg.Wait()
	if wsAck != nil {
		d.record(ops, wsAck, false)
	}
	if httpAck != nil {
		d.record(ops, httpAck, false)
	}
	if wsAck != nil && httpAck != nil {
		// At most one of the two answers may have applied each op.
		d.mu.Lock()
		for i := range ops {
			if i < len(wsAck.Results) && i < len(httpAck.Results) && !wsAck.Results[i].Duplicate && !httpAck.Results[i].Duplicate {
				d.stats.reapplied++
			}
		}
		d.mu.Unlock()
	}
}

// record takes an ack: the first answer of each op is kept; later answers must agree
// with it; dup says every answer must be a duplicate.
func (d *device) record(ops []jiaoliu.Op, ack *wire.Ack, dup bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if len(ack.Results) != len(ops) {
		d.stats.inconsistent++
		return
	}
	acked := map[string]bool{}
	for i, res := range ack.Results {
		op := ops[i]
		o := d.ops[op.OpID]
		if res.OpID != op.OpID || o == nil {
			d.stats.inconsistent++
			continue
		}
		acked[op.OpID] = true
		if dup && !res.Duplicate {
			d.stats.reapplied++
		}
		if res.Duplicate {
			d.stats.duplicates++
		}
		if o.ack != nil {
			if !sameResult(*o.ack, res) {
				d.stats.inconsistent++
			}
			continue
		}
		r := res
		o.ack = &r
		d.stats.acked++
		switch res.Status {
		case jiaoliu.StatusApplied:
			d.stats.applied++
		case jiaoliu.StatusMerged:
			d.stats.merged++
		case jiaoliu.StatusRejected:
			d.stats.rejected++
			d.stats.rejections = append(d.stats.rejections, fmt.Sprintf("%s %s %s: %s %v", op.Entity, op.Kind, res.Code, res.Message, res.Fields))
		}
		d.stats.lostFields += len(res.Lost)
		if res.Restamped {
			d.stats.restamped++
			if _, err := hlc.Parse(res.HLC); err != nil {
				d.stats.restampNoHLC++
			} else {
				d.clock.Update(res.HLC)
			}
		}
		// The server re-stamps exactly the ops stamped more than 5 minutes ahead of its
		// clock (the same machine's: no skew); near the limit either answer is right.
		ts, _ := hlc.Parse(op.HLC)
		ahead := time.Duration(ts.Wall-o.lastSent.UnixMilli()) * time.Millisecond
		aheadAtAck := time.Duration(ts.Wall-now.UnixMilli()) * time.Millisecond
		if !res.Duplicate && ((ahead > 5*time.Minute+30*time.Second && !res.Restamped) || (aheadAtAck < 5*time.Minute-30*time.Second && res.Restamped)) {
			d.stats.restampWrong++
		}
	}
	d.outbox = slices.DeleteFunc(d.outbox, func(id string) bool { return acked[id] })
}

// sameResult compares two answers for one op, ignoring the duplicate flag.
func sameResult(a, b jiaoliu.OpResult) bool {
	a.Duplicate, b.Duplicate = false, false
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// --- pull and verify ---

// pullAll pulls pages of up to limit records until more is false.
func (d *device) pullAll(ctx context.Context, limit int) bool {
	s, err := d.ensureSession(ctx)
	if err != nil {
		return false
	}
	for ctx.Err() == nil {
		d.mu.Lock()
		if d.reset {
			d.cursor, d.replica, d.reset = "", map[string]wire.Record{}, false
		}
		cursor := d.cursor
		d.poked = false
		d.mu.Unlock()
		m, err := d.exchange(ctx, s, &wire.Pull{Cursor: cursor, Limit: limit}, func(m wire.Message) bool {
			_, ok := m.(*wire.Changes)
			return ok
		})
		if err != nil {
			return false
		}
		if _, ok := m.(*wire.Reset); ok {
			continue
		}
		ch := m.(*wire.Changes)
		d.mu.Lock()
		d.stats.pulls++
		if d.reset {
			// A reset came in between: this page is from an old cursor's scope.
			d.mu.Unlock()
			continue
		}
		for _, r := range ch.Records {
			d.replica[r.Entity+"/"+r.ID] = r
		}
		d.cursor = ch.Cursor
		d.mu.Unlock()
		if !ch.More {
			return true
		}
	}
	return false
}

// checksum computes the verify figures over the replica.
func (d *device) checksum() (int, string, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	recs := make([]wire.Record, 0, len(d.replica))
	for _, r := range d.replica {
		recs = append(recs, r)
	}
	n, sum := wire.ChecksumOf(recs)
	return n, sum, d.cursor
}

// verify compares the replica's checksum with the server's; it reports 1 for a match,
// -1 for a mismatch and 0 when the cursors differ (pull, then verify again).
func (d *device) verify(ctx context.Context) int {
	s, err := d.ensureSession(ctx)
	if err != nil {
		return 0
	}
	n, sum, cursor := d.checksum()
	if cursor == "" {
		return 0
	}
	m, err := d.exchange(ctx, s, &wire.Verify{Cursor: cursor, Count: &n, Checksum: sum}, func(m wire.Message) bool {
		_, ok := m.(*wire.Checksum)
		return ok
	})
	if err != nil {
		return 0
	}
	c := m.(*wire.Checksum)
	switch {
	case c.Cursor != cursor:
		d.count(func(s *deviceStats) { s.verifyOther++ })
		return 0
	case c.Count == n && c.Checksum == sum:
		d.count(func(s *deviceStats) { s.verifyOK++ })
		return 1
	default:
		d.count(func(s *deviceStats) { s.verifyMismatch++ })
		return -1
	}
}

// drain pushes until every op is acknowledged, or ctx ends.
func (d *device) drain(ctx context.Context) error {
	for ctx.Err() == nil {
		d.mu.Lock()
		left := len(d.outbox)
		d.mu.Unlock()
		if left == 0 {
			return nil
		}
		if !d.pushN(ctx, 200, false) {
			sleep(ctx, 100*time.Millisecond)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return fmt.Errorf("%s: %d ops never acknowledged", d.name, len(d.outbox))
}

// settle pulls to more=false and verifies until the checksums are comparable; it
// returns whether they matched.
func (d *device) settle(ctx context.Context) (bool, error) {
	for attempt := 0; ctx.Err() == nil && attempt < 20; attempt++ {
		if !d.pullAll(ctx, 500) {
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		switch d.verify(ctx) {
		case 1:
			return true, nil
		case -1:
			return false, nil
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return false, fmt.Errorf("%s: could not settle", d.name)
}

// pullFresh pulls everything the device's user may read from the start, over HTTP
// from base (the server itself, not through the proxy): the server's view.
func (d *device) pullFresh(ctx context.Context, base string) (map[string]wire.Record, error) {
	out := map[string]wire.Record{}
	cursor := ""
	for ctx.Err() == nil {
		m, err := d.post(ctx, base, "/sync/pull", &wire.Pull{Cursor: cursor, Limit: 500})
		if err != nil {
			return nil, err
		}
		ch, ok := m.(*wire.Changes)
		if !ok {
			return nil, fmt.Errorf("fresh pull answered %s", m.MessageType())
		}
		for _, r := range ch.Records {
			out[r.Entity+"/"+r.ID] = r
		}
		if !ch.More {
			return out, nil
		}
		cursor = ch.Cursor
	}
	return nil, ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
