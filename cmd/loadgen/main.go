// Command loadgen simulates a county's tablets against a running server, over real
// WebSockets on loopback: N devices of M teachers connect in bursts, push an offline
// backlog (attendance, lessons, research activities), pull, and idle while other
// devices' writes poke them. It reports acknowledged ops per second, pulled records per
// second, poke latency percentiles (push → poke on the teacher's other device),
// the server's resident memory per idle connection, and errors, with a progress line
// every second. Every phase is bounded in count and time.
//
//	loadgen -setup -database-url "$DATABASE_URL" -teachers 5000 -devices 10000
//	loadgen -url ws://127.0.0.1:8080/sync -teachers 5000 -devices 10000 -server-pid $PID
//
// -setup fills an empty database with a generated district (bench.Seed): schools,
// teachers, one exchange per teacher, a TEACHER user per teacher with devices whose
// tokens loadgen derives (bench.DeviceToken), so no GraphQL round trip per device.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu/bench"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

type config struct {
	setup       bool
	databaseURL string
	url         string
	schools     int
	teachers    int
	devices     int
	connConc    int
	sources     int
	pushers     int
	backlog     int
	batch       int
	window      int
	tablets     int
	tabletOps   int
	tabletEdits float64
	pokeWriters int
	pokeFor     time.Duration
	pokeEvery   time.Duration
	idle        time.Duration
	reconnect   float64
	serverPID   int
	maxTime     time.Duration
	cpuProfile  string
}

func main() {
	var c config
	flag.BoolVar(&c.setup, "setup", false, "fill the empty database at -database-url with the generated district and exit")
	flag.StringVar(&c.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL for -setup (DATABASE_URL)")
	flag.StringVar(&c.url, "url", "ws://127.0.0.1:8080/sync", "the server's sync WebSocket (loopback only)")
	flag.IntVar(&c.schools, "schools", 300, "schools of the generated district (-setup)")
	flag.IntVar(&c.teachers, "teachers", 1000, "teachers (M)")
	flag.IntVar(&c.devices, "devices", 2000, "devices (N), spread evenly over the teachers")
	flag.IntVar(&c.connConc, "connect-concurrency", 200, "devices connecting at once (a reconnect burst)")
	flag.IntVar(&c.sources, "sources", 250, "loopback source addresses (127.0.1.x) to spread devices over, as tablets come from many addresses")
	flag.IntVar(&c.pushers, "pushers", 20, "devices that push a backlog")
	flag.IntVar(&c.backlog, "backlog", 2000, "ops in each pusher's offline backlog")
	flag.IntVar(&c.batch, "batch", 500, "ops per push")
	flag.IntVar(&c.window, "window", 2, "pushes a pusher keeps unacknowledged at once, as the client package does (1: each ack awaited)")
	flag.IntVar(&c.tablets, "tablets", 20, "devices on the project's device library (sync/client, a SQLite replica each) that write a backlog offline and then sync at once (after the raw pull)")
	flag.IntVar(&c.tabletOps, "tablet-backlog", 1000, "ops each tablet writes offline")
	flag.Float64Var(&c.tabletEdits, "tablet-edits", 0.2, "share of a tablet's ops that edit a record it wrote shortly before")
	flag.IntVar(&c.pokeWriters, "poke-writers", 10, "devices writing one op at a time during the poke phase")
	flag.DurationVar(&c.pokeFor, "poke-for", 20*time.Second, "length of the poke phase")
	flag.DurationVar(&c.pokeEvery, "poke-every", 50*time.Millisecond, "pause between a poke writer's writes")
	flag.DurationVar(&c.idle, "idle", 5*time.Second, "idle time before measuring memory")
	flag.Float64Var(&c.reconnect, "reconnect", 0.5, "share of devices that drop and reconnect at once at the end")
	flag.IntVar(&c.serverPID, "server-pid", 0, "the server's process id, to read its resident memory")
	flag.DurationVar(&c.maxTime, "max-time", 10*time.Minute, "stop everything after this long")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write loadgen's own CPU profile to this file (the devices' side: the tablets' library, the raw devices)")
	flag.Parse()
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.maxTime)
	defer cancel()
	var err error
	if c.setup {
		err = setup(ctx, c)
	} else {
		err = run(ctx, c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func setup(ctx context.Context, c config) error {
	db, err := sqlx.ConnectContext(ctx, "postgres", c.databaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	per := max(1, (c.devices+c.teachers-1)/c.teachers)
	d, err := bench.Seed(ctx, db, bench.Spec{Schools: c.schools, Teachers: c.teachers, Exchanges: c.teachers, Users: c.teachers, DevicesPerUser: per})
	if err != nil {
		return err
	}
	fmt.Printf("setup: %d schools, %d teachers with exchanges and users, %d devices each, in %v\n", c.schools, c.teachers, per, d.Round(time.Millisecond))
	return nil
}

// rateLimited reports whether the server answered rate_limited (to a hello or a push):
// a device waits and tries again.
func rateLimited(err error) bool {
	var we *wire.Error
	return errors.As(err, &we) && we.Code == wire.CodeRateLimited
}

// stats are the counters the progress line shows.
type stats struct {
	connected, connErrs, acked, pushErrs, pulled, pokes, pullErrs, pokesWriter, pokesOther atomic.Int64

	rateLimited atomic.Int64 // pushes sent again after rate_limited

	firstMu sync.Mutex
	first   map[string]string // the first error of each phase, for the summary
}

// fail counts an error in n and keeps the first message of its phase.
func (s *stats) fail(n *atomic.Int64, phase, msg string) {
	n.Add(1)
	s.firstMu.Lock()
	defer s.firstMu.Unlock()
	if s.first == nil {
		s.first = map[string]string{}
	}
	if _, ok := s.first[phase]; !ok {
		s.first[phase] = msg
	}
}

type fleet struct {
	statusMu sync.Mutex
	statuses map[string]int // poke-phase results by status
	c        config
	per      int
	devices  []*bench.Device
	mu       sync.Mutex
	st       stats
	// poke measurement: the time teacher i's write was sent and acked
	sent              []atomic.Int64
	acked             []atomic.Int64
	latMu             sync.Mutex
	fromPush, fromAck []time.Duration
}

func run(ctx context.Context, c config) error {
	u, err := url.Parse(c.url)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); !(u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback())) {
		return errors.New("loadgen only targets loopback addresses")
	}
	per := max(1, (c.devices+c.teachers-1)/c.teachers)
	f := &fleet{c: c, per: per, devices: make([]*bench.Device, c.devices), sent: make([]atomic.Int64, c.teachers), acked: make([]atomic.Int64, c.teachers)}
	stopProgress := f.progress()
	defer stopProgress()
	rss0 := rss(c.serverPID)

	// Tablets on the device library write their backlogs offline, before anything
	// connects: device 0 of the teachers after the pushers'.
	pushers := min(c.pushers, c.teachers)
	var tablets []*tablet
	if n := min(c.tablets, c.teachers-pushers); n > 0 {
		base, err := serverBase(c.url)
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "loadgen-tablets-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		tw := time.Now()
		tablets, err = writeTablets(ctx, dir, base, pushers, n, c.tabletOps, c.tabletEdits)
		defer func() {
			for _, t := range tablets {
				t.c.Close()
			}
		}()
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %d tablets' offline backlogs of %d ops in %v\n", n, c.tabletOps, time.Since(tw).Round(time.Millisecond))
	}

	// Connect every device, C at a time.
	t0 := time.Now()
	f.connect(ctx, allDevices(c.devices))
	connectTime := time.Since(t0)
	fmt.Fprintf(os.Stderr, "\nconnected %d devices in %v (%d errors)\n", f.st.connected.Load(), connectTime.Round(time.Millisecond), f.st.connErrs.Load())
	select {
	case <-time.After(c.idle):
	case <-ctx.Done():
	}
	rss1 := rss(c.serverPID)

	// Push backlogs: each pusher is device 0 of teacher i.
	t1 := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < pushers; i++ {
		d := f.device(i * per)
		if d == nil {
			continue
		}
		wg.Add(1)
		go func(i int, d *bench.Device) {
			defer wg.Done()
			bl := bench.NewBacklog(bench.ExchangeID(i), d.ID, time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 500*(time.Now().Second()%7)))
			var pushes []*bench.EncodedPush
			for sent := 0; sent < c.backlog; sent += c.batch {
				p, err := bench.EncodePush(&wire.Push{BatchID: fmt.Sprintf("b-%d-%d", i, sent), Ops: bl.Batch(min(c.batch, c.backlog-sent))})
				if err != nil {
					f.st.fail(&f.st.pushErrs, "push", err.Error())
					return
				}
				pushes = append(pushes, p)
			}
			// Up to -window batches in flight; a batch over the server's per-device rate
			// is sent again after a pause, as a device does.
			for attempt := 0; len(pushes) > 0 && ctx.Err() == nil; attempt++ {
				if attempt > 0 {
					time.Sleep(100 * time.Millisecond)
				}
				var again []*bench.EncodedPush
				err := d.PushEncodedAll(ctx, pushes, c.window, func(k int, ack *wire.Ack, e *wire.Error) error {
					if e != nil {
						if e.Code == wire.CodeRateLimited && attempt < 20 {
							f.st.rateLimited.Add(1)
							again = append(again, pushes[k])
							return nil
						}
						return e
					}
					for _, r := range ack.Results {
						if r.Status == "rejected" {
							f.st.fail(&f.st.pushErrs, "push", "op rejected: "+r.Code+": "+r.Message)
						}
					}
					f.st.acked.Add(int64(len(ack.Results)))
					return nil
				})
				if err != nil {
					f.st.fail(&f.st.pushErrs, "push", err.Error())
					return
				}
				pushes = again
			}
		}(i, d)
	}
	wg.Wait()
	pushTime := time.Since(t1)
	pushed := f.st.acked.Load()

	// Pull: the pushers' second devices (or the pushers) pull everything they may read.
	t2 := time.Now()
	for i := 0; i < pushers; i++ {
		d := f.device(i*per + min(1, per-1))
		if d == nil {
			continue
		}
		wg.Add(1)
		go func(d *bench.Device) {
			defer wg.Done()
			n, _, err := d.PullAll(ctx, 500)
			if err != nil {
				f.st.fail(&f.st.pullErrs, "pull", err.Error())
			}
			f.st.pulled.Add(int64(n))
		}(d)
	}
	wg.Wait()
	pullTime := time.Since(t2)

	// The tablets come online at once.
	tabletRep := syncTablets(ctx, tablets, c.tabletOps)

	// Pokes: writers push one op at a time for random teachers (device 0); the same
	// teacher's device 1 is poked.
	pokeBase := f.st.acked.Load()
	f.latMu.Lock()
	f.fromPush, f.fromAck = nil, nil
	f.latMu.Unlock()
	pokeCtx, pokeCancel := context.WithTimeout(ctx, c.pokeFor)
	for w := 0; w < c.pokeWriters && per > 1; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for k := 0; pokeCtx.Err() == nil; k++ {
				i := pushers + (w+k*c.pokeWriters)%max(1, c.teachers-pushers)
				if i >= c.teachers {
					i = w
				}
				d := f.device(i * per)
				if d == nil {
					continue
				}
				bl := bench.NewBacklog(bench.ExchangeID(i), d.ID, time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, (k*c.pokeWriters+w)%20000))
				bl.LessonsPerDay = 0 // one attendance per write
				f.sent[i].Store(time.Now().UnixNano())
				f.acked[i].Store(0)
				ack, err := d.Push(pokeCtx, &wire.Push{BatchID: fmt.Sprintf("p-%d-%d", w, k), Ops: bl.Batch(1)})
				if err != nil {
					if pokeCtx.Err() == nil {
						f.st.fail(&f.st.pushErrs, "poke write", err.Error())
					}
					continue
				}
				f.acked[i].Store(time.Now().UnixNano())
				f.st.acked.Add(int64(len(ack.Results)))
				for _, r := range ack.Results {
					f.status(r.Status + r.Code)
				}
				select {
				case <-time.After(c.pokeEvery):
				case <-pokeCtx.Done():
				}
			}
		}(w)
	}
	wg.Wait()
	pokeCancel()
	pokeWrites := f.st.acked.Load() - pokeBase

	// A reconnect burst: a share of the devices drop and come back at once.
	var drop []int
	for d := range f.devices {
		if float64(d%100) < c.reconnect*100 {
			drop = append(drop, d)
		}
	}
	for _, d := range drop {
		if dev := f.device(d); dev != nil {
			dev.Close()
			f.mu.Lock()
			f.devices[d] = nil
			f.mu.Unlock()
			f.st.connected.Add(-1)
		}
	}
	t3 := time.Now()
	f.connect(ctx, drop)
	reconnectTime := time.Since(t3)
	stopProgress()

	fmt.Printf("\nloadgen: %d devices of %d teachers on %s\n", c.devices, c.teachers, c.url)
	fmt.Printf("connect       %d devices in %v (%.0f/s), %d errors\n", c.devices, connectTime.Round(time.Millisecond), float64(c.devices)/connectTime.Seconds(), f.st.connErrs.Load())
	if rss0 > 0 && rss1 > 0 {
		fmt.Printf("memory        server RSS %d MiB → %d MiB idle: %.1f KiB per connection\n", rss0>>20, rss1>>20, float64(rss1-rss0)/1024/float64(max(1, c.devices)))
	}
	fmt.Printf("push          %d ops acknowledged by %d devices (batch %d, %d in flight) in %v: %.0f ops/s, %d errors\n", pushed, pushers, c.batch, c.window, pushTime.Round(time.Millisecond), float64(pushed)/pushTime.Seconds(), f.st.pushErrs.Load())
	if n := f.st.rateLimited.Load(); n > 0 {
		fmt.Printf("rate limited  %d pushes answered rate_limited and sent again (the server allows each device 20 messages/s, burst 100)\n", n)
	}
	fmt.Printf("pull          %d records by %d devices in %v: %.0f records/s, %d errors\n", f.st.pulled.Load(), pushers, pullTime.Round(time.Millisecond), float64(f.st.pulled.Load())/pullTime.Seconds(), f.st.pullErrs.Load())
	tabletRep.print()
	f.latMu.Lock()
	fmt.Printf("poke          %d writes by %d writers over %v; push sent → poke on the other device: %s; ack → poke: %s\n",
		pokeWrites, c.pokeWriters, c.pokeFor, percentiles(f.fromPush), percentiles(f.fromAck))
	f.latMu.Unlock()
	fmt.Printf("poke writes   results %v\n", f.statuses)
	fmt.Printf("pokes         %d in all: %d on writing devices, %d on other devices\n", f.st.pokes.Load(), f.st.pokesWriter.Load(), f.st.pokesOther.Load())
	fmt.Printf("reconnect     %d devices at once in %v (%.0f/s), %d connect errors in all\n", len(drop), reconnectTime.Round(time.Millisecond), float64(len(drop))/reconnectTime.Seconds(), f.st.connErrs.Load())
	if rss2 := rss(c.serverPID); rss2 > 0 {
		fmt.Printf("memory        server RSS at the end %d MiB\n", rss2>>20)
	}
	f.st.firstMu.Lock()
	for _, phase := range []string{"push", "pull", "poke write"} {
		if msg, ok := f.st.first[phase]; ok {
			fmt.Printf("first error   %s: %s\n", phase, msg)
		}
	}
	f.st.firstMu.Unlock()
	for _, d := range f.devices {
		if d != nil {
			d.Close()
		}
	}
	return nil
}

func (f *fleet) status(s string) {
	f.statusMu.Lock()
	defer f.statusMu.Unlock()
	if f.statuses == nil {
		f.statuses = map[string]int{}
	}
	f.statuses[s]++
}

func allDevices(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func (f *fleet) device(d int) *bench.Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d < 0 || d >= len(f.devices) {
		return nil
	}
	return f.devices[d]
}

// connect connects the given devices, connConc at a time, each from one of the
// loopback source addresses.
func (f *fleet) connect(ctx context.Context, which []int) {
	sem := make(chan struct{}, f.c.connConc)
	var wg sync.WaitGroup
	for _, d := range which {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(d int) {
			defer wg.Done()
			defer func() { <-sem }()
			i, j := d/f.per, d%f.per
			dialer := *bench.Dialer
			src := d % max(1, f.c.sources)
			dialer.NetDialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1+byte(src/250), 1+byte(src%250))}, Timeout: 30 * time.Second}).DialContext
			var dev *bench.Device
			var err error
			for attempt := 0; attempt < 5; attempt++ {
				dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				dev, err = bench.DialWith(dctx, &dialer, f.c.url, bench.DeviceID(i, j), bench.DeviceToken(i, j), f.onPoke(i, j))
				cancel()
				if !rateLimited(err) {
					break
				}
				time.Sleep(time.Duration(200*(attempt+1)) * time.Millisecond)
			}
			if err != nil {
				if f.st.connErrs.Add(1) <= 3 {
					fmt.Fprintf(os.Stderr, "\nconnect device %d: %v\n", d, err)
				}
				return
			}
			f.mu.Lock()
			f.devices[d] = dev
			f.mu.Unlock()
			f.st.connected.Add(1)
		}(d)
	}
	wg.Wait()
}

// onPoke records the latency of a poke on device j of teacher i when it answers a
// write of device 0 of the same teacher.
func (f *fleet) onPoke(i, j int) func(time.Time) {
	return func(at time.Time) {
		f.st.pokes.Add(1)
		if j == 0 {
			f.st.pokesWriter.Add(1)
			return
		}
		f.st.pokesOther.Add(1)
		sent := f.sent[i].Swap(0)
		if sent == 0 {
			return
		}
		ack := f.acked[i].Load()
		f.latMu.Lock()
		f.fromPush = append(f.fromPush, at.Sub(time.Unix(0, sent)))
		if ack > 0 {
			f.fromAck = append(f.fromAck, max(0, at.Sub(time.Unix(0, ack))))
		} else {
			f.fromAck = append(f.fromAck, 0) // the poke came before the ack
		}
		f.latMu.Unlock()
	}
}

func (f *fleet) progress() (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	start := time.Now()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(os.Stderr, "\r%6.0fs connected %6d (err %d)  acked %8d (err %d)  pulled %8d  pokes %8d   ",
					time.Since(start).Seconds(), f.st.connected.Load(), f.st.connErrs.Load(), f.st.acked.Load(), f.st.pushErrs.Load(),
					f.st.pulled.Load(), f.st.pokes.Load())
			}
		}
	}()
	return func() { once.Do(func() { close(done) }) }
}

func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	p := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return fmt.Sprintf("n=%d p50 %v p90 %v p99 %v max %v", len(s), p(0.5).Round(10*time.Microsecond), p(0.9).Round(10*time.Microsecond),
		p(0.99).Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}

// rss returns the resident memory of process pid in bytes, or 0.
func rss(pid int) int64 {
	if pid == 0 {
		return 0
	}
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "VmRSS:"), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
