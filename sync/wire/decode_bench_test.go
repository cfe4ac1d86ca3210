package wire_test

import (
	"fmt"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// pushOf returns a push of n ops shaped as a teacher's offline backlog (bench.Backlog):
// attendance and lessons, Chinese text, numbers.
func pushOf(n int) []byte {
	p := &wire.Push{BatchID: "b-1"}
	for i := range n {
		op := jiaoliu.Op{OpID: fmt.Sprintf("op-%08d-0000-4000-8000-000000000000", i), Kind: jiaoliu.OpUpsert,
			ID: fmt.Sprintf("%08d-0000-4000-8000-000000000001", i), HLC: fmt.Sprintf("1767225600000-%04x-tablet-7", i)}
		if i%5 == 0 {
			op.Entity = "attendance"
			op.Fields = map[string]any{"exchangeId": "00000000-0000-4000-8000-000000000007", "date": "2026-09-01", "status": "PRESENT"}
		} else {
			op.Entity = "lesson"
			op.Fields = map[string]any{"exchangeId": "00000000-0000-4000-8000-000000000007", "date": "2026-09-01", "period": i % 5,
				"subject": "数学", "kind": "REGULAR", "topic": "分数的初步认识（第1课时）", "gradeLevel": "三年级", "className": "三（2）班", "minutes": 40}
		}
		p.Ops = append(p.Ops, op)
	}
	return wire.MustEncode(p)
}

// changesOf returns a changes message of n lesson records, as a pull's page.
func changesOf(n int) []byte {
	c := &wire.Changes{Cursor: "AAAAAAAAB9EAAAAAAAAH0QAAAAAAAAfRAAAAAAAAAAE", More: true}
	for i := range n {
		c.Records = append(c.Records, wire.Record{Entity: "lesson", ID: fmt.Sprintf("%08d-0000-4000-8000-000000000001", i), Version: fmt.Sprint(1000 + i),
			Fields: map[string]any{"exchangeId": "00000000-0000-4000-8000-000000000007", "date": "2026-09-01", "period": i % 5,
				"subject": "数学", "kind": "REGULAR", "topic": "分数的初步认识（第1课时）", "gradeLevel": "三年级", "className": "三（2）班",
				"minutes": 40, "notes": nil, "deviceId": "00000000-0000-4000-8000-000000000009"}})
	}
	return wire.MustEncode(c)
}

// ackOf returns the ack of a push of n ops, all applied.
func ackOf(n int) []byte {
	a := &wire.Ack{BatchID: "b-1"}
	for i := range n {
		a.Results = append(a.Results, jiaoliu.OpResult{OpID: fmt.Sprintf("op-%08d-0000-4000-8000-000000000000", i), Status: jiaoliu.StatusApplied,
			ID: fmt.Sprintf("%08d-0000-4000-8000-000000000001", i), Version: fmt.Sprint(1000 + i)})
	}
	return wire.MustEncode(a)
}

// BenchmarkDecode measures decoding a device's push of 500 ops (the server's side), a
// pull's page of 500 records and the ack of a push of 500 ops (the device's side).
func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		name string
		data []byte
	}{{"push=500", pushOf(500)}, {"changes=500", changesOf(500)}, {"ack=500", ackOf(500)}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := wire.Decode(c.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
