package syncserver

import (
	"errors"
	"fmt"
	"maps"

	"github.com/jiaoliu/jiaoliu"
)

// Schema versions of the entity fields (welcome.schemaVersion and minSchemaVersion).
// Version 1 is the field set of jiaoliu.Entities as of protocol v1.
const (
	SchemaVersion    = 1
	MinSchemaVersion = 1
)

// Upgrade converts an op written for one schema version into the next version, in
// place: a renamed field, a split enum. It returns an error wrapping ErrUnconvertible
// for an op that cannot be expressed in the next version.
type Upgrade func(op *jiaoliu.Op) error

// ErrUnconvertible marks an op that cannot be converted to the current schema; the
// server rejects it with schema_mismatch and stores it like every rejection.
var ErrUnconvertible = errors.New("cannot convert the op to the current schema")

// Schema is the range of schema versions the server accepts and the conversions
// between them. To introduce version N+1: change the entity definitions, set Version
// to N+1, and add Upgrades[N] converting an op of version N into N+1. Raise
// MinVersion only when no device of an older version is left in the field: their
// hello is then refused with schema_too_old.
type Schema struct {
	Version    int
	MinVersion int
	// Upgrades[v] converts an op of version v into version v+1.
	Upgrades map[int]Upgrade
}

// DefaultSchema returns the schema this server implements.
func DefaultSchema() Schema {
	return Schema{Version: SchemaVersion, MinVersion: MinSchemaVersion, Upgrades: map[int]Upgrade{}}
}

// Convert returns op, written for schema version from, as an op of the current
// version. Ops of the current version, or of a newer one (an app updated before the
// server), are returned unchanged: fields the server does not know are rejected by the
// write path as validation_failed, and stored. The op's fields are copied before any
// upgrade runs, so the caller's op is never changed.
func (sc Schema) Convert(op jiaoliu.Op, from int) (jiaoliu.Op, error) {
	if from >= sc.Version {
		return op, nil
	}
	if from < sc.MinVersion {
		return op, fmt.Errorf("schema version %d is older than %d: %w", from, sc.MinVersion, ErrUnconvertible)
	}
	op.Fields = maps.Clone(op.Fields)
	for v := from; v < sc.Version; v++ {
		up, ok := sc.Upgrades[v]
		if !ok {
			return op, fmt.Errorf("no conversion from schema version %d: %w", v, ErrUnconvertible)
		}
		if err := up(&op); err != nil {
			return op, fmt.Errorf("schema version %d to %d: %w", v, v+1, err)
		}
	}
	return op, nil
}
