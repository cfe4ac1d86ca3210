package bench_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/bench"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// rxdbRounds counts BenchmarkRxDB's rounds in this process: odd rounds run RxDB
// first, so that a drift in the machine's load does not always favour one side.
var rxdbRounds int

// rxdbAdminToken is the device token of the district admin's tablet, the fresh client
// that pulls everything on our side.
const rxdbAdminToken = "dev_bench_rxdb_admin"

// BenchmarkRxDB runs the push benchmark's documents through our server and through
// RxDB 17's websocket replication (bench/peers, rxdb-bench.js) in the same run, back
// to back: CLIENTS clients (devices of as many teachers) each push DOCS documents of a
// teacher's backlog in batches of BATCH, timed until the server holds them all (ours:
// every batch acked, i.e. committed with fsync; RxDB: its in-memory server's count),
// connections included on both sides; then one fresh client pulls everything (ours:
// a district admin's device). It reports both rates and our rate divided by RxDB's.
// Skipped when node or the npm packages are absent. One round per iteration; run it
// with -benchtime 1x -count 3 and read the range.
//
// Knobs: BENCH_RXDB_CLIENTS (20), BENCH_RXDB_DOCS (2,000), BENCH_RXDB_BATCH (500).
func BenchmarkRxDB(b *testing.B) {
	peers, err := filepath.Abs("peers")
	if err != nil {
		b.Fatal(err)
	}
	if err := bench.RxDBAvailable(peers); err != nil {
		b.Skipf("RxDB peer skipped: %v", err)
	}
	clients, docs, batch := envInt("BENCH_RXDB_CLIENTS", 20), envInt("BENCH_RXDB_DOCS", 2000), envInt("BENCH_RXDB_BATCH", 500)
	if batch > 500 {
		b.Fatalf("BENCH_RXDB_BATCH=%d: our server's maxBatch is 500", batch)
	}
	ctx := context.Background()
	var ours, theirs rxdbRound
	for it := 0; it < b.N; it++ {
		r := runRxDBRound(b, ctx, peers, clients, docs, batch)
		ours.add(r.ours)
		theirs.add(r.theirs)
	}
	n := float64(b.N)
	b.ReportMetric(ours.push/n, "ours-push-ops/s")
	b.ReportMetric(theirs.push/n, "rxdb-push-docs/s")
	b.ReportMetric(ours.push/theirs.push, "push-ours/rxdb")
	b.ReportMetric(theirs.pushOnly/n, "rxdb-pushonly-docs/s")
	b.ReportMetric(ours.push/theirs.pushOnly, "pushonly-ours/rxdb")
	b.ReportMetric(ours.pull/n, "ours-pull-rec/s")
	b.ReportMetric(theirs.pull/n, "rxdb-pull-docs/s")
	b.ReportMetric(ours.pull/theirs.pull, "pull-ours/rxdb")
	b.ReportMetric(0, "ns/op")
}

// rxdbRound holds the rates of one side of a round (or their sums).
type rxdbRound struct{ push, pushOnly, pull float64 }

func (r *rxdbRound) add(o rxdbRound) {
	r.push, r.pushOnly, r.pull = r.push+o.push, r.pushOnly+o.pushOnly, r.pull+o.pull
}

func runRxDBRound(b *testing.B, ctx context.Context, peers string, clients, docs, batch int) (res struct{ ours, theirs rxdbRound }) {
	round := rxdbRounds
	rxdbRounds++
	dsn, db := newDB(b, "rxdb", bench.Spec{Schools: 10, Teachers: clients, Exchanges: clients, Users: clients, DevicesPerUser: 1})
	if _, err := db.ExecContext(ctx, `INSERT INTO devices (id, user_id, name, token_hash)
		VALUES ($1, $2, 'district tablet', sha256(convert_to($3, 'UTF8')))`,
		bench.ID("device/rxdb-admin", 0), bench.DistrictAdminID, rxdbAdminToken); err != nil {
		b.Fatal(err)
	}
	// The same documents for both sides: each client's backlog, as the push benchmark
	// writes it (RxDB gets each op's record id and fields).
	ops := make([][]jiaoliu.Op, clients)
	for i := range ops {
		ops[i] = bench.NewBacklog(bench.ExchangeID(i), bench.DeviceID(i, 0), time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)).Batch(docs)
	}
	total := clients * docs

	runOurs := func() {
		load0 := loadavg()
		srv, err := bench.StartServer(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		pushSecs, err := oursPush(ctx, srv.WSURL, ops, batch)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		admin, err := bench.Dial(ctx, srv.WSURL, bench.ID("device/rxdb-admin", 0), rxdbAdminToken, nil)
		if err != nil {
			b.Fatal(err)
		}
		pulled, _, err := admin.PullAll(ctx, batch)
		pullSecs := time.Since(t0).Seconds()
		admin.Close()
		if err != nil {
			b.Fatal(err)
		}
		if pulled < total {
			b.Fatalf("our fresh device pulled %d records, want at least %d", pulled, total)
		}
		res.ours = rxdbRound{push: float64(total) / pushSecs, pull: float64(pulled) / pullSecs}
		b.Logf("round %d ours: push %d ops in %.2f s = %.0f ops/s; pull %d records in %.2f s = %.0f records/s; load %s → %s",
			round, total, pushSecs, res.ours.push, pulled, pullSecs, res.ours.pull, load0, loadavg())
	}
	runTheirs := func() {
		load0 := loadavg()
		rx, err := bench.RunRxDB(ctx, peers, ops, batch, true)
		if err != nil {
			b.Fatal(err)
		}
		if rx.Push.Errors+rx.PushOnly.Errors+rx.Pull.Errors+rx.Push.ConnectAborts+rx.PushOnly.ConnectAborts+rx.Pull.ConnectAborts > 0 {
			b.Logf("round %d RxDB replication errors (retried by RxDB): push %d, push-only %d, pull %d (first: %s %s); connection attempts timed out (retried): %d, %d, %d",
				round, rx.Push.Errors, rx.PushOnly.Errors, rx.Pull.Errors, rx.Push.FirstError, rx.PushOnly.FirstError,
				rx.Push.ConnectAborts, rx.PushOnly.ConnectAborts, rx.Pull.ConnectAborts)
		}
		res.theirs = rxdbRound{push: rx.Push.DocsPerSec, pushOnly: rx.PushOnly.DocsPerSec, pull: rx.Pull.DocsPerSec}
		b.Logf("round %d %s, node %s: push %d docs in %.2f s = %.0f docs/s (clients had pulled %d docs of the others; CPU µs/doc server %.0f, clients %.0f); "+
			"push-only %.2f s = %.0f docs/s (CPU µs/doc %.0f, %.0f); pull %d docs in %.2f s = %.0f docs/s (CPU µs/doc %.0f, %.0f); load %s → %s",
			round, rx.Peer, rx.Node, rx.Docs, rx.Push.Secs, rx.Push.DocsPerSec, rx.Push.Received, rx.Push.ServerCPUMicrosPerDoc, rx.Push.ClientCPUMicrosPerDoc,
			rx.PushOnly.Secs, rx.PushOnly.DocsPerSec, rx.PushOnly.ServerCPUMicrosPerDoc, rx.PushOnly.ClientCPUMicrosPerDoc,
			rx.Pull.Pulled, rx.Pull.Secs, rx.Pull.DocsPerSec, rx.Pull.ServerCPUMicrosPerDoc, rx.Pull.ClientCPUMicrosPerDoc, load0, loadavg())
	}
	if round == 0 {
		b.Logf("machine: %d cores, %s, %s", runtime.NumCPU(), cpuModel(), kernel())
	}
	if round%2 == 0 {
		runOurs()
		runTheirs()
	} else {
		runTheirs()
		runOurs()
	}
	b.Logf("round %d ours÷RxDB: push %.2f× (push-only %.2f×), pull %.2f×", round,
		res.ours.push/res.theirs.push, res.ours.push/res.theirs.pushOnly, res.ours.pull/res.theirs.pull)
	return res
}

// oursPush has every client's device dial our server and push its ops in batches,
// with BENCH_PUSH_WINDOW of them (default 2, as our client) unacknowledged per device,
// and returns the seconds until every batch is acked. Encoding the batches is timed,
// as RxDB's clients' is.
func oursPush(ctx context.Context, wsURL string, ops [][]jiaoliu.Op, batch int) (float64, error) {
	window := envInt("BENCH_PUSH_WINDOW", 2)
	devs := make([]*bench.Device, len(ops))
	defer func() {
		for _, d := range devs {
			if d != nil {
				d.Close()
			}
		}
	}()
	errs := make(chan error, len(ops))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range ops {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d, err := bench.Dial(ctx, wsURL, bench.DeviceID(i, 0), bench.DeviceToken(i, 0), nil)
			if err != nil {
				errs <- err
				return
			}
			devs[i] = d
			var pushes []*bench.EncodedPush
			for k := 0; k < len(ops[i]); k += batch {
				p, err := bench.EncodePush(&wire.Push{BatchID: fmt.Sprintf("rxdb-%d-%d", i, k), Ops: ops[i][k:min(k+batch, len(ops[i]))]})
				if err != nil {
					errs <- err
					return
				}
				pushes = append(pushes, p)
			}
			err = d.PushEncodedAll(ctx, pushes, window, func(_ int, ack *wire.Ack, e *wire.Error) error {
				if e != nil {
					return fmt.Errorf("push: %w", e)
				}
				for _, r := range ack.Results {
					if r.Status != jiaoliu.StatusApplied {
						return fmt.Errorf("op %s: %s %s %s", r.OpID, r.Status, r.Code, r.Message)
					}
				}
				return nil
			})
			if err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	close(errs)
	return secs, <-errs
}

func loadavg() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(raw)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func cpuModel() string {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindSubmatch(raw); m != nil {
		return string(m[1])
	}
	return runtime.GOARCH
}

func kernel() string {
	raw, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(raw))
}

// TestRxDBDocsMatchSchema checks that the documents given to RxDB are the records of
// the ops, and that bench/peers/rxdb-schema.js declares every field the backlog
// writes. Needs neither node nor npm.
func TestRxDBDocsMatchSchema(t *testing.T) {
	bl := bench.NewBacklog(bench.ExchangeID(0), bench.DeviceID(0, 0), time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC))
	ops := bl.Batch(12)
	docs := bench.RxDBDocs([][]jiaoliu.Op{ops})
	if got, want := len(docs[0]), len(ops); got != want {
		t.Fatalf("docs=%d, want %d", got, want)
	}
	for k, op := range ops {
		d := docs[0][k]
		if d["id"] != op.ID || d["entity"] != op.Entity || d["date"] != op.Fields["date"] || d["exchangeId"] != op.Fields["exchangeId"] {
			t.Fatalf("doc %d = %v, want the record of %+v", k, d, op)
		}
	}
	schema, err := os.ReadFile(filepath.Join("peers", "rxdb-schema.js"))
	if err != nil {
		t.Fatal(err)
	}
	props := string(schema[strings.Index(string(schema), "properties:"):strings.Index(string(schema), "required:")])
	for _, client := range docs {
		for _, d := range client {
			for f := range d {
				if !regexp.MustCompile(`(?m)^\s*` + f + `:`).MatchString(props) {
					t.Errorf("rxdb-schema.js declares no field %q (doc %v)", f, d)
				}
			}
		}
	}
}
