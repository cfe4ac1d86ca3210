package jiaoliu_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/jiaoliu/jiaoliu"
)

// TestNewIDIsTimeOrdered checks that ids are UUIDv7s and that ids made one after
// another, even within one millisecond, sort in the order they were made, as text.
func TestNewIDIsTimeOrdered(t *testing.T) {
	prev := ""
	for i := range 10000 {
		id := jiaoliu.NewID()
		u, err := uuid.Parse(id)
		if err != nil {
			t.Fatalf("id %q: %v", id, err)
		}
		if u.Version() != 7 || u.Variant() != uuid.RFC4122 || u.String() != id {
			t.Fatalf("id %q: version %d, variant %v, want a canonical RFC 9562 version 7", id, u.Version(), u.Variant())
		}
		if id <= prev {
			t.Fatalf("id %d %q does not sort after the one before it, %q", i, id, prev)
		}
		prev = id
	}
}
