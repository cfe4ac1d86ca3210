package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// TestSlowReaders opens 1,000 sockets (devices of the district's admin, who is poked
// for every change in the district) that say hello and then never read (900 stay
// quiet; 100 also ask for pulls and pings whose answers they never read), while three honest devices
// push and pull and every push pokes all 1,000. It measures the server's resident
// memory (the child process's RSS) and the honest devices' latency before and during
// the storm: memory stays flat while the pokes flow (they are coalesced, one per
// socket), the greedy readers are disconnected, and the honest devices' latency stays
// low.
func TestSlowReaders(t *testing.T) {
	const quiet, greedy, perDevice = 998, 2, 8
	srv := newServer(t)
	w := newWorld(t, srv.URL())
	url := srv.URL()
	pid := srv.Pid()

	// Data to pull: 200 records with 4 kB of notes each, so that a pull from the start
	// answers about 800 kB.
	seedDev := newDevice("seeder", registerDevice(t, w.admin, w.userA, "seeder"), []string{w.exchangeA}, 0, true, 1, url)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ops := bigBatch(seedDev, w.exchangeA, 200)
	for i := range ops {
		ops[i].Fields["notes"] = strings.Repeat("听课记录 notes ", 200)
	}
	if _, err := seedDev.postPush(ctx, ops); err != nil {
		t.Fatal(err)
	}

	var honest []*device
	for i := range 3 {
		honest = append(honest, newDevice(fmt.Sprintf("honest-%d", i), registerDevice(t, w.admin, w.userA, fmt.Sprintf("honest-%d", i)),
			[]string{w.exchangeA}, 0, true, uint64(i), url))
	}
	measure := func(d time.Duration) []time.Duration {
		var mu sync.Mutex
		var lat []time.Duration
		mctx, stop := context.WithTimeout(ctx, d)
		defer stop()
		var wg sync.WaitGroup
		for _, h := range honest {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for mctx.Err() == nil {
					h.makeOps(1)
					begin := time.Now()
					ok := h.push(mctx, false)
					ok = ok && h.pullAll(mctx, 500)
					if ok {
						mu.Lock()
						lat = append(lat, time.Since(begin))
						mu.Unlock()
					}
					sleep(mctx, 50*time.Millisecond)
				}
			}()
		}
		wg.Wait()
		slices.Sort(lat)
		return lat
	}
	before := measure(1500 * time.Millisecond)
	rssBefore := rss(t, pid, "VmRSS")

	// 1,000 sockets from 250 client addresses: the quiet ones 8 to a device, the greedy
	// ones a device each (so that their pulls are not refused by the device's rate
	// limit: they must be answered, and the answers must pile up). All are devices of
	// the district's admin: every change in the district pokes them.
	n := quiet + greedy
	var regs []registration
	for i := range quiet/perDevice + 1 + greedy {
		regs = append(regs, registerDevice(t, w.admin, w.userD, fmt.Sprintf("slow-%d", i)))
	}
	device := func(i int) registration {
		if i < quiet {
			return regs[i/perDevice]
		}
		return regs[quiet/perDevice+1+i-quiet]
	}
	readers := make([]*websocket.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	begin := time.Now()
	for worker := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := worker; i < n; i += 16 {
				reg := device(i)
				ws, err := dialFrom(ctx, url, loopback(300+i%250), 4096)
				if err != nil {
					errs <- err
					return
				}
				readers[i] = ws
				msgs := []wire.Message{&wire.Hello{Protocol: 1, DeviceID: reg.DeviceID, Token: reg.Token, SchemaVersion: 1}}
				if i >= quiet {
					// About 11 MB of answers: more than the kernel's socket buffers (up to
					// 4 MB here) and the server's send queue (4 MiB) hold.
					for range 14 {
						msgs = append(msgs, &wire.Pull{Limit: 500})
					}
				}
				for _, m := range msgs {
					_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
					if err := ws.WriteMessage(websocket.TextMessage, wire.MustEncode(m)); err != nil {
						errs <- fmt.Errorf("reader %d: %w", i, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	defer func() {
		for _, ws := range readers {
			if ws != nil {
				ws.Close()
			}
		}
	}()
	t.Logf("1,000 slow readers connected in %v", time.Since(begin).Round(time.Millisecond))
	var smu sync.Mutex
	var samples []int
	sctx, stopSampling := context.WithCancel(ctx)
	var sw sync.WaitGroup
	sw.Add(1)
	go func() {
		defer sw.Done()
		for sctx.Err() == nil {
			kb := rss(t, pid, "VmRSS")
			smu.Lock()
			samples = append(samples, kb)
			smu.Unlock()
			sleep(sctx, 100*time.Millisecond)
		}
	}()

	// The greedy readers' answers pile up until the server cuts them (it logs each).
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(readFile(srv.logPath), "sync slow reader disconnected") < greedy && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	cutAfter := time.Since(begin)
	// What reached them ends in an error, not a timeout.
	var dmu sync.Mutex
	disconnected, slowClose := 0, 0
	for _, ws := range readers[quiet:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					var ce *websocket.CloseError
					dmu.Lock()
					if errors.As(err, &ce) && ce.Text == "slow reader" {
						slowClose++
					}
					if !isTimeout(err) {
						disconnected++
					}
					dmu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()

	// Memory stays flat while the pokes flow to the quiet sockets that remain.
	rssQuiet := rss(t, pid, "VmRSS")
	smu.Lock()
	flatFrom := len(samples)
	smu.Unlock()
	during := measure(4 * time.Second)
	stopSampling()
	sw.Wait()
	peak := slices.Max(samples)
	flatPeak := slices.Max(samples[flatFrom:])

	mb := func(kb int) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }
	t.Logf("slow readers: server RSS before %s, peak with 1,000 slow sockets %s, with the %d quiet ones %s, peak while pokes flow to them %s",
		mb(rssBefore), mb(peak), quiet, mb(rssQuiet), mb(flatPeak))
	t.Logf("honest devices, push+pull round trip: before p50=%v p99=%v (%d round trips), while every push pokes the %d quiet sockets p50=%v p99=%v (%d)",
		pct(before, 50), pct(before, 99), len(before), quiet, pct(during, 50), pct(during, 99), len(during))
	t.Logf("greedy readers (14 pulls of 800 kB unread) disconnected: %d of %d, %v after connecting (%d saw the close frame 1008 \"slow reader\"; the others' buffers were full)",
		disconnected, greedy, cutAfter.Round(time.Millisecond), slowClose)

	if disconnected != greedy {
		t.Errorf("%d of %d greedy slow readers were disconnected", disconnected, greedy)
	}
	if raceEnabled {
		// The race detector multiplies memory and time: the figures mean nothing then.
		t.Log("race detector on: memory and latency bounds not checked")
	} else {
		// Each idle socket costs tens of kB; a greedy one at most its send queue (4 MiB)
		// and the message being written.
		if bound := n*96 + greedy*8*1024 + 48*1024; peak-rssBefore > bound {
			t.Errorf("memory grew by %s, more than the bound %s", mb(peak-rssBefore), mb(bound))
		}
		if grow := flatPeak - rssQuiet; grow > 16*1024 {
			t.Errorf("memory grew by %s while the pokes flowed to sockets that do not read", mb(grow))
		}
		// The machine may be busy: generous, but far below what a server that buffers
		// for slow readers or stalls on them would show.
		if len(during) < 15 || pct(during, 50) > 500*time.Millisecond || pct(during, 99) > 2*time.Second {
			t.Errorf("honest devices suffered: %d round trips, p50 %v, p99 %v", len(during), pct(during, 50), pct(during, 99))
		}
	}
	for _, h := range honest {
		if st := h.Stats(); st.rejected > 0 || st.pokes == 0 {
			t.Errorf("%s: %d rejected, %d pokes", h.name, st.rejected, st.pokes)
		}
	}
	if srv.LogContains("panic") {
		t.Errorf("the server log mentions a panic")
	}
}

// rss returns a memory figure (VmRSS, VmHWM) of a process from /proc, in kB.
func rss(tb testing.TB, pid int, field string) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		tb.Fatalf("read the server's memory: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return kb
		}
	}
	return 0
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)].Round(time.Millisecond)
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}
