package bench

import (
	"context"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu/internal/cpustat"
)

// CPU samples the processor time spent by this process and by a PostgreSQL cluster
// (its postmaster, every backend and the background processes), so that a benchmark
// can report CPU per op next to its rate: on a shared machine the rate moves with the
// load of others, the CPU per op much less.
type CPU struct {
	postmaster int
	goStart    time.Duration
	pgStart    time.Duration
}

// StartCPU starts counting. db is any connection to the cluster: its backend's parent
// is the postmaster. Outside Linux it counts only this process.
func StartCPU(ctx context.Context, db *sqlx.DB) *CPU {
	c := &CPU{}
	var pid int
	if err := db.GetContext(ctx, &pid, `SELECT pg_backend_pid()`); err == nil {
		if p, err := cpustat.Of(pid); err == nil {
			c.postmaster = p.PPID
		}
	}
	c.goStart, c.pgStart = cpustat.Self(), c.pgCPU()
	return c
}

// Stop returns the CPU time this process and the cluster spent since StartCPU.
func (c *CPU) Stop() (goCPU, pgCPU time.Duration) {
	return cpustat.Self() - c.goStart, c.pgCPU() - c.pgStart
}

// pgCPU is the processor time of the postmaster's tree.
func (c *CPU) pgCPU() time.Duration {
	if c.postmaster == 0 {
		return 0
	}
	return cpustat.Tree(c.postmaster)
}
