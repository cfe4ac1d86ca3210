// Package cpustat reads the processor time of processes from /proc, for benchmarks that
// report CPU per operation beside their rates: on a shared machine a rate moves with the
// load of others, the CPU an operation costs much less.
package cpustat

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the kernel's USER_HZ (100 on every Linux we run on).
const clockTick = 100

// Self returns the user and system time this process has used.
func Self() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Process is what /proc/<pid>/stat says of a process's processor time.
type Process struct {
	PPID     int
	CPU      time.Duration // user and system time
	Children time.Duration // user and system time of its exited, waited-for children
}

// Of reads the processor time of process pid.
func Of(pid int) (Process, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Process{}, err
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Process{}, fmt.Errorf("proc stat of %d: no command", pid)
	}
	// After the command: state ppid … utime stime cutime cstime (fields 3… of proc(5)).
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return Process{}, fmt.Errorf("proc stat of %d: %d fields", pid, len(f))
	}
	n := func(k int) int { v, _ := strconv.Atoi(f[k]); return v }
	ticks := func(a, b int) time.Duration { return time.Duration(n(a)+n(b)) * time.Second / clockTick }
	return Process{PPID: n(1), CPU: ticks(11, 12), Children: ticks(13, 14)}, nil
}

// Tree returns the processor time of process pid, its live children and the children
// it has waited for: a PostgreSQL cluster's, given its postmaster.
func Tree(pid int) time.Duration {
	p, err := Of(pid)
	if err != nil {
		return 0
	}
	total := p.CPU + p.Children
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		child, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if c, err := Of(child); err == nil && c.PPID == pid {
			total += c.CPU
		}
	}
	return total
}
