package syncserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
	"github.com/jiaoliu/jiaoliu/sync/hub"
	syncserver "github.com/jiaoliu/jiaoliu/sync/server"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(syncserver.HoldConnsEnv); url != "" {
		// A child of TestIdleConnectionFootprint: hold the sockets, start no database.
		os.Exit(holdConns(url))
	}
	os.Exit(pgtest.Run(m, postgres.Migrate, postgres.CheckScopeCopies))
}

// holdConns is the device side of TestIdleConnectionFootprint, in a process of its own
// so that only the server's memory is measured: it opens the sockets of devices
// dev-0 … dev-(n-1) (tokens tok-0 …), says hello on each, prints "ready" and waits for
// its standard input to close.
func holdConns(url string) int {
	n, err := strconv.Atoi(os.Getenv(syncserver.HoldConnsEnv + "_N"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "hold: bad count:", err)
		return 1
	}
	d := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256, HandshakeTimeout: 10 * time.Second}
	conns := make([]*websocket.Conn, 0, n)
	for i := range n {
		ws, _, err := d.Dial(url, nil)
		if err != nil {
			fmt.Fprintf(os.Stderr, "hold: dial %d: %v\n", i, err)
			return 1
		}
		hello := map[string]any{"type": "hello", "protocol": 1, "deviceId": fmt.Sprintf("dev-%d", i), "token": fmt.Sprintf("tok-%d", i), "schemaVersion": 1}
		if err := ws.WriteJSON(hello); err != nil {
			fmt.Fprintf(os.Stderr, "hold: hello %d: %v\n", i, err)
			return 1
		}
		if _, data, err := ws.ReadMessage(); err != nil || !bytes.Contains(data, []byte(`"welcome"`)) {
			fmt.Fprintf(os.Stderr, "hold: welcome %d: %s %v\n", i, data, err)
			return 1
		}
		conns = append(conns, ws)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, ws := range conns {
		ws.Close()
	}
	return 0
}

func newID() string { return uuid.NewString() }

func sys() context.Context {
	return jiaoliu.NewContextWithActor(context.Background(), jiaoliu.SystemActor)
}

// device is a registered device and its token.
type device struct {
	id, token, userID string
}

// env is a whole sync server on a fresh database: one district, two schools, a
// teacher (urban) on an exchange to the rural school, another teacher (rural), the
// rural school's admin, and a device for each of them.
type env struct {
	t                        *testing.T
	db                       *sqlx.DB
	store                    *postgres.Store
	hub                      *hub.Hub
	srv                      *syncserver.Server
	ts                       *httptest.Server
	district, urban, rural   string
	teacher, other, exchange string
	teacherDev, otherDev     device
	adminDev                 device
}

func testLogger() *slog.Logger {
	if os.Getenv("SYNC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newEnv(t *testing.T, configure ...func(*syncserver.Server)) *env {
	t.Helper()
	dsn := pgtest.NewDSN(t)
	db, err := sqlx.Connect("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := testLogger()
	e := &env{t: t, db: db, store: postgres.NewStore(db, hlc.NewClock("server"), log), hub: hub.New(log),
		district: newID(), urban: newID(), rural: newID(), teacher: newID(), other: newID(), exchange: newID()}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan error, 1)
	go func() { listening <- e.hub.Listen(ctx, dsn) }()
	t.Cleanup(func() { cancel(); <-listening })
	select {
	case <-e.hub.Ready():
	case err := <-listening:
		t.Fatalf("hub: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("hub not listening")
	}
	e.apply(
		upsert("district", e.district, map[string]any{"name": "新密市"}),
		upsert("school", e.urban, map[string]any{"districtId": e.district, "name": "双河五小", "locality": "URBAN", "tier": "QUALITY"}),
		upsert("school", e.rural, map[string]any{"districtId": e.district, "name": "曹河教学点", "locality": "TEACHING_POINT", "tier": "WEAK"}),
		upsert("teacher", e.teacher, map[string]any{"name": "王芳", "gender": "FEMALE", "birthDate": "1985-03-02", "schoolId": e.urban, "joinedSchoolOn": "2015-09-01"}),
		upsert("teacher", e.other, map[string]any{"name": "李强", "gender": "MALE", "birthDate": "1980-01-02", "schoolId": e.rural, "joinedSchoolOn": "2010-09-01"}),
		upsert("exchange", e.exchange, map[string]any{"teacherId": e.teacher, "sendingSchoolId": e.urban, "receivingSchoolId": e.rural,
			"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"}),
	)
	e.teacherDev = e.newDevice("wangfang", jiaoliu.RoleTeacher, "", e.teacher)
	e.otherDev = e.newDevice("liqiang", jiaoliu.RoleTeacher, "", e.other)
	e.adminDev = e.newDevice("caohe-admin", jiaoliu.RoleSchoolAdmin, e.rural, "")

	e.srv = syncserver.New(e.store, e.store, e.hub, log)
	for _, f := range configure {
		f(e.srv)
	}
	mux := http.NewServeMux()
	e.srv.Routes(mux)
	e.ts = httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		e.ts.Close()
	})
	return e
}

func (e *env) apply(ops ...jiaoliu.Op) []jiaoliu.OpResult {
	e.t.Helper()
	res, err := e.store.Apply(sys(), jiaoliu.Batch{Ops: ops, Atomic: true})
	if err != nil {
		e.t.Fatalf("apply: %v", err)
	}
	return res
}

// newDevice creates a user (directly: its password is never used) and registers a
// device for it through the store.
func (e *env) newDevice(username string, role jiaoliu.Role, school, teacher string) device {
	e.t.Helper()
	userID := newID()
	var schoolID, districtID any
	if school != "" {
		schoolID = school
	}
	if role != jiaoliu.RoleTeacher {
		districtID = e.district
	}
	var teacherID any
	if teacher != "" {
		teacherID = teacher
	}
	e.db.MustExec(`INSERT INTO users (id, username, password_hash, role, district_id, school_id, teacher_id) VALUES ($1, $2, 'x', $3, $4, $5, $6)`,
		userID, username, string(role), districtID, schoolID, teacherID)
	d, token, err := e.store.RegisterDevice(sys(), username+"'s tablet", userID)
	if err != nil {
		e.t.Fatal(err)
	}
	return device{id: d.ID, token: token, userID: userID}
}

var tick int64

func nextHLC() string {
	tick++
	return hlc.Timestamp{Wall: time.Now().UnixMilli(), Counter: uint16(tick), Node: "test"}.String()
}

func upsert(entity, id string, fields map[string]any) jiaoliu.Op {
	return jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: entity, ID: id, HLC: nextHLC(), Fields: fields}
}

func (e *env) lesson(date string, period int) map[string]any {
	return map[string]any{"exchangeId": e.exchange, "date": date, "period": period, "subject": "数学", "kind": "DEMONSTRATION"}
}

// client is a device's end of a socket. A goroutine reads it into a channel, since a
// timed-out read breaks a gorilla connection.
type client struct {
	t     *testing.T
	ws    *websocket.Conn
	in    chan wire.Message
	err   error // the read error, set before in is closed
	pokes int
}

func (e *env) dialRaw(header http.Header) *websocket.Conn {
	e.t.Helper()
	url := "ws" + strings.TrimPrefix(e.ts.URL, "http") + "/sync"
	ws, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		e.t.Fatalf("dial: %v (%v)", err, resp)
	}
	e.t.Cleanup(func() { ws.Close() })
	return ws
}

func (e *env) dial(header http.Header) *client {
	e.t.Helper()
	c := &client{t: e.t, ws: e.dialRaw(header), in: make(chan wire.Message, 1000)}
	go func() {
		defer close(c.in)
		for {
			_, data, err := c.ws.ReadMessage()
			if err != nil {
				c.err = err
				return
			}
			m, err := wire.Decode(data)
			if err != nil {
				c.err = fmt.Errorf("server sent %s: %w", data, err)
				return
			}
			c.in <- m
		}
	}()
	return c
}

// connect dials and says hello for d, returning the welcome.
func (e *env) connect(d device) (*client, *wire.Welcome) {
	e.t.Helper()
	c := e.dial(nil)
	c.send(map[string]any{"type": "hello", "protocol": 1, "deviceId": d.id, "token": d.token, "schemaVersion": 1})
	return c, c.expect(wire.TypeWelcome).(*wire.Welcome)
}

func (c *client) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) sendRaw(s string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

var errTimeout = errors.New("timeout")

// next returns the next message within d, errTimeout, or the socket's error.
func (c *client) next(d time.Duration) (wire.Message, error) {
	select {
	case m, ok := <-c.in:
		if !ok {
			return nil, c.err
		}
		return m, nil
	case <-time.After(d):
		return nil, errTimeout
	}
}

// expect reads messages until one of type typ arrives, counting and skipping pokes.
func (c *client) expect(typ string) wire.Message {
	c.t.Helper()
	for {
		m, err := c.next(10 * time.Second)
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", typ, err)
		}
		if m.MessageType() == typ {
			return m
		}
		if m.MessageType() == wire.TypePoke {
			c.pokes++
			continue
		}
		c.t.Fatalf("got %s %+v, want %s", m.MessageType(), m, typ)
	}
}

// expectError reads until an error message and checks its code.
func (c *client) expectError(code string) *wire.Error {
	c.t.Helper()
	e := c.expect(wire.TypeError).(*wire.Error)
	if e.Code != code {
		c.t.Fatalf("error %+v, want code %s", e, code)
	}
	return e
}

// expectClose reads until the socket closes and checks the close code.
func (c *client) expectClose(code int) *websocket.CloseError {
	c.t.Helper()
	for {
		_, err := c.next(10 * time.Second)
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("socket ended with %v, want close %d", err, code)
		}
		if ce.Code != code {
			c.t.Fatalf("close %d %q, want %d", ce.Code, ce.Text, code)
		}
		return ce
	}
}

// quiet checks that nothing but pokes arrives within d, and counts the pokes.
func (c *client) quiet(d time.Duration) (pokes int) {
	c.t.Helper()
	end := time.Now().Add(d)
	for {
		m, err := c.next(time.Until(end))
		if errors.Is(err, errTimeout) {
			return pokes
		} else if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if m.MessageType() != wire.TypePoke {
			c.t.Fatalf("unexpected %s %+v", m.MessageType(), m)
		}
		pokes++
	}
}

func (c *client) push(batch string, ops ...jiaoliu.Op) *wire.Ack {
	c.t.Helper()
	c.send(map[string]any{"type": "push", "batchId": batch, "ops": ops})
	ack := c.expect(wire.TypeAck).(*wire.Ack)
	if ack.BatchID != batch || len(ack.Results) != len(ops) {
		c.t.Fatalf("ack %+v for batch %s of %d ops", ack, batch, len(ops))
	}
	return ack
}

// replica is the records a device pulled.
type replica struct {
	records map[string]wire.Record
	cursor  string
}

func (c *client) pullAll(r *replica) {
	c.t.Helper()
	if r.records == nil {
		r.records = map[string]wire.Record{}
	}
	for i := 0; ; i++ {
		c.send(map[string]any{"type": "pull", "cursor": r.cursor, "limit": 3})
		m := c.expect(wire.TypeChanges).(*wire.Changes)
		for _, rec := range m.Records {
			r.records[rec.Entity+"/"+rec.ID] = rec
		}
		r.cursor = m.Cursor
		if !m.More {
			return
		}
		if i > 1000 {
			c.t.Fatal("pull never ends")
		}
	}
}

func (r *replica) checksum() (int, string) {
	recs := make([]wire.Record, 0, len(r.records))
	for _, rec := range r.records {
		recs = append(recs, rec)
	}
	return wire.ChecksumOf(recs)
}

func TestSessionPushPullVerify(t *testing.T) {
	e := newEnv(t)
	c, welcome := e.connect(e.teacherDev)
	if welcome.MaxBatch != 500 || welcome.MaxMessageBytes != 1048576 || welcome.SchemaVersion != 1 || welcome.MinSchemaVersion != 1 {
		t.Fatalf("welcome=%+v", welcome)
	}
	if d := time.Since(time.UnixMilli(welcome.ServerTime)); d < 0 || d > time.Minute {
		t.Fatalf("serverTime off by %v", d)
	}
	id := newID()
	ack := c.push("b-1", upsert("lesson", id, e.lesson("2026-10-12", 3)))
	if r := ack.Results[0]; r.Status != jiaoliu.StatusApplied || r.Version == "" {
		t.Fatalf("result=%+v", r)
	}
	var r replica
	c.pullAll(&r)
	rec, ok := r.records["lesson/"+id]
	if !ok {
		t.Fatalf("the device's own lesson is not pulled: %v", r.records)
	}
	if rec.Version != ack.Results[0].Version || rec.Fields["date"] != "2026-10-12" || rec.Fields["period"] != json.Number("3") ||
		rec.Fields["deviceId"] != e.teacherDev.id || rec.Deleted {
		t.Fatalf("record=%+v", rec)
	}
	if _, ok := r.records["exchange/"+e.exchange]; !ok {
		t.Fatal("the teacher's exchange is not pulled")
	}
	n, sum := r.checksum()
	c.send(map[string]any{"type": "verify", "cursor": r.cursor, "count": n, "checksum": sum})
	cs := c.expect(wire.TypeChecksum).(*wire.Checksum)
	if cs.Cursor != r.cursor || cs.Count != n || cs.Checksum != sum {
		t.Fatalf("checksum=%+v, device %d %s", cs, n, sum)
	}
	var dev struct {
		Sync   *time.Time `db:"last_sync_at"`
		Verify *time.Time `db:"last_verify_at"`
		OK     *bool      `db:"last_verify_ok"`
	}
	if err := e.db.Get(&dev, `SELECT last_sync_at, last_verify_at, last_verify_ok FROM devices WHERE id = $1`, e.teacherDev.id); err != nil {
		t.Fatal(err)
	}
	if dev.Sync == nil || dev.Verify == nil || dev.OK == nil || !*dev.OK {
		t.Fatalf("device bookkeeping: %+v", dev)
	}
	// A replica that lost a record no longer matches, and the server records it.
	delete(r.records, "lesson/"+id)
	n, sum = r.checksum()
	c.send(map[string]any{"type": "verify", "cursor": r.cursor, "count": n, "checksum": sum})
	if cs := c.expect(wire.TypeChecksum).(*wire.Checksum); cs.Count == n {
		t.Fatalf("checksum=%+v matches a damaged replica", cs)
	}
	if err := e.db.Get(&dev, `SELECT last_sync_at, last_verify_at, last_verify_ok FROM devices WHERE id = $1`, e.teacherDev.id); err != nil {
		t.Fatal(err)
	}
	if dev.OK == nil || *dev.OK {
		t.Fatalf("a mismatch is recorded as %v", dev.OK)
	}
	c.send(map[string]any{"type": "ping"})
	c.expect(wire.TypePong)
}

func TestDuplicatePushMergesAndRejections(t *testing.T) {
	e := newEnv(t)
	c, _ := e.connect(e.teacherDev)
	op := upsert("lesson", newID(), e.lesson("2026-10-12", 3))
	first := c.push("b-1", op)
	again := c.push("b-1", op)
	if r := again.Results[0]; !r.Duplicate || r.Version != first.Results[0].Version || r.Status != jiaoliu.StatusApplied {
		t.Fatalf("resend=%+v, want the first result with duplicate", r)
	}

	att := newID()
	c.push("b-2", upsert("attendance", att, map[string]any{"exchangeId": e.exchange, "date": "2026-10-12", "status": "PRESENT"}))
	twin := newID()
	bad := upsert("lesson", newID(), e.lesson("2026-10-13", 13))
	orphan := upsert("lesson", newID(), map[string]any{"exchangeId": newID(), "date": "2026-10-13", "period": 1, "subject": "语文", "kind": "REGULAR"})
	alien := upsert("spaceship", newID(), map[string]any{"warp": 9})
	ack := c.push("b-3",
		upsert("attendance", twin, map[string]any{"exchangeId": e.exchange, "date": "2026-10-12", "status": "SICK"}),
		bad, orphan, alien,
		upsert("lesson", newID(), e.lesson("2026-10-13", 2)))
	r := ack.Results
	if r[0].Status != jiaoliu.StatusMerged || r[0].CanonicalID != att {
		t.Fatalf("twin attendance=%+v, want merged into %s", r[0], att)
	}
	if r[1].Code != jiaoliu.RejectValidation || r[1].Fields["period"] != "must be 1..12" {
		t.Fatalf("bad lesson=%+v", r[1])
	}
	if r[2].Code != jiaoliu.RejectMissingRef || r[3].Code != jiaoliu.RejectUnknownEntity {
		t.Fatalf("orphan=%+v alien=%+v", r[2], r[3])
	}
	if r[4].Status != jiaoliu.StatusApplied {
		t.Fatalf("the op after the rejections=%+v", r[4])
	}
	var n int
	if err := e.db.Get(&n, `SELECT count(*) FROM sync_rejections WHERE device_id = $1`, e.teacherDev.id); err != nil || n != 3 {
		t.Fatalf("stored rejections=%d err=%v, want 3", n, err)
	}
}

func TestPokeReachesReadersOnly(t *testing.T) {
	e := newEnv(t)
	teacher, _ := e.connect(e.teacherDev)
	admin, _ := e.connect(e.adminDev)
	other, _ := e.connect(e.otherDev)
	// Let the pokes of connecting settle.
	time.Sleep(100 * time.Millisecond)
	admin.quiet(50 * time.Millisecond)
	other.quiet(50 * time.Millisecond)

	teacher.push("b-1", upsert("lesson", newID(), e.lesson("2026-10-12", 3)))
	poke := admin.expect(wire.TypePoke).(*wire.Poke)
	_ = poke
	if n := other.quiet(300 * time.Millisecond); n != 0 {
		t.Fatalf("a teacher who cannot read the lesson got %d pokes", n)
	}
	// The admin pulls and gets the lesson; the poke's cursor is the admin's own.
	var r replica
	admin.pullAll(&r)
	found := false
	for k := range r.records {
		found = found || strings.HasPrefix(k, "lesson/")
	}
	if !found {
		t.Fatal("the poked admin does not pull the lesson")
	}
	// Pokes are coalesced: many changes, few pokes.
	for i := 0; i < 5; i++ {
		e.apply(upsert("lesson", newID(), e.lesson("2026-10-20", i+1)))
	}
	time.Sleep(200 * time.Millisecond)
	if n := admin.quiet(300 * time.Millisecond); n < 1 || n > 5 {
		t.Fatalf("pokes=%d for 5 changes", n)
	}
}

func TestResetOnScopeChange(t *testing.T) {
	e := newEnv(t)
	c, _ := e.connect(e.teacherDev)
	var r replica
	c.pullAll(&r)
	third := newID()
	e.apply(upsert("school", third, map[string]any{"districtId": e.district, "name": "大隗一中", "locality": "TOWN", "tier": "GENERAL"}))
	e.apply(upsert("exchange", newID(), map[string]any{"teacherId": e.teacher, "sendingSchoolId": e.urban, "receivingSchoolId": third,
		"mode": "SECONDMENT", "academicYear": "2027-2028", "plannedStart": "2027-09-01", "plannedEnd": "2028-07-15", "status": "APPROVED"}))
	if reset := c.expect(wire.TypeReset).(*wire.Reset); reset.Reason != wire.ReasonScopeChanged {
		t.Fatalf("reset=%+v", reset)
	}
	// The old cursor is refused with a reset too; from the start, the new school comes.
	c.send(map[string]any{"type": "pull", "cursor": r.cursor})
	c.expect(wire.TypeReset)
	fresh := replica{}
	c.pullAll(&fresh)
	if _, ok := fresh.records["school/"+third]; !ok {
		t.Fatal("the new school is not pulled after the reset")
	}
	// A device that reconnects with a cursor from before the change gets a reset at once.
	c2, _ := e.connect(e.teacherDev)
	_ = c2
	c3 := e.dial(nil)
	c3.send(map[string]any{"type": "hello", "protocol": 1, "deviceId": e.teacherDev.id, "token": e.teacherDev.token, "schemaVersion": 1, "cursor": r.cursor})
	c3.expect(wire.TypeWelcome)
	c3.expect(wire.TypeReset)
}

// TestScopeChangesInQuickSuccession checks that a scope change that comes while the
// scope is being recomputed, or within the refresh interval, is not lost: the session
// ends up poked for both new schools.
func TestScopeChangesInQuickSuccession(t *testing.T) {
	e := newEnv(t)
	c, _ := e.connect(e.teacherDev)
	schools := []string{newID(), newID()}
	for i, school := range schools {
		e.apply(upsert("school", school, map[string]any{"districtId": e.district, "name": fmt.Sprintf("学校 %d", i), "locality": "TOWN", "tier": "GENERAL"}))
		e.apply(upsert("exchange", newID(), map[string]any{"teacherId": e.teacher, "sendingSchoolId": e.urban, "receivingSchoolId": school,
			"mode": "SECONDMENT", "academicYear": fmt.Sprintf("%d-%d", 2027+i, 2028+i), "plannedStart": fmt.Sprintf("%d-09-01", 2027+i),
			"plannedEnd": fmt.Sprintf("%d-07-15", 2028+i), "status": "APPROVED"}))
	}
	c.expect(wire.TypeReset)
	// Let the refreshes end (a trailing one comes at most a second later).
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		if m, err := c.next(time.Until(end)); err == nil && m.MessageType() != wire.TypePoke && m.MessageType() != wire.TypeReset {
			t.Fatalf("unexpected %+v", m)
		}
	}
	for _, school := range schools {
		e.apply(upsert("school", school, map[string]any{"name": "改名 " + school[:4]}))
		c.expect(wire.TypePoke)
	}
}

func TestHelloCursorPokes(t *testing.T) {
	e := newEnv(t)
	c, _ := e.connect(e.teacherDev)
	var r replica
	c.pullAll(&r)
	c.ws.Close()
	e.apply(upsert("lesson", newID(), e.lesson("2026-10-12", 3)))
	c2 := e.dial(nil)
	c2.send(map[string]any{"type": "hello", "protocol": 1, "deviceId": e.teacherDev.id, "token": e.teacherDev.token, "schemaVersion": 1, "cursor": r.cursor})
	c2.expect(wire.TypeWelcome)
	if p := c2.expect(wire.TypePoke).(*wire.Poke); p.Cursor != r.cursor {
		t.Fatalf("poke cursor is not the device's")
	}
}

func TestBadMessagesKeepTheSession(t *testing.T) {
	e := newEnv(t)
	c, _ := e.connect(e.teacherDev)
	bystander, _ := e.connect(e.adminDev)
	for _, msg := range []string{`{"type":`, `{"type":"dance"}`, `[]`, `{"type":"push","batchId":"b"}`, `{"type":"welcome","serverTime":1,"schemaVersion":1,"minSchemaVersion":1,"maxBatch":1,"maxMessageBytes":1}`} {
		c.sendRaw(msg)
		c.expectError(wire.CodeBadMessage)
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	c.expectError(wire.CodeBadMessage)
	c.send(map[string]any{"type": "ping"})
	c.expect(wire.TypePong)
	bystander.send(map[string]any{"type": "ping"})
	bystander.expect(wire.TypePong)
}

func TestTooLargeClosesWith1009(t *testing.T) {
	e := newEnv(t, func(s *syncserver.Server) { s.MaxMessageBytes = 4096 })
	c, welcome := e.connect(e.teacherDev)
	if welcome.MaxMessageBytes != 4096 {
		t.Fatalf("welcome=%+v", welcome)
	}
	c.sendRaw(`{"type":"ping","pad":"` + strings.Repeat("x", 5000) + `"}`)
	c.expectError(wire.CodeTooLarge)
	c.expectClose(websocket.CloseMessageTooBig)
}

func TestBatchTooLarge(t *testing.T) {
	e := newEnv(t, func(s *syncserver.Server) { s.MaxBatch = 2 })
	c, _ := e.connect(e.teacherDev)
	c.send(map[string]any{"type": "push", "batchId": "big", "ops": []jiaoliu.Op{
		upsert("lesson", newID(), e.lesson("2026-10-12", 1)), upsert("lesson", newID(), e.lesson("2026-10-12", 2)), upsert("lesson", newID(), e.lesson("2026-10-12", 3))}})
	if err := c.expectError(wire.CodeBatchTooLarge); err.BatchID != "big" {
		t.Fatalf("error=%+v", err)
	}
	var n int
	if err := e.db.Get(&n, `SELECT count(*) FROM lessons`); err != nil || n != 0 {
		t.Fatalf("lessons=%d err=%v, want none written", n, err)
	}
}

func TestHelloRefusals(t *testing.T) {
	e := newEnv(t, func(s *syncserver.Server) { s.Schema.MinVersion, s.Schema.Version = 2, 2 })
	d := e.teacherDev
	for _, tc := range []struct {
		name  string
		hello map[string]any
		code  string
	}{
		{"unknown token", map[string]any{"protocol": 1, "deviceId": d.id, "token": "dev_nope", "schemaVersion": 2}, wire.CodeUnauthorized},
		{"no token", map[string]any{"protocol": 1, "deviceId": d.id, "schemaVersion": 2}, wire.CodeUnauthorized},
		{"another device", map[string]any{"protocol": 1, "deviceId": e.otherDev.id, "token": d.token, "schemaVersion": 2}, wire.CodeUnauthorized},
		{"protocol", map[string]any{"protocol": 2, "deviceId": d.id, "token": d.token, "schemaVersion": 2}, wire.CodeProtocolVersion},
		{"schema", map[string]any{"protocol": 1, "deviceId": d.id, "token": d.token, "schemaVersion": 1}, wire.CodeSchemaTooOld},
		{"missing field", map[string]any{"protocol": 1, "token": d.token, "schemaVersion": 2}, wire.CodeBadMessage},
		{"not hello", map[string]any{"type": "ping"}, wire.CodeBadMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial(nil)
			c.t = t
			msg := map[string]any{"type": "hello"}
			for k, v := range tc.hello {
				msg[k] = v
			}
			c.send(msg)
			c.expectError(tc.code)
			c.expectClose(websocket.ClosePolicyViolation)
		})
	}
	t.Run("token in the header", func(t *testing.T) {
		c := e.dial(http.Header{"Authorization": {"Bearer " + d.token}})
		c.t = t
		c.send(map[string]any{"type": "hello", "protocol": 1, "deviceId": d.id, "schemaVersion": 2})
		c.expect(wire.TypeWelcome)
	})
}

func TestRevokedTokenIsRefused(t *testing.T) {
	e := newEnv(t)
	c, _ := e.connect(e.teacherDev)
	idle, _ := e.connect(e.teacherDev)
	if _, err := e.store.RevokeDevice(sys(), e.teacherDev.id); err != nil {
		t.Fatal(err)
	}
	// The next message is refused — unless the revocation's notification closed this
	// socket first (it is idle too): then the ping is never sent, and the refusal and
	// the close are there all the same.
	if err := c.ws.WriteJSON(map[string]any{"type": "ping"}); err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		t.Fatalf("send: %v", err)
	}
	c.expectError(wire.CodeUnauthorized)
	c.expectClose(websocket.ClosePolicyViolation)
	// An idle socket is closed by the revocation's notification.
	idle.expectError(wire.CodeUnauthorized)
	idle.expectClose(websocket.ClosePolicyViolation)
}

func TestRateLimited(t *testing.T) {
	e := newEnv(t, func(s *syncserver.Server) { s.RateLimit, s.RateBurst = 0.001, 3 })
	c, _ := e.connect(e.teacherDev)
	for i := 0; i < 3; i++ {
		c.send(map[string]any{"type": "ping"})
		c.expect(wire.TypePong)
	}
	c.send(map[string]any{"type": "ping"})
	c.expectError(wire.CodeRateLimited)
	// Another device is not affected.
	a, _ := e.connect(e.adminDev)
	a.send(map[string]any{"type": "ping"})
	a.expect(wire.TypePong)
}

func TestShutdownClosesSockets(t *testing.T) {
	e := newEnv(t)
	c, _ := e.connect(e.teacherDev)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	ce := c.expectClose(websocket.CloseGoingAway)
	if ce.Text != syncserver.ShutdownReason {
		t.Fatalf("close reason %q", ce.Text)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := e.srv.Conns(); n != 0 {
		t.Fatalf("%d sockets left", n)
	}
}

func TestSchemaConversion(t *testing.T) {
	e := newEnv(t, func(s *syncserver.Server) {
		s.Schema.Version = 2
		s.Schema.Upgrades[1] = func(op *jiaoliu.Op) error {
			if _, ok := op.Fields["legacyRating"]; ok {
				return fmt.Errorf("legacyRating has no equivalent: %w", syncserver.ErrUnconvertible)
			}
			if v, ok := op.Fields["lessonKind"]; ok {
				op.Fields["kind"] = v
				delete(op.Fields, "lessonKind")
			}
			return nil
		}
	})
	c := e.dial(nil)
	c.send(map[string]any{"type": "hello", "protocol": 1, "deviceId": e.teacherDev.id, "token": e.teacherDev.token, "schemaVersion": 1})
	if w := c.expect(wire.TypeWelcome).(*wire.Welcome); w.SchemaVersion != 2 || w.MinSchemaVersion != 1 {
		t.Fatalf("welcome=%+v", w)
	}
	old := e.lesson("2026-10-12", 1)
	old["lessonKind"] = old["kind"]
	delete(old, "kind")
	lost := e.lesson("2026-10-12", 2)
	lost["legacyRating"] = 4
	unconvertible := upsert("lesson", newID(), lost)
	ack := c.push("b-1", upsert("lesson", newID(), old), unconvertible, upsert("lesson", newID(), e.lesson("2026-10-12", 3)))
	if ack.Results[0].Status != jiaoliu.StatusApplied || ack.Results[2].Status != jiaoliu.StatusApplied {
		t.Fatalf("results=%+v", ack.Results)
	}
	if r := ack.Results[1]; r.Code != jiaoliu.RejectSchemaMismatch || r.OpID != unconvertible.OpID {
		t.Fatalf("unconvertible=%+v", r)
	}
	var stored []byte
	if err := e.db.Get(&stored, `SELECT op FROM sync_rejections WHERE op_id = $1 AND code = 'schema_mismatch'`, unconvertible.OpID); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(stored, []byte("legacyRating")) {
		t.Fatalf("stored op %s is not the op as sent", stored)
	}
	again := c.push("b-1", unconvertible)
	if !again.Results[0].Duplicate {
		t.Fatalf("resend=%+v", again.Results[0])
	}
}

func TestSlowReaderIsDisconnected(t *testing.T) {
	e := newEnv(t, func(s *syncserver.Server) { s.SendQueue, s.RateLimit = 2, 0 })
	var ops []jiaoliu.Op
	for i := 0; i < 80; i++ {
		f := e.lesson(fmt.Sprintf("2026-11-%02d", 1+i/12), 1+i%12)
		f["notes"] = strings.Repeat("笔记", 5000)
		ops = append(ops, upsert("lesson", newID(), f))
	}
	e.apply(ops...)
	ws := e.dialRaw(nil)
	if err := ws.WriteJSON(map[string]any{"type": "hello", "protocol": 1, "deviceId": e.teacherDev.id, "token": e.teacherDev.token, "schemaVersion": 1}); err != nil {
		t.Fatal(err)
	}
	// Ask for far more than the socket buffers hold, and read nothing.
	for i := 0; i < 200; i++ {
		if err := ws.WriteJSON(map[string]any{"type": "pull"}); err != nil {
			break
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for e.srv.Conns() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slow reader is still connected")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// post sends body to path with the device's token and decodes the answer.
func (e *env) post(path, token string, body any) (int, wire.Message) {
	e.t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+path, bytes.NewReader(b))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	m, err := wire.Decode(data)
	if err != nil {
		e.t.Fatalf("%s answered %d %s: %v", path, resp.StatusCode, data, err)
	}
	return resp.StatusCode, m
}

func TestHTTPFallback(t *testing.T) {
	e := newEnv(t, func(s *syncserver.Server) { s.MaxMessageBytes = 64 << 10 })
	tok := e.teacherDev.token
	id := newID()
	status, m := e.post("/sync/push", tok, map[string]any{"type": "push", "batchId": "h-1", "ops": []jiaoliu.Op{upsert("lesson", id, e.lesson("2026-10-12", 3))}})
	if ack, ok := m.(*wire.Ack); status != 200 || !ok || ack.Results[0].Status != jiaoliu.StatusApplied {
		t.Fatalf("push: %d %+v", status, m)
	}
	records := map[string]wire.Record{}
	cursor := ""
	for more := true; more; {
		status, m = e.post("/sync/pull", tok, map[string]any{"type": "pull", "cursor": cursor, "limit": 2})
		ch, ok := m.(*wire.Changes)
		if status != 200 || !ok {
			t.Fatalf("pull: %d %+v", status, m)
		}
		for _, r := range ch.Records {
			records[r.Entity+"/"+r.ID] = r
		}
		cursor, more = ch.Cursor, ch.More
	}
	if _, ok := records["lesson/"+id]; !ok {
		t.Fatal("the pushed lesson is not pulled over HTTP")
	}
	status, m = e.post("/sync/verify", tok, map[string]any{"type": "verify", "cursor": cursor})
	if cs, ok := m.(*wire.Checksum); status != 200 || !ok || cs.Cursor != cursor {
		t.Fatalf("verify: %d %+v", status, m)
	}
	for _, tc := range []struct {
		name, path, token string
		body              any
		status            int
		code              string
	}{
		{"no token", "/sync/pull", "", map[string]any{"type": "pull"}, 401, wire.CodeUnauthorized},
		{"bad token", "/sync/pull", "dev_x", map[string]any{"type": "pull"}, 401, wire.CodeUnauthorized},
		{"wrong type", "/sync/pull", tok, map[string]any{"type": "ping"}, 400, wire.CodeBadMessage},
		{"malformed", "/sync/push", tok, `{"type":"push"`, 400, wire.CodeBadMessage},
		{"too large", "/sync/push", tok, `{"type":"push","pad":"` + strings.Repeat("x", 70<<10) + `"}`, 413, wire.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, m := e.post(tc.path, tc.token, tc.body)
			if we, ok := m.(*wire.Error); status != tc.status || !ok || we.Code != tc.code {
				t.Fatalf("%d %+v, want %d %s", status, m, tc.status, tc.code)
			}
		})
	}
	// A cursor from before a scope change answers a reset.
	e.apply(upsert("exchange", newID(), map[string]any{"teacherId": e.teacher, "sendingSchoolId": e.urban, "receivingSchoolId": e.rural,
		"mode": "SECONDMENT", "academicYear": "2027-2028", "plannedStart": "2027-09-01", "plannedEnd": "2028-07-15", "status": "APPROVED"}))
	third := newID()
	e.apply(upsert("school", third, map[string]any{"districtId": e.district, "name": "大隗一中", "locality": "TOWN", "tier": "GENERAL"}),
		upsert("exchange", newID(), map[string]any{"teacherId": e.teacher, "sendingSchoolId": e.urban, "receivingSchoolId": third,
			"mode": "SECONDMENT", "academicYear": "2028-2029", "plannedStart": "2028-09-01", "plannedEnd": "2029-07-15", "status": "APPROVED"}))
	if status, m := e.post("/sync/pull", tok, map[string]any{"type": "pull", "cursor": cursor}); status != 200 || m.MessageType() != wire.TypeReset {
		t.Fatalf("pull with a stale cursor: %d %+v", status, m)
	}
	if _, err := e.store.RevokeDevice(sys(), e.teacherDev.id); err != nil {
		t.Fatal(err)
	}
	if status, _ := e.post("/sync/pull", tok, map[string]any{"type": "pull"}); status != 401 {
		t.Fatalf("revoked token: %d", status)
	}
}
