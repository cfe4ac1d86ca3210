package bench_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu/bench"
)

// BenchmarkCopy writes the rows of the push benchmark's ops (record, change log, audit,
// stored result) with COPY, in transactions of 500 ops, from 1 and 2 connections: the
// raw rate the push rate is compared with. (BenchmarkPush at batch 500 also measures
// COPY in its own database, around its pushes: see benchPush.) records=only/conns=2
// writes the records alone, without the three rows the write path adds to each: the
// bound of any server storing them durably in PostgreSQL (the peers' rates are
// compared with it in BENCHMARKS.md).
func BenchmarkCopy(b *testing.B) {
	for _, cfg := range []struct {
		name        string
		conns       int
		recordsOnly bool
	}{{"conns=1", 1, false}, {"conns=2", 2, false}, {"records=only/conns=2", 2, true}} {
		b.Run(cfg.name, func(b *testing.B) {
			conns := cfg.conns
			_, db := newDB(b, "copy", bench.Spec{Schools: 30, Teachers: 300, Exchanges: 300, Users: 300, DevicesPerUser: 1})
			w := newCopyWriter(b, db, conns, 0, conns)
			w.recordsOnly = cfg.recordsOnly
			var c copyRun
			for it := 0; it < b.N; it++ {
				c.add(w.run(b, pushOps(500)))
			}
			b.ReportMetric(c.rate(), "ops/s")
			b.ReportMetric(float64(c.goCPU.Microseconds())/float64(c.ops), "go-µs/op")
			b.ReportMetric(float64(c.pgCPU.Microseconds())/float64(c.ops), "pg-µs/op")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// copyWriter writes backlogs of ops with COPY (bench.CopyBatch) in transactions of 500
// ops from conns connections, spread over the backlogs of exchanges first …
// first+exchanges-1 (of users and devices of the same numbers), continued from run to
// run: connection i writes the batches of exchanges i, i+conns, i+2·conns … in turn.
// The push benchmark spreads them as its devices do (one exchange per device), so that
// the COPY writes rows of as many exchanges (their scope tokens, statistics rows,
// index pages) as the pushes it is compared with.
type copyWriter struct {
	db     *sqlx.DB
	first  int
	conns  int
	logs   []*bench.Backlog
	scopes [][]string
	next   []int // per connection, its next exchange (an index into logs)
	// recordsOnly writes the records alone (CopyBatch.RecordsOnly).
	recordsOnly bool
}

func newCopyWriter(b *testing.B, db *sqlx.DB, conns, first, exchanges int) *copyWriter {
	exchanges = max(exchanges, conns)
	w := &copyWriter{db: db, first: first, conns: conns, logs: make([]*bench.Backlog, exchanges), scopes: make([][]string, exchanges), next: make([]int, conns)}
	for i := range w.logs {
		k := first + i
		w.logs[i] = bench.NewBacklog(bench.ExchangeID(k), bench.DeviceID(k, 0), start)
		if err := db.QueryRowContext(context.Background(), `SELECT exchange_child_tokens($1, NULL)`, bench.ExchangeID(k)).Scan(pq.Array(&w.scopes[i])); err != nil {
			b.Fatal(err)
		}
	}
	for c := range w.next {
		w.next[c] = c
	}
	return w
}

// copyRun is what COPY runs wrote: ops, wall time and CPU of this process and of the
// cluster.
type copyRun struct {
	ops          int
	elapsed      time.Duration
	goCPU, pgCPU time.Duration
}

func (c *copyRun) add(d copyRun) {
	c.ops, c.elapsed, c.goCPU, c.pgCPU = c.ops+d.ops, c.elapsed+d.elapsed, c.goCPU+d.goCPU, c.pgCPU+d.pgCPU
}

func (c *copyRun) rate() float64 { return float64(c.ops) / c.elapsed.Seconds() }

// run writes at least ops ops, in whole batches of 500 on every connection, timed once
// they are generated.
func (w *copyWriter) run(b *testing.B, ops int) copyRun {
	ctx := context.Background()
	const batch = 500
	conns := w.conns
	per := (ops + conns*batch - 1) / (conns * batch)
	work := make([][]*bench.CopyBatch, conns)
	for c := range work {
		for range per {
			x := w.next[c]
			if w.next[c] += conns; w.next[c] >= len(w.logs) {
				w.next[c] = c
			}
			k := w.first + x
			cb, err := bench.NewCopyBatch(ctx, w.db, w.logs[x].Batch(batch), w.scopes[x], bench.UserID(k), bench.DeviceID(k, 0))
			if err != nil {
				b.Fatal(err)
			}
			if w.recordsOnly {
				cb = cb.RecordsOnly()
			}
			work[c] = append(work[c], cb)
		}
	}
	cpu := bench.StartCPU(ctx, w.db)
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range work {
		wg.Go(func() {
			for _, cb := range work[i] {
				if err := cb.Write(ctx, w.db); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(t0)
	g, p := cpu.Stop()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return copyRun{ops: conns * per * batch, elapsed: el, goCPU: g, pgCPU: p}
}
