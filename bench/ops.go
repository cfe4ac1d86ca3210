package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/jiaoliu/jiaoliu"
)

// newID makes the backlog's record and op ids: time-ordered UUIDv7s as the project's
// client makes them (jiaoliu.NewID), or random UUIDv4s, as another team's app might,
// when the environment variable JIAOLIU_BENCH_IDS is "v4".
var newID = func() func() string {
	if os.Getenv("JIAOLIU_BENCH_IDS") == "v4" {
		return uuid.NewString
	}
	return jiaoliu.NewID
}()

// Backlog generates a teacher's offline backlog in the order a tablet writes it: for
// each school day the day's attendance, then its lessons (periods 1..LessonsPerDay), and
// a research activity every fifth day. Days start at Start and never repeat, so every
// op creates a record (no natural-key merges) unless a test wants them.
type Backlog struct {
	ExchangeID    string
	Node          string // the device id, the HLC's node
	Start         time.Time
	LessonsPerDay int
	day, slot     int
	counter       atomic.Uint32
}

// NewBacklog returns the backlog of exchange written by device node from start.
func NewBacklog(exchangeID, node string, start time.Time) *Backlog {
	return &Backlog{ExchangeID: exchangeID, Node: node, Start: start, LessonsPerDay: 4}
}

func (b *Backlog) hlc() string {
	return fmt.Sprintf("%013d-%04x-%s", time.Now().UnixMilli(), b.counter.Add(1)&0xffff, b.Node)
}

// Next returns the next op of the backlog.
func (b *Backlog) Next() jiaoliu.Op {
	date := b.Start.AddDate(0, 0, b.day).Format("2006-01-02")
	op := jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, ID: newID(), HLC: b.hlc()}
	perDay := 1 + b.LessonsPerDay
	research := b.day%5 == 0
	if research {
		perDay++
	}
	switch s := b.slot; {
	case s == 0:
		op.Entity = "attendance"
		op.Fields = map[string]any{"exchangeId": b.ExchangeID, "date": date, "status": "PRESENT"}
	case s <= b.LessonsPerDay:
		op.Entity = "lesson"
		op.Fields = map[string]any{"exchangeId": b.ExchangeID, "date": date, "period": s, "subject": "数学",
			"kind": []string{"REGULAR", "DEMONSTRATION", "GUIDANCE"}[s%3], "topic": "分数的初步认识（第" + fmt.Sprint(s) + "课时）",
			"gradeLevel": "三年级", "className": "三（2）班", "minutes": 40}
	default:
		op.Entity = "researchActivity"
		op.Fields = map[string]any{"exchangeId": b.ExchangeID, "date": date, "kind": "JOINT_PREPARATION", "topic": "集体备课：分数"}
	}
	b.slot++
	if b.slot == perDay {
		b.slot, b.day = 0, b.day+1
	}
	return op
}

// Batch returns the next n ops.
func (b *Backlog) Batch(n int) []jiaoliu.Op {
	ops := make([]jiaoliu.Op, n)
	for i := range ops {
		ops[i] = b.Next()
	}
	return ops
}

// Edit returns an edit of the record that op created: two fields, the note numbered n.
func (b *Backlog) Edit(c jiaoliu.Op, n int) jiaoliu.Op {
	op := jiaoliu.Op{OpID: newID(), Kind: jiaoliu.OpUpsert, Entity: c.Entity, ID: c.ID, HLC: b.hlc()}
	note := fmt.Sprintf("补记 %d", n)
	switch c.Entity {
	case "lesson":
		op.Fields = map[string]any{"topic": "分数的再认识", "notes": note}
	case "attendance":
		op.Fields = map[string]any{"status": "LEAVE", "note": note}
	default:
		op.Fields = map[string]any{"topic": "集体备课：小数", "notes": note}
	}
	return op
}

// Edits returns an edit of each record that ops created, in a shuffled order (seeded
// by seed): two fields each, as a teacher completes what she wrote in class.
func (b *Backlog) Edits(ops []jiaoliu.Op, seed int64) []jiaoliu.Op {
	out := make([]jiaoliu.Op, len(ops))
	for i, c := range ops {
		out[i] = b.Edit(c, i)
	}
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
