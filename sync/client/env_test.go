package client

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
	"github.com/jiaoliu/jiaoliu/sync/hub"
	syncserver "github.com/jiaoliu/jiaoliu/sync/server"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, postgres.Migrate, postgres.CheckScopeCopies)) }

func sys() context.Context {
	return jiaoliu.NewContextWithActor(context.Background(), jiaoliu.SystemActor)
}

// testLogger logs to stderr with SYNC_TEST_LOG set, and nowhere otherwise.
func testLogger() *slog.Logger {
	if os.Getenv("SYNC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// env is a real sync server on a fresh PostgreSQL database: one district; an urban
// and a rural school; teacher A (urban) on exchange E1 to the rural school, teacher B
// (urban) on exchange E2 to the rural school; the rural school's admin.
type env struct {
	t        *testing.T
	dsn      string
	db       *sqlx.DB
	store    *postgres.Store
	hub      *hub.Hub
	srv      *syncserver.Server
	ts       *httptest.Server
	district string
	urban    string
	rural    string
	teacherA string
	teacherB string
	e1, e2   string
	userA    *jiaoliu.User
	userB    *jiaoliu.User
	admin    *jiaoliu.User
	year     int // of the dates the scenario writes (e.date)
}

// date returns a day of October of the scenario's year.
func (e *env) date(day int) string {
	y := e.year
	if y == 0 {
		y = 2026
	}
	return fmt.Sprintf("%d-10-%02d", y, day)
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
	e := &env{t: t, dsn: dsn, db: db, store: postgres.NewStore(db, hlc.NewClock("server"), log), hub: hub.New(log),
		district: NewID(), urban: NewID(), rural: NewID(), teacherA: NewID(), teacherB: NewID(), e1: NewID(), e2: NewID()}
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
		sysOp("district", e.district, map[string]any{"name": "新密市"}),
		sysOp("school", e.urban, map[string]any{"districtId": e.district, "name": "双河五小", "locality": "URBAN", "tier": "QUALITY"}),
		sysOp("school", e.rural, map[string]any{"districtId": e.district, "name": "曹河教学点", "locality": "TEACHING_POINT", "tier": "WEAK"}),
		sysOp("teacher", e.teacherA, map[string]any{"name": "王芳", "gender": "FEMALE", "birthDate": "1985-03-02", "schoolId": e.urban, "joinedSchoolOn": "2015-09-01"}),
		sysOp("teacher", e.teacherB, map[string]any{"name": "李强", "gender": "MALE", "birthDate": "1980-01-02", "schoolId": e.urban, "joinedSchoolOn": "2010-09-01"}),
		sysOp("exchange", e.e1, map[string]any{"teacherId": e.teacherA, "sendingSchoolId": e.urban, "receivingSchoolId": e.rural,
			"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"}),
		sysOp("exchange", e.e2, map[string]any{"teacherId": e.teacherB, "sendingSchoolId": e.urban, "receivingSchoolId": e.rural,
			"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"}),
	)
	// Through the store, as an admin would; bcrypt makes each take a while, so at once.
	users := []postgres.NewUser{
		{Username: "wangfang", Password: "correct-horse", Role: jiaoliu.RoleTeacher, TeacherID: e.teacherA},
		{Username: "liqiang", Password: "correct-horse", Role: jiaoliu.RoleTeacher, TeacherID: e.teacherB},
		{Username: "caohe-admin", Password: "correct-horse", Role: jiaoliu.RoleSchoolAdmin, SchoolID: e.rural},
	}
	created := make([]*jiaoliu.User, len(users))
	errs := make([]error, len(users))
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() { created[i], errs[i] = e.store.CreateUser(sys(), u) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create user %s: %v", users[i].Username, err)
		}
	}
	e.userA, e.userB, e.admin = created[0], created[1], created[2]

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

var sysTick atomic.Int64

func sysOp(entity, id string, fields map[string]any) jiaoliu.Op {
	return jiaoliu.Op{OpID: NewID(), Kind: jiaoliu.OpUpsert, Entity: entity, ID: id,
		HLC: hlc.Timestamp{Wall: time.Now().UnixMilli(), Counter: uint16(sysTick.Add(1)), Node: "fixture"}.String(), Fields: fields}
}

func (e *env) apply(ops ...jiaoliu.Op) {
	e.t.Helper()
	if _, err := e.store.Apply(sys(), jiaoliu.Batch{Ops: ops, Atomic: true}); err != nil {
		e.t.Fatalf("apply: %v", err)
	}
}

// with returns a copy of the environment whose helpers report to t (a subtest).
func (e *env) with(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// device is a simulated tablet: a registered device with its own database file.
type device struct {
	name  string
	user  *jiaoliu.User
	id    string
	token string
	path  string
	cfg   Config
	c     *Client
}

// newDevice registers a device for user (as that user) and opens a client for it in
// a fresh directory.
func (e *env) newDevice(name string, user *jiaoliu.User, tweak ...func(*Config)) *device {
	e.t.Helper()
	ctx := jiaoliu.NewContextWithActor(context.Background(), postgres.ActorOf(user, "", ""))
	d, token, err := e.store.RegisterDevice(ctx, name+"'s tablet", user.ID)
	if err != nil {
		e.t.Fatalf("register device: %v", err)
	}
	dev := &device{name: name, user: user, id: d.ID, token: token, path: filepath.Join(e.t.TempDir(), "tablet.db")}
	dev.cfg = Config{ServerURL: e.ts.URL, DeviceID: d.ID, Token: token, Logger: testLogger().With("tablet", name),
		RequestTimeout: 20 * time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	for _, f := range tweak {
		f(&dev.cfg)
	}
	dev.open(e.t)
	return dev
}

func (d *device) open(t *testing.T) {
	t.Helper()
	c, err := Open(d.path, d.cfg)
	if err != nil {
		t.Fatalf("%s: open: %v", d.name, err)
	}
	d.c = c
	t.Cleanup(func() { c.Close() })
}

// crash abandons the client as a crash would (no Close: only the file handles go)
// and opens the database again from disk.
func (d *device) crash(t *testing.T) {
	t.Helper()
	d.c.mu.Lock()
	d.c.closed = true
	d.c.mu.Unlock()
	if err := d.c.db.Close(); err != nil {
		t.Fatalf("%s: drop the database handle: %v", d.name, err)
	}
	d.open(t)
}

// actorCtx is the context of the device's user, as the server sees it.
func (d *device) actorCtx() context.Context {
	return jiaoliu.NewContextWithActor(context.Background(), postgres.ActorOf(d.user, d.id, ""))
}

// serverState pulls everything the device's user may read, straight from the store.
func (e *env) serverState(ctx context.Context) map[string]postgres.PulledRecord {
	e.t.Helper()
	out := map[string]postgres.PulledRecord{}
	cursor := ""
	for i := 0; ; i++ {
		recs, next, more, err := e.store.Pull(ctx, cursor, 1000)
		if err != nil {
			e.t.Fatalf("server pull: %v", err)
		}
		for _, r := range recs {
			out[r.Entity+"/"+r.ID] = r
		}
		cursor = next
		if !more {
			return out
		}
		if i > 1000 {
			e.t.Fatal("server pull never ends")
		}
	}
}

// assertReplicaMatches checks the device's replica against the server, by checksum
// and by content: same records, versions, tombstones and field values, nothing
// pending.
func (e *env) assertReplicaMatches(d *device) {
	e.t.Helper()
	ctx := context.Background()
	_, count, sum, err := e.store.Verify(d.actorCtx(), "")
	if err != nil {
		e.t.Fatal(err)
	}
	dc, dsum, err := d.c.Checksum(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if dc != count || dsum != sum {
		e.t.Errorf("%s: replica checksum %d %s, server %d %s", d.name, dc, dsum, count, sum)
	}
	server := e.serverState(d.actorCtx())
	local, err := d.c.All(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range local {
		k := r.Entity + "/" + r.ID
		seen[k] = true
		s, ok := server[k]
		if !ok {
			e.t.Errorf("%s: the replica has %s, which the server does not deliver", d.name, k)
			continue
		}
		if r.Pending != 0 || r.Version != s.Version || r.Deleted != s.Deleted {
			e.t.Errorf("%s: %s is v%s deleted=%v pending=%d, server v%s deleted=%v", d.name, k, r.Version, r.Deleted, r.Pending, s.Version, s.Deleted)
		}
		sf, err := s.Fields()
		if err != nil {
			e.t.Fatal(err)
		}
		if a, b := canonJSON(r.Fields), canonJSON(sf); a != b {
			e.t.Errorf("%s: %s fields differ:\ndevice %s\nserver %s", d.name, k, a, b)
		}
	}
	for k := range server {
		if !seen[k] {
			e.t.Errorf("%s: the replica lacks %s", d.name, k)
		}
	}
}

func canonJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("!%v", err)
	}
	// Re-decode so that map keys are ordered and numbers have one form.
	var x any
	_ = json.Unmarshal(b, &x)
	b, _ = json.Marshal(x)
	return string(b)
}

// waitCommitted waits until the server has stored results for every op of ids (the
// push was applied and committed).
func (e *env) waitCommitted(ids []string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := e.db.Get(&n, `SELECT count(*) FROM sync_ops WHERE op_id = ANY($1)`, pq.Array(ids)); err != nil {
			return err
		}
		if n == len(ids) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d ops committed", n, len(ids))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitIdle waits until the server has no open sockets (the tests that use it sync one
// device at a time).
func (e *env) waitIdle() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.Conns() > 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("%d sockets still open", e.srv.Conns())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func lessonOf(exchange, date string, period int) map[string]any {
	return map[string]any{"exchangeId": exchange, "date": date, "period": period, "subject": "数学", "kind": "DEMONSTRATION"}
}

// must returns v, or panics on err (a helper for calls that cannot fail in a passing
// test; the panic's stack names the line).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return strings.TrimSpace(err.Error())
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
