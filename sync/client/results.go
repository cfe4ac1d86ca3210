package client

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Result is the server's answer to one op of this device, kept after the op left the
// outbox. Rejected ops keep everything the user typed (Fields), with the server's
// code and per-field messages, until the user dismisses them.
type Result struct {
	OpID   string
	Kind   string
	Entity string
	// ID is the record id the op was sent for; CanonicalID the record it was merged
	// into (natural key), if any.
	ID          string
	CanonicalID string
	HLC         string
	Fields      map[string]any
	// Status is applied, merged or rejected.
	Status  string
	Version string
	// Code, Message and FieldErrors explain a rejection.
	Code        string
	Message     string
	FieldErrors map[string]string
	// Lost lists the fields whose values lost to newer writes (last writer wins).
	Lost []string
	// Duplicate: the server had already applied the op (a resend after a lost ack).
	Duplicate bool
	// Restamped: the server replaced the op's HLC, which was too far ahead.
	Restamped bool
	Written   time.Time // when the op was made on the device
	Acked     time.Time // when the ack arrived
	Dismissed bool
}

// Results returns the stored results of acknowledged ops, oldest first.
func (c *Client) Results(ctx context.Context) ([]Result, error) {
	return c.results(ctx, ``)
}

// Rejections returns the rejected ops the user has not dismissed, oldest first.
func (c *Client) Rejections(ctx context.Context) ([]Result, error) {
	return c.results(ctx, `WHERE status = 'rejected' AND dismissed = 0`)
}

// Dismiss marks a rejection as seen by the user; it stays in Results.
func (c *Client) Dismiss(ctx context.Context, opID string) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	res, err := c.db.ExecContext(ctx, `UPDATE results SET dismissed = 1 WHERE op_id = ?`, opID)
	if err != nil {
		return fmt.Errorf("dismiss %s: %w", opID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("dismiss %s: %w", opID, ErrNotFound)
	}
	return nil
}

// PruneResults deletes the results of applied and merged ops acknowledged before t;
// rejections are kept.
func (c *Client) PruneResults(ctx context.Context, before time.Time) (int64, error) {
	if err := c.checkOpen(); err != nil {
		return 0, err
	}
	res, err := c.db.ExecContext(ctx, `DELETE FROM results WHERE status <> 'rejected' AND acked_at < ?`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("prune results: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (c *Client) results(ctx context.Context, where string) ([]Result, error) {
	if err := c.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := c.db.QueryContext(ctx, `SELECT op_id, kind, entity, record_id, canonical_id, hlc, coalesce(fields, ''), status, version,
		code, message, field_errors, lost, duplicate, restamped, created_at, acked_at, dismissed FROM results `+where+` ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	defer rows.Close()
	var out []Result
	for rows.Next() {
		var r Result
		var fields, fe, lost string
		var written, acked int64
		if err := rows.Scan(&r.OpID, &r.Kind, &r.Entity, &r.ID, &r.CanonicalID, &r.HLC, &fields, &r.Status, &r.Version,
			&r.Code, &r.Message, &fe, &lost, &r.Duplicate, &r.Restamped, &written, &acked, &r.Dismissed); err != nil {
			return nil, fmt.Errorf("read results: %w", err)
		}
		if fields != "" {
			if r.Fields, err = decodeFields(fields); err != nil {
				return nil, fmt.Errorf("result %s: %w", r.OpID, err)
			}
		}
		if err := json.Unmarshal([]byte(fe), &r.FieldErrors); err != nil {
			return nil, fmt.Errorf("result %s: %w", r.OpID, err)
		}
		if err := json.Unmarshal([]byte(lost), &r.Lost); err != nil {
			return nil, fmt.Errorf("result %s: %w", r.OpID, err)
		}
		r.Written, r.Acked = time.UnixMilli(written), time.UnixMilli(acked)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return out, nil
}

// Status is a summary of the device's sync state.
type Status struct {
	DeviceID  string
	ServerURL string
	// Outbox is the number of ops waiting for the server; Oldest when the oldest was
	// made (zero if none); Unanswered how many of them were sent without an answer.
	Outbox     int
	Oldest     time.Time
	Unanswered int
	// Records and Tombstones count the local replica.
	Records, Tombstones int
	// LastSync is the end of the last successful sync (zero if never); LastAttempt
	// and LastError describe the last attempt.
	LastSync, LastAttempt time.Time
	LastError             string
	// LastVerify is when the replica was last compared with the server, VerifyOK
	// whether it matched.
	LastVerify time.Time
	VerifyOK   bool
	// Rejections counts rejected ops not dismissed.
	Rejections int
	// ClockOffset is the correction applied to the device's clock (server − device).
	ClockOffset time.Duration
}

// Status returns the device's sync state.
func (c *Client) Status(ctx context.Context) (Status, error) {
	if err := c.checkOpen(); err != nil {
		return Status{}, err
	}
	var st Status
	c.mu.Lock()
	st.DeviceID, st.ServerURL = c.deviceID, c.server
	c.mu.Unlock()
	var oldest sql.NullInt64
	if err := c.db.QueryRowContext(ctx, `SELECT count(*), min(created_at), count(sent_at) FROM outbox`).Scan(&st.Outbox, &oldest, &st.Unanswered); err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	if oldest.Valid {
		st.Oldest = time.UnixMilli(oldest.Int64)
	}
	if err := c.db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE deleted = 0), count(*) FILTER (WHERE deleted = 1) FROM records`).Scan(&st.Records, &st.Tombstones); err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	if err := c.db.QueryRowContext(ctx, `SELECT count(*) FROM results WHERE status = 'rejected' AND dismissed = 0`).Scan(&st.Rejections); err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	ms := func(key string) (time.Time, error) {
		n, err := getMetaInt(ctx, c.db, key)
		if err != nil || n == 0 {
			return time.Time{}, err
		}
		return time.UnixMilli(n), nil
	}
	var err error
	if st.LastSync, err = ms(metaLastSync); err != nil {
		return st, err
	}
	if st.LastAttempt, err = ms(metaLastAttempt); err != nil {
		return st, err
	}
	if st.LastVerify, err = ms(metaLastVerify); err != nil {
		return st, err
	}
	if st.LastError, err = getMeta(ctx, c.db, metaLastError); err != nil {
		return st, err
	}
	ok, err := getMeta(ctx, c.db, metaLastVerifyOK)
	if err != nil {
		return st, err
	}
	st.VerifyOK = ok == "1"
	off, err := getMetaInt(ctx, c.db, metaClockOffset)
	if err != nil {
		return st, err
	}
	st.ClockOffset = time.Duration(off) * time.Millisecond
	return st, nil
}

// Cursor returns the stored pull cursor ("" before the first complete pull).
func (c *Client) Cursor(ctx context.Context) (string, error) {
	if err := c.checkOpen(); err != nil {
		return "", err
	}
	return getMeta(ctx, c.db, metaCursor)
}

// Checksum returns the count and the verify checksum (wire.ChecksumOf) of the
// server state held in the replica: what a verify compares with the server.
func (c *Client) Checksum(ctx context.Context) (int, string, error) {
	if err := c.checkOpen(); err != nil {
		return 0, "", err
	}
	return replicaChecksum(ctx, c.db)
}

// newerVersion reports whether version a is newer than b. Versions are opaque to the
// protocol; this server's are decimal numbers, compared as such. Anything else counts
// as newer, so the answer from the server is taken.
func newerVersion(a, b string) bool {
	if b == "" {
		return true
	}
	x, err1 := strconv.ParseInt(a, 10, 64)
	y, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil {
		return a != b
	}
	return x > y
}
