package bench_test

import (
	"fmt"
	"testing"

	"github.com/jiaoliu/jiaoliu/bench"
)

// TestBacklogCreatesDistinctRecords checks that a backlog never repeats an id, an opId
// or a natural key, so every op of a push benchmark creates a record.
func TestBacklogCreatesDistinctRecords(t *testing.T) {
	bl := bench.NewBacklog(bench.ExchangeID(0), bench.DeviceID(0, 0), start)
	ids, keys := map[string]bool{}, map[string]bool{}
	counts := map[string]int{}
	for _, op := range bl.Batch(5000) {
		if ids[op.ID] || ids[op.OpID] {
			t.Fatalf("repeated id in %+v", op)
		}
		ids[op.ID], ids[op.OpID] = true, true
		counts[op.Entity]++
		var key string
		switch op.Entity {
		case "lesson":
			key = fmt.Sprint("lesson/", op.Fields["date"], "/", op.Fields["period"])
		case "attendance":
			key = fmt.Sprint("attendance/", op.Fields["date"])
		default:
			continue
		}
		if keys[key] {
			t.Fatalf("repeated natural key %s", key)
		}
		keys[key] = true
	}
	if counts["lesson"] == 0 || counts["attendance"] == 0 || counts["researchActivity"] == 0 {
		t.Fatalf("entities=%v, want all three", counts)
	}
}

// TestIDIsPostgresMD5UUID checks ID against PostgreSQL's md5('...')::uuid of the same name.
func TestIDIsPostgresMD5UUID(t *testing.T) {
	// SELECT md5('jl-bench/teacher/7')::uuid
	if got, want := bench.TeacherID(7), "1b9ca126-2652-0429-45a8-704f43b06926"; got != want {
		t.Fatalf("TeacherID(7)=%q, want %q", got, want)
	}
}
