package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
)

// Rejection is an op the server refused, stored whole so that nothing is lost.
type Rejection struct {
	ID         int64           `db:"id"`
	OpID       string          `db:"op_id"`
	DeviceID   *string         `db:"device_id"`
	UserID     *string         `db:"user_id"`
	Entity     string          `db:"entity"`
	RecordID   string          `db:"record_id"`
	Op         json.RawMessage `db:"op"`
	Code       string          `db:"code"`
	Message    string          `db:"message"`
	Fields     json.RawMessage `db:"fields"`
	Status     string          `db:"status"`
	ResolvedAt *time.Time      `db:"resolved_at"`
	ResolvedBy *string         `db:"resolved_by"`
	CreatedAt  time.Time       `db:"created_at"`
}

// ConflictRecord is a field value that lost under last-writer-wins.
type ConflictRecord struct {
	ID           int64           `db:"id"`
	Entity       string          `db:"entity"`
	RecordID     string          `db:"record_id"`
	Field        string          `db:"field"`
	KeptValue    json.RawMessage `db:"kept_value"`
	KeptHLC      string          `db:"kept_hlc"`
	LostValue    json.RawMessage `db:"lost_value"`
	LostHLC      string          `db:"lost_hlc"`
	LostOpID     string          `db:"lost_op_id"`
	LostDeviceID *string         `db:"lost_device_id"`
	LostUserID   *string         `db:"lost_user_id"`
	CreatedAt    time.Time       `db:"created_at"`
}

const rejectionColumns = `r.id, r.op_id, r.device_id, r.user_id, r.entity, r.record_id, r.op, r.code, r.message, r.fields, r.status, r.resolved_at, r.resolved_by, r.created_at`

// adminTokens returns the scope condition for admin-only views (rejections,
// conflicts): administrators and auditors see their scope, teachers their own.
func (s *Store) adminTokens(ctx context.Context) (*jiaoliu.Actor, []string, error) {
	actor := jiaoliu.ActorFromContext(ctx)
	if actor == nil {
		return nil, nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in first")
	}
	toks, err := s.ActorTokens(ctx, actor)
	return actor, toks, err
}

// Rejections lists stored rejections in the caller's scope, newest first; status
// filters by PENDING, REAPPLIED or DISMISSED ("" for all). A teacher sees the
// rejections of their own ops.
func (s *Store) Rejections(ctx context.Context, status string, limit int) ([]*Rejection, error) {
	actor, toks, err := s.adminTokens(ctx)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > jiaoliu.MaxPageSize {
		limit = jiaoliu.MaxPageSize
	}
	where, args := "true", []any{}
	if !actor.System {
		args = append(args, pq.Array(toks))
		where = "r.scopes && $1"
	}
	switch status {
	case "":
	case "PENDING", "REAPPLIED", "DISMISSED":
		args = append(args, status)
		where += fmt.Sprintf(" AND r.status = $%d", len(args))
	default:
		return nil, &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "unknown status", Fields: map[string]string{"status": "must be PENDING, REAPPLIED or DISMISSED"}}
	}
	args = append(args, limit)
	var out []*Rejection
	if err := s.db.SelectContext(ctx, &out, fmt.Sprintf(`SELECT %s FROM sync_rejections r WHERE %s ORDER BY r.id DESC LIMIT $%d`, rejectionColumns, where, len(args)), args...); err != nil {
		return nil, fmt.Errorf("rejections: %w", err)
	}
	return out, nil
}

// rejection loads one pending rejection the caller administers.
func (s *Store) rejection(ctx context.Context, id int64) (*Rejection, error) {
	actor, toks, err := s.adminTokens(ctx)
	if err != nil {
		return nil, err
	}
	if !actor.System && actor.Role != jiaoliu.RoleDistrictAdmin && actor.Role != jiaoliu.RoleSchoolAdmin {
		return nil, jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "only administrators resolve rejections")
	}
	var r Rejection
	err = s.db.GetContext(ctx, &r, `SELECT `+rejectionColumns+` FROM sync_rejections r WHERE r.id = $1 AND ($2 OR r.scopes && $3)`, id, actor.System, pq.Array(toks))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, jiaoliu.Errorf(jiaoliu.ENOTFOUND, "rejection %d not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("rejection: %w", err)
	}
	if r.Status != "PENDING" {
		return nil, jiaoliu.Errorf(jiaoliu.ECONFLICT, "rejection %d is already %s", id, r.Status)
	}
	return &r, nil
}

// ReplayRejection re-applies a stored op after a fix: fields, when given, replace
// fields of the op (for example a corrected period). The op keeps its HLC, so it merges
// as of when the teacher typed it, and gets a new opId derived from the original (the
// original's rejected result stays the answer to resends). On success the rejection is
// marked REAPPLIED; if the op is rejected again, the error says why and nothing changes.
func (s *Store) ReplayRejection(ctx context.Context, id int64, fields map[string]any) (*Rejection, jiaoliu.OpResult, error) {
	r, err := s.rejection(ctx, id)
	if err != nil {
		return nil, jiaoliu.OpResult{}, err
	}
	var op jiaoliu.Op
	if err := json.Unmarshal(r.Op, &op); err != nil {
		return nil, jiaoliu.OpResult{}, fmt.Errorf("replay: decode op: %w", err)
	}
	if op.Fields == nil {
		op.Fields = map[string]any{}
	}
	for k, v := range fields {
		op.Fields[k] = v
	}
	op.OpID = uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("replay/%s/%d", r.OpID, time.Now().UnixNano()))).String()
	res, err := s.Apply(ctx, jiaoliu.Batch{Ops: []jiaoliu.Op{op}, Atomic: true})
	if err != nil {
		return nil, jiaoliu.OpResult{}, err
	}
	actor := jiaoliu.ActorFromContext(ctx)
	if err := s.db.GetContext(ctx, r, `UPDATE sync_rejections r SET status = 'REAPPLIED', resolved_at = now(), resolved_by = $2 WHERE id = $1 RETURNING `+rejectionColumns,
		id, nullID(actor.UserID)); err != nil {
		return nil, jiaoliu.OpResult{}, fmt.Errorf("replay: %w", err)
	}
	return r, res[0], nil
}

// DismissRejection marks a rejection as handled without applying it.
func (s *Store) DismissRejection(ctx context.Context, id int64) (*Rejection, error) {
	r, err := s.rejection(ctx, id)
	if err != nil {
		return nil, err
	}
	actor := jiaoliu.ActorFromContext(ctx)
	if err := s.db.GetContext(ctx, r, `UPDATE sync_rejections r SET status = 'DISMISSED', resolved_at = now(), resolved_by = $2 WHERE id = $1 RETURNING `+rejectionColumns,
		id, nullID(actor.UserID)); err != nil {
		return nil, fmt.Errorf("dismiss rejection: %w", err)
	}
	return r, nil
}

// Conflicts lists recorded conflicts of the records in the caller's scope, newest
// first, optionally of one record.
func (s *Store) Conflicts(ctx context.Context, entity, recordID string, limit int) ([]*ConflictRecord, error) {
	actor, toks, err := s.adminTokens(ctx)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > jiaoliu.MaxPageSize {
		limit = jiaoliu.MaxPageSize
	}
	where, args := "true", []any{}
	if !actor.System {
		args = append(args, pq.Array(toks))
		where = "l.scopes && $1"
	}
	if entity != "" {
		args = append(args, entity)
		where += fmt.Sprintf(" AND c.entity = $%d", len(args))
	}
	if recordID != "" {
		if !isUUID(recordID) {
			return []*ConflictRecord{}, nil
		}
		args = append(args, recordID)
		where += fmt.Sprintf(" AND c.record_id = $%d", len(args))
	}
	args = append(args, limit)
	var out []*ConflictRecord
	err = s.db.SelectContext(ctx, &out, fmt.Sprintf(`SELECT c.id, c.entity, c.record_id, c.field, c.kept_value, c.kept_hlc, c.lost_value, c.lost_hlc,
			c.lost_op_id, c.lost_device_id, c.lost_user_id, c.created_at
		FROM sync_conflicts c JOIN sync_log l ON l.entity = c.entity AND l.id = c.record_id
		WHERE %s ORDER BY c.id DESC LIMIT $%d`, where, len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("conflicts: %w", err)
	}
	return out, nil
}
