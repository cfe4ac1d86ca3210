package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// ClockLease is how far ahead of the HLCs it issues the store's clock keeps its
// persisted high-water mark (server_clock): the mark is moved forward when the clock
// comes within half of it, about every ClockLease/2 while the clock is in use.
const ClockLease = 10 * time.Second

// clockRenewTimeout bounds one write of the high-water mark.
const clockRenewTimeout = 2 * time.Second

// SeedClock makes the store's clock safe across restarts. It moves the clock past the
// largest high-water mark any server process persisted in server_clock, so that the
// clock never issues an HLC below one issued before, even when the wall clock went
// backwards over a restart; then it persists this node's mark ClockLease ahead and binds
// the clock to it (hlc.Clock.SetLease): the clock issues no HLC beyond the persisted
// mark, and moves the mark forward as it goes, without waiting but after an idle time
// longer than the lease. Call it once, before the store issues HLCs (demo data, the
// first mutation). Returns an error if the database cannot be read or written.
func (s *Store) SeedClock(ctx context.Context) error {
	var high sql.NullInt64
	if err := s.db.GetContext(ctx, &high, `SELECT max(wall_ms) FROM server_clock`); err != nil {
		return fmt.Errorf("seed clock: %w", err)
	}
	if high.Valid {
		// Every HLC issued under that mark has a wall time at or below it.
		s.clock.Observe(hlc.Timestamp{Wall: high.Int64, Counter: 0xffff})
	}
	node := s.clock.Node()
	want := max(s.clock.WallNow(), s.clock.Last().Wall+1) + ClockLease.Milliseconds()
	limit, err := s.saveClockMark(ctx, node, want)
	if err != nil {
		return fmt.Errorf("seed clock: %w", err)
	}
	s.clock.SetLease(limit, ClockLease, func(want int64) (int64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), clockRenewTimeout)
		defer cancel()
		limit, err := s.saveClockMark(ctx, node, want)
		if err != nil {
			s.log.Warn("clock high-water mark not saved: the clock stays below the last one", "err", err)
		}
		return limit, err
	})
	return nil
}

// saveClockMark moves node's high-water mark to want unless it is further already, and
// returns the mark.
func (s *Store) saveClockMark(ctx context.Context, node string, want int64) (int64, error) {
	var limit int64
	err := s.db.GetContext(ctx, &limit, `INSERT INTO server_clock (node, wall_ms) VALUES ($1, $2)
		ON CONFLICT (node) DO UPDATE SET wall_ms = greatest(server_clock.wall_ms, excluded.wall_ms), updated_at = now()
		RETURNING wall_ms`, node, want)
	if err != nil {
		return 0, fmt.Errorf("save clock mark: %w", err)
	}
	return limit, nil
}
