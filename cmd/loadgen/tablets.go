package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/bench"
	"github.com/jiaoliu/jiaoliu/sync/client"
)

// The tablets phase runs devices on the project's own device library, sync/client, as a
// tablet app does: each has its own replica (SQLite, in a temporary directory), into
// which it writes an offline backlog through the library's API while the fleet is not
// yet connected: attendance, lessons and research activities, and, mixed in, edits of
// records it wrote a little earlier (a teacher completing in the evening what she
// noted in class). Then they come online at once and each runs one Sync: the outbox
// pushed in batches of the server's maxBatch with two in flight (an op that needs a
// batch in flight waits for its ack), every change in the device's scope pulled, the
// replica verified against the server's checksum. The raw pushers measure the server;
// this phase measures what a tablet waits for, with the client's own work included.

// tablet is one device of the tablets phase.
type tablet struct {
	teacher int
	c       *client.Client
	edits   int // of its backlog's ops, edits
	took    time.Duration
	err     error
}

// tabletReport is what the tablets phase found.
type tabletReport struct {
	tablets          int
	ops, edits       int
	wall             time.Duration // from coming online to the last tablet synced
	took             []time.Duration
	statuses         map[string]int // the ops' results, by status
	pending, records int
	errs             int
	firstErr         string
	unverified       int
}

// serverBase turns the sync WebSocket URL (ws://host/sync) into the server's base URL,
// as client.Config.ServerURL wants it.
func serverBase(ws string) (string, error) {
	u, err := url.Parse(ws)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	u.Path = strings.TrimSuffix(u.Path, "/sync")
	return strings.TrimSuffix(u.String(), "/"), nil
}

// writeTablets opens the replicas of n tablets in dir, device 0 of teachers first,
// first+1, … (each on the teacher's exchange), and writes each one's backlog of ops,
// a share edits of one of the last 40 records it created. On error the tablets opened
// so far are returned with it, for the caller to close.
func writeTablets(ctx context.Context, dir, serverURL string, first, n, backlog int, editShare float64) ([]*tablet, error) {
	ts := make([]*tablet, n)
	for k := range ts {
		i := first + k
		c, err := client.Open(filepath.Join(dir, fmt.Sprintf("tablet-%d.db", i)), client.Config{
			ServerURL: serverURL, DeviceID: bench.DeviceID(i, 0), Token: bench.DeviceToken(i, 0)})
		if err != nil {
			return ts[:k], fmt.Errorf("open tablet %d: %w", i, err)
		}
		ts[k] = &tablet{teacher: i, c: c}
	}
	// Dates before the other phases' (the raw pushers start in 2026, the poke writers
	// in 2040), shifted by run as theirs are, so that a rerun on the same database
	// mostly creates records.
	start := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 500*(time.Now().Second()%7))
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Go(func() {
			if err := t.write(ctx, start, backlog, editShare); err != nil {
				errs <- fmt.Errorf("tablet %d: %w", t.teacher, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return ts, <-errs
}

// write writes the tablet's offline backlog.
func (t *tablet) write(ctx context.Context, start time.Time, backlog int, editShare float64) error {
	var err error
	t.edits, err = bench.WriteTabletBacklog(ctx, t.c, bench.ExchangeID(t.teacher), start, backlog, editShare, uint64(t.teacher))
	return err
}

// syncTablets has every tablet, with its backlog of ops, run one Sync at once, and
// reports.
func syncTablets(ctx context.Context, ts []*tablet, backlog int) tabletReport {
	rep := tabletReport{tablets: len(ts), ops: len(ts) * backlog, statuses: map[string]int{}}
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Go(func() {
			s := time.Now()
			t.err = t.c.Sync(ctx)
			t.took = time.Since(s)
		})
	}
	wg.Wait()
	rep.wall = time.Since(t0)
	for _, t := range ts {
		rep.edits += t.edits
		rep.took = append(rep.took, t.took)
		if t.err != nil {
			rep.errs++
			if rep.firstErr == "" {
				rep.firstErr = fmt.Sprintf("tablet %d: %v", t.teacher, t.err)
			}
		}
		st, err := t.c.Status(ctx)
		if err != nil {
			rep.errs++
			continue
		}
		rep.pending += st.Outbox
		rep.records += st.Records
		if !st.VerifyOK {
			rep.unverified++
		}
		res, err := t.c.Results(ctx)
		if err != nil {
			rep.errs++
			continue
		}
		for _, r := range res {
			rep.statuses[r.Status+r.Code]++
		}
	}
	return rep
}

// print writes the phase's summary line.
func (r tabletReport) print() {
	if r.tablets == 0 {
		return
	}
	acked := 0
	for s, n := range r.statuses {
		if s == jiaoliu.StatusApplied || s == jiaoliu.StatusMerged {
			acked += n
		}
	}
	fmt.Printf("tablets       %d tablets on sync/client online at once, %d ops written offline (%d edits): all synced in %v (each: %s); %d ops applied, %.0f ops/s with their pulls and verify; results %v; replicas hold %d records; %d pending, %d not verified, %d errors\n",
		r.tablets, r.ops, r.edits, r.wall.Round(time.Millisecond), percentiles(r.took),
		acked, float64(acked)/r.wall.Seconds(), r.statuses, r.records, r.pending, r.unverified, r.errs)
	if r.firstErr != "" {
		fmt.Printf("first error   tablets: %s\n", r.firstErr)
	}
}
