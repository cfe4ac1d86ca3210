package cpustat

import (
	"os"
	"testing"
	"time"
)

func TestOwnProcess(t *testing.T) {
	before := Self()
	// Busy until this process has used 50 ms of CPU (five of /proc's 10 ms ticks, which
	// Of reads): a loop of so much wall time got no tick on a loaded machine.
	deadline := time.Now().Add(10 * time.Second)
	n := 0
	for time.Now().Before(deadline) && Self()-before < 50*time.Millisecond {
		n++
	}
	if after := Self(); after <= before {
		t.Errorf("Self did not grow over a busy loop of %d turns: %v → %v", n, before, after)
	}
	p, err := Of(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p.PPID != os.Getppid() {
		t.Errorf("PPID %d, want %d", p.PPID, os.Getppid())
	}
	if p.CPU <= 0 {
		t.Errorf("CPU %v after a busy loop", p.CPU)
	}
	if tree := Tree(os.Getpid()); tree < p.CPU {
		t.Errorf("Tree %v below the process's own %v", tree, p.CPU)
	}
	if _, err := Of(-1); err == nil {
		t.Error("Of(-1) found a process")
	}
}
