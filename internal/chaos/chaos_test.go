package chaos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu/internal/pgcluster"
)

// Faults the suite injects, one per iteration, while the devices work.
const (
	faultKillServer   = "SIGKILL the server mid-traffic (PostgreSQL left running)"
	faultKillBoth     = "SIGKILL the server and its PostgreSQL (stale postmaster.pid)"
	faultTermKill     = "SIGTERM, then SIGKILL mid-shutdown (PostgreSQL half-stopped)"
	faultRestartPG    = "restart PostgreSQL under the running server"
	faultCrashPG      = "crash PostgreSQL (SIGKILL) under the running server, then start it"
	faultCut          = "cut every link for a while"
	faultLatency      = "delay traffic both ways with jitter"
	faultLimitData    = "cut links mid-message (after a few hundred bytes)"
	faultBlackhole    = "blackhole traffic from the devices"
	faultSlicer       = "slice traffic into small delayed segments"
	faultResetPeer    = "reset connections (TCP RST)"
	faultClockJump    = "jump a device's clock by minutes, days or a year"
	faultDuplicateRun = "every device resends acknowledged batches"
)

var allFaults = []string{faultKillServer, faultKillBoth, faultTermKill, faultRestartPG, faultCrashPG, faultCut,
	faultLatency, faultLimitData, faultBlackhole, faultSlicer, faultResetPeer, faultClockJump, faultDuplicateRun}

// skews are the clock offsets devices get, both ways: minutes, days, a year.
var skews = []time.Duration{3 * time.Minute, -7 * time.Minute, 10 * time.Minute, 2 * 24 * time.Hour, -2 * 24 * time.Hour,
	365 * 24 * time.Hour, -365 * 24 * time.Hour, 0}

// TestChaos drives eight simulated devices (six raw-protocol devices and two running
// sync/client, one over the HTTP fallback) through the real server (built from
// ./server, with its embedded PostgreSQL, fsync on) and a toxiproxy, while it kills
// the server, restarts and crashes PostgreSQL, cuts, delays, slices and resets the
// links and skews the devices' clocks. After each round the checker compares every
// replica, the database and the oracle: nothing lost, nothing applied twice, all
// converged. CHAOS_ITERATIONS sets the number of faults (13 in short mode, each kind
// once); CHAOS_SEED repeats a run.
func TestChaos(t *testing.T) {
	seed := seed()
	total := iterations(len(allFaults))
	t.Logf("chaos: seed=%d iterations=%d (repeat with CHAOS_SEED=%d CHAOS_ITERATIONS=%d)", seed, total, seed, total)
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))

	srv := newEmbeddedServer(t)
	w := newWorld(t, srv.URL())
	proxy := newLinkProxy(t, srv.addr)
	h := &harness{t: t, rng: rng, srv: srv, proxy: proxy, pgDir: filepath.Join(srv.dataDir, "postgres"), counts: map[string]int{}}

	specs := []struct {
		name      string
		user      string
		exchanges []string
		skew      time.Duration
		correct   bool
	}{
		// A teacher's three tablets write the same exchange: natural keys and fields collide.
		{"A1-year-ahead", w.userA, []string{w.exchangeA}, 365 * 24 * time.Hour, true},
		{"A2-days-behind", w.userA, []string{w.exchangeA}, -2 * 24 * time.Hour, true},
		{"A3-minutes-ahead", w.userA, []string{w.exchangeA}, 3 * time.Minute, false},
		{"B1-10min-ahead", w.userB, []string{w.exchangeB}, 10 * time.Minute, false},
		{"B2-minutes-behind", w.userB, []string{w.exchangeB}, -7 * time.Minute, true},
		// The district's admin edits both teachers' records with a clock a year behind.
		{"D1-year-behind", w.userD, []string{w.exchangeA, w.exchangeB}, -365 * 24 * time.Hour, false},
	}
	var devices []*device
	for i, s := range specs {
		reg := registerDevice(t, w.admin, s.user, s.name)
		devices = append(devices, newDevice(s.name, reg, s.exchanges, s.skew, s.correct, seed+uint64(i)*1000003, proxy.URL()))
	}
	h.devices = devices
	// Two tablets run the project's own client (sync/client), over the WebSocket and
	// over the HTTP fallback, writing teacher B's records next to B1 and B2.
	h.clients = []*clientDevice{
		newClientDevice(t, "C1-go-client-ws", registerDevice(t, w.admin, w.userB, "C1"), w.exchangeB, proxy.URL(), false, 2*time.Minute, seed+7),
		newClientDevice(t, "C2-go-client-http", registerDevice(t, w.admin, w.userB, "C2"), w.exchangeB, proxy.URL(), true, -3*24*time.Hour, seed+11),
	}

	db, err := sqlx.Connect("postgres", embeddedDSN(srv.dataDir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	done := 0
	for round := 1; done < total; round++ {
		n := min(25, total-done)
		var faults []string
		if total <= len(allFaults) {
			// Short mode: each fault kind once, in a seeded order.
			faults = append(faults, allFaults...)
			rng.Shuffle(len(faults), func(i, j int) { faults[i], faults[j] = faults[j], faults[i] })
			faults = faults[:n]
		} else {
			for range n {
				faults = append(faults, allFaults[rng.IntN(len(allFaults))])
			}
		}
		begin := time.Now()
		h.round(round, faults)
		done += n
		faulted := time.Since(begin)
		rep := h.settleAndCheck(db)
		t.Logf("chaos round %d: faults %v, settle and check %v", round, faulted.Round(time.Millisecond), (time.Since(begin) - faulted).Round(time.Millisecond))
		st := summarize(devices)
		var clientOps, clientRefused int
		for _, cd := range h.clients {
			res, _ := cd.c.Results(context.Background())
			clientOps += len(res)
			clientRefused += cd.failed
		}
		t.Logf("chaos round %d (%d iterations so far): %s", round, done, rep)
		t.Logf("chaos round %d: made=%d applied=%d merged=%d rejected=%d duplicates=%d resent=%d restamped=%d lost-fields(conflicts)=%d pushes=%d http=%d dup=%d concurrent=%d shuffled=%d pulls=%d pokes=%d resets=%d connects=%d timeouts=%d internal=%d rate-limited=%d",
			round, st.made, st.applied, st.merged, st.rejected, st.duplicates, st.resent, st.restamped, st.lostFields,
			st.pushes, st.httpPushes, st.dupPushes, st.concurrentPushes, st.shuffled, st.pulls, st.pokes, st.resets,
			st.connects, st.timeouts, st.internalErrors, st.rateLimited)
		if !rep.OK() {
			t.Errorf("chaos round %d: %s\n  %s", round, rep, strings.Join(rep.details, "\n  "))
		}
		t.Logf("chaos round %d: the Go client devices: %d ops acknowledged (%d writes refused locally)", round, clientOps, clientRefused)
		if st.restampWrong > 0 || st.restampNoHLC > 0 {
			t.Errorf("chaos round %d: %d ops re-stamped wrongly, %d re-stamped without the server's HLC", round, st.restampWrong, st.restampNoHLC)
		}
		if st.rejected > 0 {
			t.Errorf("chaos round %d: %d valid ops rejected: %v", round, st.rejected, st.rejections[:min(5, len(st.rejections))])
		}
		if t.Failed() {
			break
		}
	}
	var kinds []string
	for k, n := range h.counts {
		kinds = append(kinds, fmt.Sprintf("%d× %s", n, k))
	}
	sort.Strings(kinds)
	t.Logf("chaos: faults injected: %s", strings.Join(kinds, "; "))
	t.Logf("chaos: server errors logged: %s", errorSummary(srv.logPath))
	if srv.LogContains("panic") {
		t.Errorf("the server log mentions a panic")
	}
}

// errorSummary counts the server's ERROR log lines by message and cause.
func errorSummary(path string) string {
	counts := map[string]int{}
	for _, line := range strings.Split(readFile(path), "\n") {
		if !strings.Contains(line, "level=ERROR") {
			continue
		}
		msg, cause := field(line, "msg="), field(line, "err=")
		if cause == "" {
			cause = field(line, "error=")
		}
		for _, known := range []string{"deadlock detected", "terminating connection", "connection refused", "bad connection",
			"EOF", "canceling statement", "context canceled", "the database system is", "broken pipe", "no such file"} {
			if strings.Contains(cause, known) {
				cause = known
				break
			}
		}
		if len(cause) > 60 {
			cause = cause[:60] + "…"
		}
		counts[msg+" ("+cause+")"]++
	}
	var out []string
	for k, n := range counts {
		out = append(out, fmt.Sprintf("%d× %s", n, k))
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "; ")
}

// field returns the value of key in a slog text line (quoted or not).
func field(line, key string) string {
	i := strings.Index(line, " "+key)
	if i < 0 {
		return ""
	}
	rest := line[i+1+len(key):]
	if strings.HasPrefix(rest, `"`) {
		if j := strings.Index(rest[1:], `" `); j >= 0 {
			return rest[1 : j+1]
		}
		return strings.Trim(rest, `"`)
	}
	if j := strings.IndexByte(rest, ' '); j >= 0 {
		return rest[:j]
	}
	return rest
}

// harness runs rounds of faults against one server.
type harness struct {
	t       *testing.T
	rng     *rand.Rand
	srv     *serverProc
	proxy   *linkProxy
	pgDir   string
	pg      *pgcluster.Cluster // our handle on the server's embedded PostgreSQL, once taken
	devices []*device
	clients []*clientDevice
	counts  map[string]int
}

// round lets the devices work while the faults are injected one after another.
func (h *harness) round(n int, faults []string) {
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, d := range h.devices {
		wg.Add(1)
		go func() { defer wg.Done(); d.run(ctx) }()
	}
	for _, cd := range h.clients {
		wg.Add(1)
		go func() { defer wg.Done(); cd.run(ctx) }()
	}
	for i, f := range faults {
		time.Sleep(time.Duration(150+h.rng.IntN(450)) * time.Millisecond)
		begin := time.Now()
		h.inject(f)
		h.counts[f]++
		h.t.Logf("round %d iteration %d: %s (%v)", n, i+1, f, time.Since(begin).Round(time.Millisecond))
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()
}

// inject injects one fault and returns when the system is whole again.
func (h *harness) inject(f string) {
	t, rng := h.t, h.rng
	pause := func(minMS, maxMS int) { time.Sleep(time.Duration(minMS+rng.IntN(maxMS-minMS+1)) * time.Millisecond) }
	switch f {
	case faultKillServer:
		h.srv.Kill()
		pause(0, 500)
		h.start()
	case faultKillBoth:
		pid := postmasterPID(h.srv.dataDir)
		h.srv.Kill()
		if isPostgres(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		for i := 0; i < 200 && isPostgres(pid); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		pause(0, 300)
		h.start()
	case faultTermKill:
		h.srv.Signal(syscall.SIGTERM)
		pause(0, 400)
		h.srv.Kill()
		h.start()
	case faultRestartPG:
		h.restartPG(false)
	case faultCrashPG:
		h.restartPG(true)
	case faultCut:
		h.proxy.Down()
		pause(200, 800)
		if err := h.proxy.Up(); err != nil {
			t.Fatalf("proxy up: %v", err)
		}
	case faultLatency:
		h.toxics(map[string][]any{"latency": {"latency", map[string]any{"latency": 50 + rng.IntN(250), "jitter": rng.IntN(200)}}}, 500, 1200)
	case faultLimitData:
		h.toxics(map[string][]any{"limit_data": {"limit_data", map[string]any{"bytes": 100 + rng.IntN(4000)}}}, 500, 1000)
	case faultBlackhole:
		h.toxicOn("upstream", "timeout", map[string]any{"timeout": 0}, 500, 1000)
	case faultSlicer:
		h.toxics(map[string][]any{"slicer": {"slicer", map[string]any{"average_size": 32, "size_variation": 24, "delay": 200}}}, 500, 1000)
	case faultResetPeer:
		h.toxicOn("downstream", "reset_peer", map[string]any{"timeout": rng.IntN(300)}, 300, 700)
	case faultClockJump:
		d := h.devices[rng.IntN(len(h.devices))]
		skew := skews[rng.IntN(len(skews))]
		d.skew.Store(skew.Milliseconds())
		t.Logf("  %s's clock now off by %v", d.name, skew)
	case faultDuplicateRun:
		for _, d := range h.devices {
			d.storm.Store(true)
		}
		deadline := time.Now().Add(10 * time.Second)
		for _, d := range h.devices {
			for d.storm.Load() && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
	default:
		t.Fatalf("unknown fault %q", f)
	}
}

// toxics adds the toxics on both streams for a while; spec maps a name to {type, attributes}.
func (h *harness) toxics(spec map[string][]any, minMS, maxMS int) {
	for name, s := range spec {
		for _, stream := range []string{"upstream", "downstream"} {
			if err := h.proxy.Toxic(name+"_"+stream, s[0].(string), stream, s[1].(map[string]any)); err != nil {
				h.t.Fatalf("toxic %s: %v", name, err)
			}
		}
	}
	time.Sleep(time.Duration(minMS+h.rng.IntN(maxMS-minMS+1)) * time.Millisecond)
	h.proxy.Clear()
}

func (h *harness) toxicOn(stream, typ string, attrs map[string]any, minMS, maxMS int) {
	if err := h.proxy.Toxic(typ+"_"+stream, typ, stream, attrs); err != nil {
		h.t.Fatalf("toxic %s: %v", typ, err)
	}
	time.Sleep(time.Duration(minMS+h.rng.IntN(maxMS-minMS+1)) * time.Millisecond)
	h.proxy.Clear()
}

// start starts the server again on the same data and address.
func (h *harness) start() {
	if err := h.srv.Start(); err != nil {
		h.t.Fatalf("restart the server: %v", err)
	}
}

// restartPG restarts the embedded PostgreSQL under the running server, cleanly or
// after a crash. The first time it takes a handle on the cluster with
// pgcluster.Start, which itself stops the running postmaster and starts it again.
func (h *harness) restartPG(crash bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if h.pg == nil {
		c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: h.pgDir, Fsync: true})
		if err != nil {
			h.t.Fatalf("take the cluster: %v", err)
		}
		h.pg = c
		if !crash {
			h.waitReady()
			return
		}
	}
	if crash {
		if err := h.pg.Kill(); err != nil {
			h.t.Fatalf("crash postgres: %v", err)
		}
		time.Sleep(time.Duration(100+h.rng.IntN(500)) * time.Millisecond)
	}
	if err := h.pg.Restart(ctx); err != nil {
		h.t.Fatalf("restart postgres: %v", err)
	}
	h.waitReady()
}

// waitReady waits until the server answers /readyz (its pool reconnected).
func (h *harness) waitReady() {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(h.srv.URL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("server not ready 30 s after the fault")
}

// settleAndCheck heals everything, lets every device push all it has, pull and
// verify, and runs the checker.
func (h *harness) settleAndCheck(db *sqlx.DB) report {
	t := h.t
	h.proxy.Clear()
	if err := h.proxy.Up(); err != nil {
		t.Fatalf("proxy up: %v", err)
	}
	if h.srv.Pid() == 0 {
		h.start()
	}
	h.waitReady()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// One device after another: concurrent batches that touch the same records in
	// different orders deadlock in PostgreSQL (one is retried after a second), which
	// the rounds already exercise.
	for _, d := range h.devices {
		if err := d.drain(ctx); err != nil {
			t.Errorf("drain: %v", err)
		}
	}
	// The clients push what they have; then each syncs once more, when no one writes.
	for range 2 {
		for _, cd := range h.clients {
			if err := cd.settle(ctx); err != nil {
				t.Errorf("client settle: %v", err)
			}
		}
	}
	errs := make([]error, len(h.devices))
	var wg sync.WaitGroup
	matched := map[*device]bool{}
	var mu sync.Mutex
	for i, d := range h.devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := d.settle(ctx)
			errs[i] = err
			mu.Lock()
			matched[d] = ok
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("settle: %v", err)
		}
	}
	all := append([]*device(nil), h.devices...)
	for _, cd := range h.clients {
		d, ok, err := cd.asDevice(ctx, h.srv.URL())
		if err != nil {
			t.Fatalf("%s: %v", cd.name, err)
		}
		matched[d] = ok
		all = append(all, d)
	}
	return check(ctx, t, db, h.srv.URL(), all, matched)
}

// embeddedDSN connects to the embedded PostgreSQL of a server's DATA_DIR, over the
// socket that pgcluster puts in DATA_DIR/postgres/run (the path is short here).
func embeddedDSN(dataDir string) string {
	return fmt.Sprintf("host=%s port=5432 user=postgres dbname=jiaoliu sslmode=disable connect_timeout=5",
		filepath.Join(dataDir, "postgres", "run"))
}
