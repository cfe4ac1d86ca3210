package bench_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/bench"
)

// BenchmarkCopy writes the rows of the push benchmark's ops (record, change log, audit,
// stored result) with COPY, in transactions of 500 ops, from 1 and 2 connections: the
// raw rate the push rate is compared with.
func BenchmarkCopy(b *testing.B) {
	for _, conns := range []int{1, 2} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			ctx := context.Background()
			_, db := newDB(b, "copy", bench.Spec{Schools: 30, Teachers: 300, Exchanges: 300, Users: 300, DevicesPerUser: 1})
			const batch = 500
			per := (pushOps(batch) + conns*batch - 1) / (conns * batch)
			logs := make([]*bench.Backlog, conns)
			scopes := make([][]string, conns)
			for i := range logs {
				logs[i] = bench.NewBacklog(bench.ExchangeID(i), bench.DeviceID(i, 0), start)
				if err := db.QueryRowContext(ctx, `SELECT exchange_child_tokens($1, NULL)`, bench.ExchangeID(i)).Scan(pq.Array(&scopes[i])); err != nil {
					b.Fatal(err)
				}
			}
			total := 0
			var goCPU, pgCPU time.Duration
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				b.StopTimer()
				work := make([][][]jiaoliu.Op, conns)
				for i := range work {
					for k := 0; k < per; k++ {
						work[i] = append(work[i], logs[i].Batch(batch))
					}
				}
				cpu := bench.StartCPU(ctx, db)
				b.StartTimer()
				var wg sync.WaitGroup
				errs := make(chan error, conns)
				for i := range work {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						for _, ops := range work[i] {
							if err := bench.CopyOps(ctx, db, ops, scopes[i], bench.UserID(i), bench.DeviceID(i, 0)); err != nil {
								errs <- err
								return
							}
						}
					}(i)
				}
				wg.Wait()
				b.StopTimer()
				g, p := cpu.Stop()
				goCPU, pgCPU = goCPU+g, pgCPU+p
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
				total += conns * per * batch
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "ops/s")
			b.ReportMetric(float64(goCPU.Microseconds())/float64(total), "go-µs/op")
			b.ReportMetric(float64(pgCPU.Microseconds())/float64(total), "pg-µs/op")
			b.ReportMetric(0, "ns/op")
		})
	}
}
