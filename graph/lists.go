package graph

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
)

// marshalList marshals the n elements of a list, as gqlgen's MarshalSliceConcurrently
// does — every element at once, each with a field context holding its index, a panic
// in one making that element null — but on goroutines kept from one list to the next
// (listWorkers). The generator (internal/gen/gqlgen) writes calls to it in place of
// gqlgen's.
//
// gqlgen starts a goroutine per element: its stack starts small and is copied as it
// grows through a dozen levels of field execution, and that copying was 12 % of the
// server's CPU for a page of lessons with their exchange's teacher. A kept goroutine has
// grown its stack already. The elements still run concurrently, so that what they load
// through the request's batch loaders is loaded in one batch.
func marshalList(ctx context.Context, n int, workerLimit int64, omitPanicHandler bool,
	marshal func(ctx context.Context, i int) graphql.Marshaler) graphql.Array {
	if n <= 1 || workerLimit > 0 {
		return graphql.MarshalSliceConcurrently(ctx, n, workerLimit, omitPanicHandler, marshal)
	}
	ret := make(graphql.Array, n)
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		ctx := graphql.WithFieldContext(ctx, &graphql.FieldContext{Index: &i})
		listWorkers.run(func() {
			defer wg.Done()
			if !omitPanicHandler {
				defer func() {
					if r := recover(); r != nil {
						graphql.AddError(ctx, graphql.Recover(ctx, r))
						ret[i] = graphql.Null
					}
				}()
			}
			ret[i] = marshal(ctx, i)
		})
	}
	wg.Wait()
	return ret
}

// workers runs functions on goroutines it keeps: a function goes to a kept goroutine
// that waits for work, else to a new one that is kept afterwards (up to max), else to a
// goroutine of its own. It never makes a caller wait, so a function may itself wait for
// others it runs (a list within a list).
type workers struct {
	tasks chan func() // unbuffered: a send succeeds only when a kept goroutine waits
	n     atomic.Int32
	max   int32
}

// listWorkers keeps enough goroutines for a few pages of 50 to 100 elements at once
// (about 16 KiB of stack each).
var listWorkers = &workers{tasks: make(chan func()), max: 256}

func (w *workers) run(f func()) {
	select {
	case w.tasks <- f:
		return
	default:
	}
	if w.n.Add(1) <= w.max {
		go w.loop(f)
		return
	}
	w.n.Add(-1)
	go f()
}

func (w *workers) loop(f func()) {
	for {
		f()
		f = <-w.tasks
	}
}
