package postgres

import (
	"context"
	"fmt"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
)

// What live sync activity (sync/hub's Publisher) reads and sends through the store.

// WatchedDevices returns, by device id, each device's name, its user, and the district
// and school tokens of who may watch its activity.
func (s *Store) WatchedDevices(ctx context.Context, ids []string) (map[string]jiaoliu.WatchedDevice, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT d.id::text, d.name, u.id::text, u.username,
			ARRAY(SELECT DISTINCT t FROM unnest(CASE u.role
				WHEN 'TEACHER' THEN teacher_tokens(u.teacher_id)
				WHEN 'SCHOOL_ADMIN' THEN school_tokens(u.school_id)
				WHEN 'DISTRICT_ADMIN' THEN ARRAY['d:' || u.district_id]
				WHEN 'AUDITOR' THEN ARRAY['d:' || u.district_id]
				ELSE '{}'::text[] END) AS t
				WHERE t LIKE 'd:%' OR t LIKE 's:%' ORDER BY t)
		FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = ANY($1::uuid[])`, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("watched devices: %w", err)
	}
	defer rows.Close()
	out := make(map[string]jiaoliu.WatchedDevice, len(ids))
	for rows.Next() {
		var id string
		var d jiaoliu.WatchedDevice
		if err := rows.Scan(&id, &d.Name, &d.UserID, &d.Username, pq.Array(&d.Scopes)); err != nil {
			return nil, fmt.Errorf("watched devices: %w", err)
		}
		out[id] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("watched devices: %w", err)
	}
	return out, nil
}

// RejectionIDs returns the id of the latest stored rejection of each opId.
func (s *Store) RejectionIDs(ctx context.Context, opIDs []string) (map[string][]string, error) {
	out, err := s.pairs(ctx, `SELECT op_id, max(id)::text FROM sync_rejections WHERE op_id = ANY($1) GROUP BY op_id`, pq.Array(opIDs))
	if err != nil {
		return nil, fmt.Errorf("rejection ids: %w", err)
	}
	return out, nil
}

// ConflictIDs returns the ids of the conflicts recorded for the ops that lost fields,
// by the losing opId, in id order: entities[i], records[i] and lostOps[i] name one.
func (s *Store) ConflictIDs(ctx context.Context, entities, records, lostOps []string) (map[string][]string, error) {
	out, err := s.pairs(ctx, `SELECT c.lost_op_id, c.id::text FROM sync_conflicts c
			JOIN unnest($1::text[], $2::uuid[], $3::text[]) AS k(entity, record_id, op_id)
				ON c.entity = k.entity AND c.record_id = k.record_id AND c.lost_op_id = k.op_id
			ORDER BY c.id`, pq.Array(entities), pq.Array(records), pq.Array(lostOps))
	if err != nil {
		return nil, fmt.Errorf("conflict ids: %w", err)
	}
	return out, nil
}

// pairs runs a query of (key, value) rows and groups the values by key.
func (s *Store) pairs(ctx context.Context, q string, args ...any) (map[string][]string, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = append(out[k], v)
	}
	return out, rows.Err()
}

// Notify sends the payloads on a notification channel, in order, in one statement
// (delivered when it commits: at once, outside a transaction).
func (s *Store) Notify(ctx context.Context, channel string, payloads []string) error {
	if _, err := s.db.ExecContext(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS x(p, n) ORDER BY n`,
		channel, pq.Array(payloads)); err != nil {
		return fmt.Errorf("notify %s: %w", channel, err)
	}
	return nil
}
