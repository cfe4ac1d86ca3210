package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
	syncserver "github.com/jiaoliu/jiaoliu/sync/server"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, postgres.Migrate, postgres.CheckScopeCopies)) }

// server starts a sync server with a teacher on an exchange and returns its URL, the
// teacher's device id and token, the exchange id, and another teacher's exchange.
func server(t *testing.T) (url, device, token, exchange, otherExchange string, db *sqlx.DB) {
	t.Helper()
	db = pgtest.NewDB(t)
	store := postgres.NewStore(db, hlc.NewClock("server"), nil)
	ctx := jiaoliu.NewContextWithActor(context.Background(), jiaoliu.SystemActor)
	district, urban, rural, teacher, other := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	exchange, otherExchange = uuid.NewString(), uuid.NewString()
	n := 0
	op := func(entity, id string, f map[string]any) jiaoliu.Op {
		n++
		return jiaoliu.Op{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, Entity: entity, ID: id,
			HLC: hlc.Timestamp{Wall: time.Now().UnixMilli(), Counter: uint16(n), Node: "fixture"}.String(), Fields: f}
	}
	ex := func(id, teacher string) jiaoliu.Op {
		return op("exchange", id, map[string]any{"teacherId": teacher, "sendingSchoolId": urban, "receivingSchoolId": rural,
			"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"})
	}
	if _, err := store.Apply(ctx, jiaoliu.Batch{Atomic: true, Ops: []jiaoliu.Op{
		op("district", district, map[string]any{"name": "新密市"}),
		op("school", urban, map[string]any{"districtId": district, "name": "双河五小", "locality": "URBAN", "tier": "QUALITY"}),
		op("school", rural, map[string]any{"districtId": district, "name": "曹河教学点", "locality": "TEACHING_POINT", "tier": "WEAK"}),
		op("teacher", teacher, map[string]any{"name": "王芳", "gender": "FEMALE", "birthDate": "1985-03-02", "schoolId": urban, "joinedSchoolOn": "2015-09-01"}),
		op("teacher", other, map[string]any{"name": "李强", "gender": "MALE", "birthDate": "1980-01-02", "schoolId": urban, "joinedSchoolOn": "2010-09-01"}),
		ex(exchange, teacher), ex(otherExchange, other),
	}}); err != nil {
		t.Fatal(err)
	}
	user, err := store.CreateUser(ctx, postgres.NewUser{Username: "wangfang", Password: "correct-horse", Role: jiaoliu.RoleTeacher, TeacherID: teacher})
	if err != nil {
		t.Fatal(err)
	}
	d, token, err := store.RegisterDevice(jiaoliu.NewContextWithActor(context.Background(), postgres.ActorOf(user, "", "")), "王芳的平板", user.ID)
	if err != nil {
		t.Fatal(err)
	}
	var log *slog.Logger
	if os.Getenv("TABLET_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv := syncserver.New(store, store, nil, log)
	mux := http.NewServeMux()
	srv.Routes(mux)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
	})
	return ts.URL, d.ID, token, exchange, otherExchange, db
}

// tablet runs the command line and returns its exit code and output.
func tablet(t *testing.T, db string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"-db", db}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func expect(t *testing.T, db string, want int, args ...string) string {
	t.Helper()
	code, out, errOut := tablet(t, db, args...)
	if code != want {
		t.Fatalf("tablet %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out + errOut
}

func TestTabletOfflineThenSync(t *testing.T) {
	url, device, token, exchange, otherExchange, pg := server(t)
	db := filepath.Join(t.TempDir(), "tablet.db")

	expect(t, db, exitUsage)
	expect(t, db, exitUsage, "fly")
	out := expect(t, db, exitUsage, "lesson", "-exchange", exchange, "-date", "2026-10-12", "-period", "3", "-subject", "数学", "-kind", "DEMONSTRATION")
	if !strings.Contains(out, "tablet init") {
		t.Fatalf("an unconfigured tablet does not say how to configure it:\n%s", out)
	}
	expect(t, db, exitOK, "init", "-server", url, "-device", device, "-token", token)

	// Offline work.
	out = expect(t, db, exitOK, "lesson", "-exchange", exchange, "-date", "2026-10-12", "-period", "3", "-subject", "数学", "-kind", "DEMONSTRATION", "-topic", "分数")
	if !strings.Contains(out, "Saved new lesson") || !strings.Contains(out, "1 change waits for sync") {
		t.Fatalf("lesson:\n%s", out)
	}
	lesson := regexp.MustCompile(`lesson ([0-9a-f-]{36})`).FindStringSubmatch(out)[1]
	// The same slot again edits the lesson instead of logging a twin.
	out = expect(t, db, exitOK, "lesson", "-exchange", exchange, "-date", "2026-10-12", "-period", "3", "-topic", "分数的意义", "-minutes", "40")
	if !strings.Contains(out, "Updated lesson "+lesson) {
		t.Fatalf("second lesson command:\n%s", out)
	}
	expect(t, db, exitOK, "attendance", "-exchange", exchange, "-date", "2026-10-12", "-status", "PRESENT")
	out = expect(t, db, exitUsage, "lesson", "-exchange", exchange, "-date", "2026-10-13", "-period", "13", "-subject", "数学", "-kind", "REGULAR")
	if !strings.Contains(out, "period: must be 1..12") {
		t.Fatalf("an invalid period is not explained:\n%s", out)
	}
	expect(t, db, exitUsage, "lesson", "-exchange", exchange, "-date", "2026-10-13", "-period", "two")
	out = expect(t, db, exitOK, "list", "lesson")
	if !strings.Contains(out, "分数的意义") || !strings.Contains(out, "new, not synced") {
		t.Fatalf("list lesson:\n%s", out)
	}
	out = expect(t, db, exitOK, "status")
	if !strings.Contains(out, "3 changes wait for sync") || !strings.Contains(out, "Last sync  never") {
		t.Fatalf("status:\n%s", out)
	}

	// Sync, and the server has it all.
	out = expect(t, db, exitOK, "sync")
	if !strings.Contains(out, "Sent 3 changes: 3 applied") || !strings.Contains(out, "verified against the server") {
		t.Fatalf("sync:\n%s", out)
	}
	var topic string
	var minutes int
	if err := pg.QueryRow(`SELECT topic, minutes FROM lessons WHERE id = $1`, lesson).Scan(&topic, &minutes); err != nil || topic != "分数的意义" || minutes != 40 {
		t.Fatalf("the server's lesson: %q %d %v", topic, minutes, err)
	}
	out = expect(t, db, exitOK, "list", "exchange")
	if !strings.Contains(out, exchange) || !strings.Contains(out, "2026-2027") {
		t.Fatalf("list exchange:\n%s", out)
	}
	out = expect(t, db, exitOK, "show", "lesson", lesson)
	if !strings.Contains(out, "synced v") || !strings.Contains(out, "deviceId") {
		t.Fatalf("show:\n%s", out)
	}
	out = expect(t, db, exitOK, "status")
	if !strings.Contains(out, "Nothing waits for sync") || !strings.Contains(out, "matches the server") {
		t.Fatalf("status after sync:\n%s", out)
	}

	// A lesson on someone else's exchange is refused by the server, kept and shown.
	expect(t, db, exitOK, "lesson", "-exchange", otherExchange, "-date", "2026-10-12", "-period", "1", "-subject", "语文", "-kind", "REGULAR")
	out = expect(t, db, exitRejected, "sync")
	if !strings.Contains(out, "1 refused") {
		t.Fatalf("sync with a refused change:\n%s", out)
	}
	out = expect(t, db, exitOK, "rejections")
	if !strings.Contains(out, "forbidden") || !strings.Contains(out, "语文") {
		t.Fatalf("rejections:\n%s", out)
	}
	op := regexp.MustCompile(`op ([0-9a-f-]{36})`).FindStringSubmatch(out)[1]
	expect(t, db, exitOK, "rejections", "-dismiss", op)
	if out = expect(t, db, exitOK, "rejections"); !strings.Contains(out, "refused nothing") {
		t.Fatalf("rejections after dismiss:\n%s", out)
	}

	// Offline: the work stays queued and the exit code says so.
	expect(t, db, exitOK, "delete", "attendance", mustFind(t, db, "attendance"))
	dead := filepath.Join(t.TempDir(), "dead.db")
	expect(t, dead, exitOK, "init", "-server", "http://127.0.0.1:1", "-device", device, "-token", token)
	expect(t, dead, exitOK, "attendance", "-exchange", exchange, "-date", "2026-10-14", "-status", "SICK")
	out = expect(t, dead, exitSyncFailed, "sync", "-timeout", "5s")
	if !strings.Contains(out, "nothing is lost: 1 change waits for sync") {
		t.Fatalf("offline sync:\n%s", out)
	}
	// Over HTTP, as behind a proxy that blocks WebSockets.
	out = expect(t, db, exitOK, "-http", "sync")
	if !strings.Contains(out, "Sent 1 changes: 1 applied") {
		t.Fatalf("HTTP sync:\n%s", out)
	}
	// A revoked token is a different failure from being offline.
	if _, err := pg.Exec(`UPDATE devices SET revoked_at = now() WHERE id = $1`, device); err != nil {
		t.Fatal(err)
	}
	out = expect(t, db, exitRefused, "sync")
	if !strings.Contains(out, "register the device again") {
		t.Fatalf("revoked sync:\n%s", out)
	}
}

// mustFind returns the id of the first live record of entity on the tablet.
func mustFind(t *testing.T, db, entity string) string {
	t.Helper()
	out := expect(t, db, exitOK, "list", entity)
	m := regexp.MustCompile(`(?m)^([0-9a-f-]{36})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %s in:\n%s", entity, out)
	}
	return m[1]
}
