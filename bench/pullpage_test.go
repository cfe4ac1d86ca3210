package bench_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/bench"
)

// BenchmarkPullPage measures the store's side of a pull alone (no WebSocket, no device):
// the pages of 500 of a teacher's 20,000 lessons (BENCH_PULL_RECORDS), read one after
// another from the start, as BenchmarkBootstrap's server reads them. It reports the time
// and this process's CPU and allocations per page: what a server spends on each page of
// a morning's wave of tablets pulling.
func BenchmarkPullPage(b *testing.B) {
	ctx := context.Background()
	n := envInt("BENCH_PULL_RECORDS", 20000)
	store := benchStore(b, teacherWithLessons(b, "pullpage", n))
	actor, err := store.AuthenticateDevice(ctx, bench.DeviceToken(0, 0))
	if err != nil {
		b.Fatal(err)
	}
	ctx = jiaoliu.NewContextWithActor(ctx, actor)
	bootstrap := func() (pages, records int) {
		cursor := ""
		for {
			recs, next, more, err := store.Pull(ctx, cursor, 500)
			if err != nil {
				b.Fatal(err)
			}
			pages, records, cursor = pages+1, records+len(recs), next
			if !more {
				return pages, records
			}
		}
	}
	bootstrap() // warm: the plans, the tables in the cache
	var ms0, ms1 runtime.MemStats
	pages, records := 0, 0
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	cpu := bench.StartCPU(ctx, store.DB())
	b.ResetTimer()
	t0 := time.Now()
	for range b.N {
		p, r := bootstrap()
		pages, records = pages+p, records+r
	}
	elapsed := time.Since(t0)
	b.StopTimer()
	goCPU, pgCPU := cpu.Stop()
	runtime.ReadMemStats(&ms1)
	if records < n*b.N {
		b.Fatalf("pulled %d records, want at least %d", records, n*b.N)
	}
	b.ReportMetric(float64(elapsed.Microseconds())/float64(pages), "µs/page")
	b.ReportMetric(float64(goCPU.Microseconds())/float64(pages), "go-µs/page")
	b.ReportMetric(float64(pgCPU.Microseconds())/float64(pages), "pg-µs/page")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(pages), "allocs/page")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(pages)/1024, "KiB/page")
	b.ReportMetric(0, "ns/op")
}
