package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// errRunning: Run was called while another Run of the same client is active.
var errRunning = errors.New("Run is already running for this client")

// Run keeps the device in sync until ctx ends: it connects, pushes and pulls, then
// stays connected, pulling when the server pokes, pushing when the outbox grows, and
// pulling from the start after a reset. A lost connection is retried with exponential
// backoff and jitter (Config.MinBackoff to MaxBackoff). Over HTTP (Config.HTTP) it
// polls every PollInterval instead. Run returns nil when ctx ends, an error wrapping
// ErrClosed when the client is closed, or an error for which retrying cannot help (see
// Permanent).
func (c *Client) Run(ctx context.Context) error {
	if !c.running.TryLock() {
		return errRunning
	}
	defer c.running.Unlock()
	parent := ctx
	// Close ends Run at once, even in the middle of a round.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := c.cfg.MinBackoff
	for {
		synced, err := c.session(ctx)
		if parent.Err() != nil {
			return nil
		}
		if c.isClosed() {
			return fmt.Errorf("run: %w", ErrClosed)
		}
		if Permanent(err) || errors.Is(err, ErrClosed) {
			return fmt.Errorf("run: %w", err)
		}
		if synced {
			backoff = c.cfg.MinBackoff
		}
		delay := jitter(backoff)
		c.log.Info("sync: disconnected; retrying", "err", err, "in", delay.Round(time.Millisecond))
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done(): // the caller's, or Close
			timer.Stop()
			if parent.Err() == nil {
				return fmt.Errorf("run: %w", ErrClosed)
			}
			return nil
		case <-timer.C:
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// jitter returns a random delay between d/2 and d, so that devices that lost the
// server together do not come back together.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// session runs one connection of Run until it ends; synced reports whether it got as
// far as a complete sync (so the backoff starts over).
func (c *Client) session(ctx context.Context) (synced bool, err error) {
	s, err := c.lockedConnect(ctx)
	if err != nil {
		return false, err
	}
	defer s.close()
	if err := c.locked(ctx, func() error { return s.round(ctx, true) }); err != nil {
		return false, err
	}
	c.log.Debug("sync: live")
	var poll <-chan time.Time
	if !s.ws {
		t := time.NewTicker(c.cfg.PollInterval)
		defer t.Stop()
		poll = t.C
	}
	check := time.NewTicker(c.cfg.OutboxCheck)
	defer check.Stop()
	for {
		push := false
		if !s.poked && !s.reset {
			// Nothing noted during the last round: wait for something to do.
			var done bool
			if push, done, err = c.wait(ctx, s, poll, check.C); done {
				return true, err
			}
		}
		err := c.locked(ctx, func() error {
			if push {
				if err := s.pushAll(ctx); err != nil {
					return err
				}
			}
			if s.poked || s.reset {
				full := s.reset
				s.poked = false
				if err := s.pullAll(ctx); err != nil {
					return err
				}
				if full {
					return s.verify(ctx)
				}
			}
			return nil
		})
		if err != nil {
			return true, err
		}
	}
}

// wait blocks until the session has something to do: push (the outbox grew, holds
// ops at a check, or a poll is due) or pull (s.poked, s.reset). done reports the end of the session, with
// its error.
func (c *Client) wait(ctx context.Context, s *session, poll, check <-chan time.Time) (push, done bool, err error) {
	for {
		select {
		case <-ctx.Done():
			return false, true, nil
		case <-c.done:
			return false, true, ErrClosed
		case m, ok := <-s.t.incoming():
			if !ok {
				return false, true, s.t.err()
			}
			switch m := m.(type) {
			case *wire.Poke:
				s.poked = true
			case *wire.Reset:
				s.reset = true
			case *wire.Error:
				if fatal(m) {
					return false, true, &ServerError{Code: m.Code, Message: m.Message}
				}
				c.log.Warn("sync: server error", "code", m.Code, "message", m.Message)
			default:
				c.log.Debug("sync: ignored an unexpected message", "type", m.MessageType())
			}
		case <-c.outbox:
			return true, false, nil
		case <-poll:
			s.poked = true
			return true, false, nil
		case <-check:
			var n int
			if err := c.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
				return false, true, fmt.Errorf("look at the outbox: %w", err)
			}
			if n > 0 {
				return true, false, nil
			}
		case <-s.t.closed():
			return false, true, s.t.err()
		}
		if s.poked || s.reset {
			return false, false, nil
		}
	}
}

// lockedConnect connects while holding the sync lock.
func (c *Client) lockedConnect(ctx context.Context) (*session, error) {
	var s *session
	err := c.locked(ctx, func() error {
		var err error
		s, err = c.connect(ctx)
		return err
	})
	return s, err
}

// locked runs fn as a sync round: alone, and with its outcome noted for Status.
func (c *Client) locked(ctx context.Context, fn func() error) error {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	if err := c.checkOpen(); err != nil {
		return err
	}
	c.noteAttempt(ctx)
	err := fn()
	if ctx.Err() == nil {
		c.noteResult(ctx, err)
	}
	return err
}
