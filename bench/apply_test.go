package bench_test

import (
	"context"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/bench"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// BenchmarkApply measures Store.Apply alone (no WebSocket, no JSON): one device batch
// of 500 backlog ops per iteration, as the teacher's device.
func BenchmarkApply(b *testing.B) {
	ctx := context.Background()
	dsn, _ := newDB(b, "apply", bench.Spec{Schools: 30, Teachers: 300, Exchanges: 300, Users: 300, DevicesPerUser: 1})
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	store := postgres.NewStore(db, hlc.NewClock("bench"), nil)
	actor, err := store.AuthenticateToken(ctx, bench.DeviceToken(0, 0))
	if err != nil {
		b.Fatal(err)
	}
	ctx = jiaoliu.NewContextWithActor(ctx, actor)
	bl := bench.NewBacklog(bench.ExchangeID(0), bench.DeviceID(0, 0), start)
	const batch = 500
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ops := bl.Batch(batch)
		b.StartTimer()
		res, err := store.Apply(ctx, jiaoliu.Batch{Ops: ops})
		if err != nil {
			b.Fatal(err)
		}
		if res[0].Status != jiaoliu.StatusApplied {
			b.Fatal(res[0])
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "ops/s")
}
