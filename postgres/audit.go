package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
)

// AuditEntry is one change in the audit trail.
type AuditEntry struct {
	ID        int64           `db:"id"`
	At        time.Time       `db:"at"`
	UserID    *string         `db:"user_id"`
	Username  string          `db:"username"`
	DeviceID  *string         `db:"device_id"`
	SessionID string          `db:"session_id"`
	Entity    string          `db:"entity"`
	RecordID  string          `db:"record_id"`
	OpID      *string         `db:"op_id"`
	Action    string          `db:"action"`
	Changes   json.RawMessage `db:"changes"`
}

// AuditQuery narrows the audit trail.
type AuditQuery struct {
	Entity, RecordID, UserID string
	From, To                 *time.Time
	First                    int
	After                    string // the id of the last entry of the previous page
}

// AuditLog returns audit entries newest first, for administrators and auditors, of
// the records in their scope. Teachers get FORBIDDEN.
func (s *Store) AuditLog(ctx context.Context, q AuditQuery) ([]*AuditEntry, bool, error) {
	actor := jiaoliu.ActorFromContext(ctx)
	if actor == nil {
		return nil, false, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to read the audit trail")
	}
	if !actor.System && actor.Role == jiaoliu.RoleTeacher {
		return nil, false, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "the audit trail is for administrators")
	}
	first := q.First
	if first == 0 {
		first = jiaoliu.DefaultPageSize
	}
	if first < 0 || first > jiaoliu.MaxPageSize {
		return nil, false, &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid page size", Fields: map[string]string{"first": "must be 1..500"}}
	}
	where := "true"
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where += fmt.Sprintf(" AND "+cond, len(args))
	}
	if !actor.System {
		toks, err := s.ActorTokens(ctx, actor)
		if err != nil {
			return nil, false, err
		}
		add("a.scopes && $%d", pq.Array(toks))
	}
	if q.Entity != "" {
		add("a.entity = $%d", q.Entity)
	}
	if q.RecordID != "" {
		if !isUUID(q.RecordID) {
			return []*AuditEntry{}, false, nil
		}
		add("a.record_id = $%d", q.RecordID)
	}
	if q.UserID != "" {
		if !isUUID(q.UserID) {
			return []*AuditEntry{}, false, nil
		}
		add("a.user_id = $%d", q.UserID)
	}
	if q.From != nil {
		add("a.at >= $%d", *q.From)
	}
	if q.To != nil {
		add("a.at <= $%d", *q.To)
	}
	if q.After != "" {
		n, err := strconv.ParseInt(q.After, 10, 64)
		if err != nil {
			return nil, false, &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid cursor", Fields: map[string]string{"after": "is not a cursor from this list"}}
		}
		add("a.id < $%d", n)
	}
	args = append(args, first+1)
	var out []*AuditEntry
	err := s.db.SelectContext(ctx, &out, fmt.Sprintf(`SELECT a.id, a.at, a.user_id, a.username, a.device_id, a.session_id, a.entity, a.record_id, a.op_id, a.action, a.changes
		FROM audit_log a WHERE %s ORDER BY a.id DESC LIMIT $%d`, where, len(args)), args...)
	if err != nil {
		return nil, false, fmt.Errorf("audit log: %w", err)
	}
	more := len(out) > first
	if more {
		out = out[:first]
	}
	return out, more, nil
}
