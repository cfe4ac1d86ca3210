package pgcluster

import (
	"context"
	"errors"
	"io/fs"
	"testing"
)

// TestPgCtlStopOfServerAlreadyGone is the race a restart can lose: a previous
// run began a shutdown and was killed, the new run read postmaster.pid while
// the old server was still up, and the server finished its shutdown before
// pg_ctl read the file ("PID file does not exist"). That server is stopped,
// not an error.
func TestPgCtlStopOfServerAlreadyGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := Start(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	pf, err := readPIDFile(c.dataDir)
	if err != nil {
		t.Fatalf("read postmaster.pid of a running server: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := readPIDFile(c.dataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("postmaster.pid after Stop: err=%v, want not exist", err)
	}
	if err := c.pgCtlStop(ctx, pf.pid); err != nil {
		t.Fatalf("pgCtlStop of a server that stopped after its postmaster.pid was read: %v", err)
	}
	// A postmaster still alive is not taken for stopped: pid 1 never ends.
	if err := c.pgCtlStop(ctx, 1); err == nil {
		t.Fatal("pgCtlStop with no postmaster.pid but a live pid returned nil, want pg_ctl's error")
	}
}
