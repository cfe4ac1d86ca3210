package bench_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/bench"
	"github.com/jiaoliu/jiaoliu/sync/client"
)

// BenchmarkTabletSync measures what a teacher waits for when her tablet's link comes
// up after days offline: one tablet on the device library (sync/client, its SQLite
// replica) with a backlog of 2,000 ops written offline, none or 20 % of them edits of
// records it wrote shortly before (bench.WriteTabletBacklog), runs one Sync (the outbox
// pushed, the teacher's scope pulled, the replica verified) over loopback and over a
// village school's link (bench.SlowLink: 100 ms and 8 Mbit/s each way). It reports the
// seconds of the Sync and the pushes it took. Each iteration is another teacher's
// tablet (up to 10: -benchtime 3x, say).
func BenchmarkTabletSync(b *testing.B) {
	for _, link := range []string{"loopback", "village"} {
		for _, edits := range []float64{0, 0.2} {
			b.Run(fmt.Sprintf("link=%s/edits=%.1f", link, edits), func(b *testing.B) {
				benchTabletSync(b, link == "village", edits)
			})
		}
	}
}

func benchTabletSync(b *testing.B, village bool, editShare float64) {
	const teachers, ops = 10, 2000
	if b.N > teachers {
		b.Fatalf("at most %d iterations (-benchtime %dx)", teachers, teachers)
	}
	ctx := context.Background()
	dsn, _ := newDB(b, "tablet", bench.Spec{Schools: 3, Teachers: teachers, Exchanges: teachers, Users: teachers, DevicesPerUser: 1})
	srv, err := bench.StartServer(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	pushes := &pushCounter{}
	srv.Sync.Observer = pushes
	url := srv.URL
	if village {
		link, err := bench.NewSlowLink(strings.TrimPrefix(srv.URL, "http://"), 100*time.Millisecond, 8_000_000)
		if err != nil {
			b.Fatal(err)
		}
		defer link.Close()
		url = "http://" + link.Addr
	}
	var elapsed time.Duration
	var records int
	b.ResetTimer()
	b.StopTimer()
	for it := 0; it < b.N; it++ {
		c, err := client.Open(filepath.Join(b.TempDir(), "tablet.db"), client.Config{
			ServerURL: url, DeviceID: bench.DeviceID(it, 0), Token: bench.DeviceToken(it, 0)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bench.WriteTabletBacklog(ctx, c, bench.ExchangeID(it), start, ops, editShare, uint64(it)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		err = c.Sync(ctx)
		elapsed += time.Since(t0)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		st, err := c.Status(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if st.Outbox != 0 || st.Rejections != 0 || !st.VerifyOK {
			b.Fatalf("after the sync: %d ops pending, %d rejected, verified %v", st.Outbox, st.Rejections, st.VerifyOK)
		}
		records += st.Records
		c.Close()
	}
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/sync")
	b.ReportMetric(float64(ops*b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(pushes.n.Load())/float64(b.N), "pushes/sync")
	b.ReportMetric(float64(records)/float64(b.N), "records/sync")
	b.ReportMetric(0, "ns/op")
}

// pushCounter is the sync server's Observer in the benchmark (bench.StartServer sets
// none): it counts the pushes committed.
type pushCounter struct{ n atomic.Int64 }

func (p *pushCounter) Connected(string)                 {}
func (p *pushCounter) Disconnected(string)              {}
func (p *pushCounter) Pulled(*jiaoliu.Actor, int, bool) {}
func (p *pushCounter) Pushed(*jiaoliu.Actor, string, []jiaoliu.Op, []jiaoliu.OpResult) {
	p.n.Add(1)
}
