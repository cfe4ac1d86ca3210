package bench_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu/bench"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// BenchmarkPushSlowLink measures one tablet pushing an offline backlog of 5,000 ops in
// batches of 500 over a village school's link (bench.SlowLink: 100 ms each way, 8
// Mbit/s each way), with each ack awaited before the next batch is sent (window=1) and
// with two batches in flight (window=2, what the client package does): the time from
// the first byte sent to the last ack, and ops per second.
func BenchmarkPushSlowLink(b *testing.B) {
	for _, window := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			benchPushSlowLink(b, window, 100*time.Millisecond, 8_000_000)
		})
	}
}

func benchPushSlowLink(b *testing.B, window int, delay time.Duration, bps int) {
	ctx := context.Background()
	dsn, _ := newDB(b, "slowlink", bench.Spec{Schools: 3, Teachers: 10, Exchanges: 10, Users: 10, DevicesPerUser: 1})
	srv, err := bench.StartServer(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	link, err := bench.NewSlowLink(strings.TrimPrefix(srv.URL, "http://"), delay, bps)
	if err != nil {
		b.Fatal(err)
	}
	defer link.Close()
	d, err := bench.Dial(ctx, "ws://"+link.Addr+"/sync", bench.DeviceID(0, 0), bench.DeviceToken(0, 0), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	log := bench.NewBacklog(bench.ExchangeID(0), bench.DeviceID(0, 0), start)
	const ops, batch = 5000, 500
	var elapsed time.Duration
	var bytes int
	b.ResetTimer()
	b.StopTimer()
	for it := 0; it < b.N; it++ {
		var pushes []*bench.EncodedPush
		for k := 0; k < ops/batch; k++ {
			p, err := bench.EncodePush(&wire.Push{BatchID: fmt.Sprintf("s-%d-%d", it, k), Ops: log.Batch(batch)})
			if err != nil {
				b.Fatal(err)
			}
			bytes += p.Len()
			pushes = append(pushes, p)
		}
		b.StartTimer()
		t0 := time.Now()
		err := d.PushEncodedAll(ctx, pushes, window, func(_ int, ack *wire.Ack, e *wire.Error) error {
			if e != nil {
				return e
			}
			for _, r := range ack.Results {
				if r.Status == "rejected" {
					return fmt.Errorf("op rejected: %s %s", r.Code, r.Message)
				}
			}
			return nil
		})
		elapsed += time.Since(t0)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(ops*b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/backlog")
	b.ReportMetric(float64(bytes)/float64(ops*b.N), "bytes/op")
	b.ReportMetric(0, "ns/op")
}
