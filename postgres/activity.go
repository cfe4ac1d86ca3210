package postgres

import (
	"context"
	"fmt"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/intern"
)

// What live sync activity (sync/hub's Publisher) reads and sends through the store.

// watchedDevicesQuery reads the devices of $1 with the "d:" and "s:" tokens of their
// users: an administrator's or auditor's district; a school administrator's school and
// its district; a teacher's school and the sending and receiving schools of their live
// exchanges, with those schools' districts.
const watchedDevicesQuery = `SELECT d.id::text, d.name, u.id::text, u.username,
		ARRAY(SELECT DISTINCT tok FROM (
				SELECT 'd:' || u.district_id WHERE u.role IN ('DISTRICT_ADMIN', 'AUDITOR')
				UNION ALL
				SELECT v.tok FROM (
						SELECT u.school_id WHERE u.role = 'SCHOOL_ADMIN'
						UNION ALL SELECT school_id FROM teachers WHERE id = u.teacher_id AND u.role = 'TEACHER'
						UNION ALL SELECT unnest(ARRAY[x.sending_school_id, x.receiving_school_id]) FROM exchanges x
							WHERE x.teacher_id = u.teacher_id AND NOT x.deleted AND u.role = 'TEACHER'
					) i(id)
					LEFT JOIN schools sc ON sc.id = i.id,
					LATERAL (VALUES ('s:' || i.id), ('d:' || sc.district_id)) v(tok)
			) z(tok) WHERE tok IS NOT NULL ORDER BY tok)
	FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = ANY((SELECT $1::uuid[])::uuid[])`

// WatchedDevices returns, by device id, each device's name, its user, and the district
// and school tokens of who may watch its activity: those of the user's scope tokens
// (teacher_tokens, school_tokens of migration 00002), read from the tables directly —
// the scope functions, nested and planned on every call, cost 2.3 ms a device, more
// than the single-op push whose activity was being published. The query is prepared,
// and its devices are read through a subquery: with the array in sight PostgreSQL
// found a plan for the one device of a push cheaper than the generic plan and planned
// every call (0.45–0.65 ms, for 0.17 ms of running it); hidden, it keeps the generic
// plan after five calls.
// TestWatchedDevicesAreTheScopeFunctions compares both.
func (s *Store) WatchedDevices(ctx context.Context, ids []string) (map[string]jiaoliu.WatchedDevice, error) {
	rows, err := s.queryx(ctx, watchedDevicesQuery, pq.Array(ids))
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
		// The publisher caches them for as long as the device is seen (intern).
		d.UserID, d.Username, d.Scopes = intern.String(d.UserID), intern.String(d.Username), intern.Strings(d.Scopes)
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
