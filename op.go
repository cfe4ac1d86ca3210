package jiaoliu

import (
	"context"

	"github.com/google/uuid"
)

// NewID returns a new id for a record or an op: a UUIDv7 (RFC 9562), which starts
// with the time in milliseconds, so that the ids a device or the server makes one
// after another sort together. Any UUID is accepted as an id; time-ordered ones are
// cheaper to store, because every index keyed by an id (a record's primary key,
// sync_ops, the change and audit logs) then grows at its end instead of at random
// pages (BENCHMARKS.md, session 16).
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// Op kinds.
const (
	OpUpsert = "upsert"
	OpDelete = "delete"
)

// Op is one write to one record: the unit of the write path. A sync push carries ops
// from a device; a GraphQL mutation becomes an op stamped with the server's HLC. Ops are
// idempotent by OpID.
type Op struct {
	OpID   string         `json:"opId"`
	Kind   string         `json:"kind"`
	Entity string         `json:"entity"`
	ID     string         `json:"id"`
	HLC    string         `json:"hlc"`
	Fields map[string]any `json:"fields,omitempty"`
	// MustExist makes an upsert of an unknown id fail with NOT_FOUND instead of
	// creating the record (GraphQL update mutations).
	MustExist bool `json:"-"`
}

// Op result statuses.
const (
	StatusApplied  = "applied"
	StatusMerged   = "merged"
	StatusRejected = "rejected"
)

// Rejection codes of the sync protocol.
const (
	RejectValidation     = "validation_failed"
	RejectForbidden      = "forbidden"
	RejectUnknownEntity  = "unknown_entity"
	RejectMissingRef     = "missing_reference"
	RejectSchemaMismatch = "schema_mismatch"
	RejectLocked         = "locked"
)

// OpResult is the outcome of one op, as the sync protocol's ack reports it.
type OpResult struct {
	OpID        string            `json:"opId"`
	Status      string            `json:"status"`
	ID          string            `json:"id,omitempty"`
	Version     string            `json:"version,omitempty"`
	CanonicalID string            `json:"canonicalId,omitempty"`
	Code        string            `json:"code,omitempty"`
	Message     string            `json:"message,omitempty"`
	Fields      map[string]string `json:"fields,omitempty"`
	Lost        []string          `json:"lost,omitempty"`
	Duplicate   bool              `json:"duplicate,omitempty"`
	Restamped   bool              `json:"restamped,omitempty"`
	// HLC is the server's HLC that a re-stamped op was applied with (an extension of
	// the protocol: the device moves its clock past it, and the op's fields carry it).
	HLC string `json:"hlc,omitempty"`
}

// RejectCode maps a domain error code to the sync protocol's rejection code.
func RejectCode(code string) string {
	switch code {
	case EINVALID:
		return RejectValidation
	case EFORBIDDEN, EUNAUTHENTICATED:
		return RejectForbidden
	case ELOCKED:
		return RejectLocked
	case EMISSINGREF, ENOTFOUND:
		return RejectMissingRef
	case EUNKNOWNENTITY:
		return RejectUnknownEntity
	}
	return RejectValidation
}

// Batch is a list of ops applied in order in one transaction, with who sent them.
type Batch struct {
	Ops []Op
	// Atomic makes any rejection fail the whole batch (GraphQL mutations: nothing is
	// written on error). Device batches are not atomic: one bad op never stops the others,
	// and rejected ops are stored for an admin.
	Atomic bool
}

// Writer is the one write path of the product. GraphQL mutations and sync pushes both
// call Apply, so every rule is enforced once.
type Writer interface {
	// Apply applies the ops of a batch in order as actor, in one transaction, and
	// returns one result per op after the transaction committed. For an atomic batch the
	// first rejection is returned as the error (an *Error) and nothing is written.
	Apply(ctx context.Context, batch Batch) ([]OpResult, error)
}

// Conflict is a field value an op lost to a newer write under last-writer-wins.
type Conflict struct {
	Entity     string `db:"entity" json:"entity"`
	RecordID   string `db:"record_id" json:"recordId"`
	Field      string `db:"field" json:"field"`
	KeptValue  string `db:"kept_value" json:"keptValue"`
	KeptHLC    string `db:"kept_hlc" json:"keptHlc"`
	LostValue  string `db:"lost_value" json:"lostValue"`
	LostHLC    string `db:"lost_hlc" json:"lostHlc"`
	LostOpID   string `db:"lost_op_id" json:"lostOpId"`
	LostDevice string `db:"lost_device" json:"lostDevice"`
}

// Merge applies the fields of an op stamped hlc to a record under per-field
// last-writer-wins: a field takes the op's value only if hlc is larger than the HLC of
// the write that set it. clock (field → HLC) is updated in place. It returns the fields
// the op set and the fields it lost with a different value than the record keeps.
func Merge(cur Record, clock map[string]string, in Record, hlc string) (set Record, lost []string) {
	set = Record{}
	for name, v := range in {
		if hlc > clock[name] {
			set[name] = v
			clock[name] = hlc
			continue
		}
		if !FieldValueEqual(cur[name], v) {
			lost = append(lost, name)
		}
	}
	return set, lost
}
