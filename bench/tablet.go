package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/client"
)

// WriteTabletBacklog writes a teacher's offline backlog of ops into a tablet's replica
// through the device library's API, as the app does while the school has no link: the
// Backlog's attendance, lessons and research activities of exchange from start, and,
// mixed in at editShare of the ops, an edit of one of the last 40 records it created
// (a teacher completing in the evening what she noted in class). seed picks the edits.
// It returns how many ops were edits.
func WriteTabletBacklog(ctx context.Context, c *client.Client, exchange string, start time.Time, ops int, editShare float64, seed uint64) (edits int, err error) {
	bl := NewBacklog(exchange, c.DeviceID(), start)
	r := rand.New(rand.NewPCG(seed, 23))
	var created []jiaoliu.Op
	for n := 0; n < ops; n++ {
		if len(created) > 0 && r.Float64() < editShare {
			e := bl.Edit(created[max(0, len(created)-40)+r.IntN(min(40, len(created)))], n)
			if _, err := c.Upsert(ctx, e.Entity, e.ID, e.Fields); err != nil {
				return edits, fmt.Errorf("edit %s %s: %w", e.Entity, e.ID, err)
			}
			edits++
			continue
		}
		op := bl.Next()
		if _, err := c.Upsert(ctx, op.Entity, op.ID, op.Fields); err != nil {
			return edits, fmt.Errorf("create %s: %w", op.Entity, err)
		}
		created = append(created, op)
	}
	return edits, nil
}
