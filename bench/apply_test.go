package bench_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/bench"
)

// BenchmarkApply measures Store.Apply alone (no WebSocket, no JSON): per iteration,
// each of D devices (of D teachers) applies one device batch of 500 backlog ops at
// once. "creates" is the backlog as it is written (every op a new record); "updates"
// edits the records of the device's previous batch (two fields each, as a teacher
// completes her notes), applied in a shuffled order.
func BenchmarkApply(b *testing.B) {
	for _, kind := range []string{"creates", "updates"} {
		for _, devices := range []int{1, 10} {
			b.Run(fmt.Sprintf("%s/devices=%d", kind, devices), func(b *testing.B) {
				benchApply(b, kind, devices)
			})
		}
	}
}

func benchApply(b *testing.B, kind string, devices int) {
	ctx := context.Background()
	dsn, db := newDB(b, "apply", bench.Spec{Schools: 30, Teachers: 300, Exchanges: 300, Users: 300, DevicesPerUser: 1})
	store := benchStore(b, dsn)
	ctxs := make([]context.Context, devices)
	logs := make([]*bench.Backlog, devices)
	for i := range ctxs {
		actor, err := store.AuthenticateToken(ctx, bench.DeviceToken(i, 0))
		if err != nil {
			b.Fatal(err)
		}
		ctxs[i] = jiaoliu.NewContextWithActor(ctx, actor)
		logs[i] = bench.NewBacklog(bench.ExchangeID(i), bench.DeviceID(i, 0), start)
	}
	const batch = 500
	apply := func(i int, ops []jiaoliu.Op) error {
		res, err := store.Apply(ctxs[i], jiaoliu.Batch{Ops: ops})
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Status != jiaoliu.StatusApplied {
				return fmt.Errorf("op %s: %+v", r.OpID, r)
			}
		}
		return nil
	}
	run := func(work [][]jiaoliu.Op) {
		var wg sync.WaitGroup
		errs := make(chan error, devices)
		for i := range work {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if err := apply(i, work[i]); err != nil {
					errs <- err
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	var goCPU, pgCPU time.Duration
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		work := make([][]jiaoliu.Op, devices)
		for i := range work {
			work[i] = logs[i].Batch(batch)
		}
		if kind == "updates" {
			run(work) // the records to edit, untimed
			for i := range work {
				work[i] = logs[i].Edits(work[i], int64(it))
			}
		}
		cpu := bench.StartCPU(ctx, db)
		b.StartTimer()
		run(work)
		b.StopTimer()
		g, p := cpu.Stop()
		goCPU, pgCPU = goCPU+g, pgCPU+p
	}
	ops := float64(b.N * devices * batch)
	b.ReportMetric(ops/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(goCPU.Microseconds())/ops, "go-µs/op")
	b.ReportMetric(float64(pgCPU.Microseconds())/ops, "pg-µs/op")
	b.ReportMetric(0, "ns/op")
}
