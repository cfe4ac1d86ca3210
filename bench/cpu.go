package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
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

// clockTick is the kernel's USER_HZ (100 on every Linux we run on).
const clockTick = 100

// StartCPU starts counting. db is any connection to the cluster: its backend's parent
// is the postmaster. Outside Linux it counts only this process.
func StartCPU(ctx context.Context, db *sqlx.DB) *CPU {
	c := &CPU{}
	var pid int
	if err := db.GetContext(ctx, &pid, `SELECT pg_backend_pid()`); err == nil {
		if f, err := procStat(pid); err == nil && len(f) > 1 {
			c.postmaster, _ = strconv.Atoi(f[1])
		}
	}
	c.goStart, c.pgStart = selfCPU(), c.pgCPU()
	return c
}

// Stop returns the CPU time this process and the cluster spent since StartCPU.
func (c *CPU) Stop() (goCPU, pgCPU time.Duration) {
	return selfCPU() - c.goStart, c.pgCPU() - c.pgStart
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pgCPU sums the user and system time of the postmaster's live children and what its
// exited children left in its counters.
func (c *CPU) pgCPU() time.Duration {
	if c.postmaster == 0 {
		return 0
	}
	ticks := 0
	if f, err := procStat(c.postmaster); err == nil && len(f) > 14 {
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime (after pid and comm)
			n, _ := strconv.Atoi(f[i])
			ticks += n
		}
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		f, err := procStat(pid)
		if err != nil || len(f) < 13 || f[1] != strconv.Itoa(c.postmaster) {
			continue
		}
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		ticks += u + s
	}
	return time.Duration(ticks) * time.Second / clockTick
}

// procStat returns the fields of /proc/pid/stat after the command name, with the
// state first: [state, ppid, ...] (field 3 of proc(5) at index 0).
func procStat(pid int) ([]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("proc stat of %d: no command", pid)
	}
	return strings.Fields(s[i+1:]), nil
}
