package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu/bench"
)

// BenchmarkBootstrap measures one device pulling everything it may read from the start:
// a teacher whose exchange has 100,000 lessons (BENCH_BOOTSTRAP_RECORDS), in pages of
// 500 over its WebSocket, against the in-process server.
func BenchmarkBootstrap(b *testing.B) {
	ctx := context.Background()
	n := envInt("BENCH_BOOTSTRAP_RECORDS", 100000)
	dsn := teacherWithLessons(b, "bootstrap", n)
	srv, err := bench.StartServer(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	var records, bytes int
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := bench.Dial(ctx, srv.WSURL, bench.DeviceID(0, 0), bench.DeviceToken(0, 0), nil)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		records, bytes, err = d.PullAll(ctx, 500)
		total += time.Since(t0)
		d.Close()
		if err != nil {
			b.Fatal(err)
		}
		if records < n {
			b.Fatalf("pulled %d records, want at least %d", records, n)
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/bootstrap")
	b.ReportMetric(float64(records*b.N)/total.Seconds(), "records/s")
	b.ReportMetric(float64(bytes)/float64(1<<20), "MiB")
	b.ReportMetric(0, "ns/op")
}

// teacherWithLessons returns a fresh database whose one teacher (device 0 of user 0) may
// read an exchange of n lessons.
func teacherWithLessons(b *testing.B, name string, n int) string {
	dsn, _ := newDB(b, name, bench.Spec{Schools: 2, Teachers: 2, Exchanges: 1, Users: 1, DevicesPerUser: 1, LessonsPerXchg: n})
	return dsn
}
