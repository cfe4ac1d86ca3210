package bench_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu/bench"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// pushOps is the number of ops each push configuration sends in one iteration.
func pushOps(batch int) int {
	switch batch {
	case 1:
		return envInt("BENCH_PUSH_OPS_1", 3000)
	case 50:
		return envInt("BENCH_PUSH_OPS_50", 20000)
	}
	return envInt("BENCH_PUSH_OPS", 50000)
}

var start = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)

// BenchmarkPush measures ops applied and acknowledged per second: D devices (of D
// teachers), each pushing its backlog over its own WebSocket in batches of B with two
// batches unacknowledged at once, as the client package does (BENCH_PUSH_WINDOW=1:
// each ack awaited before the next batch is sent, as before session 22), against the
// in-process server. At batch 500 it also writes the
// same number of ops with COPY (bench.CopyBatch, 2 connections, spread over as many
// exchanges as there are devices, as the pushes are) into the same database,
// half just before the pushes and half just after, and reports that rate (copy-ops/s)
// and the push's share of it (copy-%): the speed of this shared machine drifts by tens
// of percent within minutes, and a COPY measured by BenchmarkCopy minutes earlier, in
// another database, made the ratio move with it.
func BenchmarkPush(b *testing.B) {
	for _, devices := range []int{1, 10, 100} {
		for _, batch := range []int{1, 50, 500} {
			b.Run(fmt.Sprintf("devices=%d/batch=%d", devices, batch), func(b *testing.B) {
				benchPush(b, devices, batch)
			})
		}
	}
}

func benchPush(b *testing.B, devices, batch int) {
	ctx := context.Background()
	dsn, db := newDB(b, "push", bench.Spec{Schools: 30, Teachers: 300, Exchanges: 300, Users: 300, DevicesPerUser: 1})
	srv, err := bench.StartServer(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	devs := make([]*bench.Device, devices)
	logs := make([]*bench.Backlog, devices)
	for i := range devs {
		if devs[i], err = bench.Dial(ctx, srv.WSURL, bench.DeviceID(i, 0), bench.DeviceToken(i, 0), nil); err != nil {
			b.Fatal(err)
		}
		defer devs[i].Close()
		logs[i] = bench.NewBacklog(bench.ExchangeID(i), bench.DeviceID(i, 0), start)
	}
	window := envInt("BENCH_PUSH_WINDOW", 2)
	per := (pushOps(batch) + devices*batch - 1) / (devices * batch) // batches per device
	total := 0
	var goCPU, pgCPU, elapsed time.Duration
	var copies *copyWriter // exchanges 200 … 200+devices-1: as many as the devices', none of theirs
	var copied copyRun
	if batch == 500 {
		copies = newCopyWriter(b, db, 2, 200, devices)
	}
	b.ResetTimer()
	b.StopTimer()
	for it := 0; it < b.N; it++ {
		if copies != nil {
			copied.add(copies.run(b, devices*per*batch/2))
		}
		// Build and encode the batches before the clock runs: generating and encoding
		// ops is the device's work.
		pushes := make([][]*bench.EncodedPush, devices)
		for i := range pushes {
			for k := 0; k < per; k++ {
				p, err := bench.EncodePush(&wire.Push{BatchID: fmt.Sprintf("b-%d-%d", it, k), Ops: logs[i].Batch(batch)})
				if err != nil {
					b.Fatal(err)
				}
				pushes[i] = append(pushes[i], p)
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, devices)
		cpu := bench.StartCPU(ctx, db)
		b.StartTimer()
		t0 := time.Now()
		for i := range devs {
			wg.Add(1)
			go func(d *bench.Device, ps []*bench.EncodedPush) {
				defer wg.Done()
				err := d.PushEncodedAll(ctx, ps, window, func(_ int, ack *wire.Ack, e *wire.Error) error {
					if e != nil {
						return fmt.Errorf("push: %w", e)
					}
					for _, r := range ack.Results {
						if r.Status == "rejected" {
							return fmt.Errorf("op rejected: %s %s %v", r.Code, r.Message, r.Fields)
						}
					}
					return nil
				})
				if err != nil {
					errs <- err
				}
			}(devs[i], pushes[i])
		}
		wg.Wait()
		elapsed += time.Since(t0)
		b.StopTimer()
		g, p := cpu.Stop()
		goCPU, pgCPU = goCPU+g, pgCPU+p
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		total += devices * per * batch
		if copies != nil {
			copied.add(copies.run(b, devices*per*batch/2))
		}
	}
	// How the server's connection pool held up (waits, connections closed and opened).
	b.Logf("pool %+v", srv.DB.Stats())
	rate := float64(total) / elapsed.Seconds()
	b.ReportMetric(rate, "ops/s")
	if copies != nil {
		b.ReportMetric(copied.rate(), "copy-ops/s")
		b.ReportMetric(100*rate/copied.rate(), "copy-%")
	}
	// CPU per op: "go" is this process, the server and the devices' clients together.
	b.ReportMetric(float64(goCPU.Microseconds())/float64(total), "go-µs/op")
	b.ReportMetric(float64(pgCPU.Microseconds())/float64(total), "pg-µs/op")
	b.ReportMetric(0, "ns/op")
}
