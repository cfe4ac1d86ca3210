package graph

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// TestMarshalListRunsElementsAtOnce marshals lists whose elements wait for each other
// (as elements batching their loads do) and lists within lists, more of them at once
// than listWorkers keeps: every element must run concurrently, see its own index, and
// land in its place; none may wait for a worker.
func TestMarshalListRunsElementsAtOnce(t *testing.T) {
	ctx := graphql.WithResponseContext(context.Background(), graphql.DefaultErrorPresenter, graphql.DefaultRecover)
	const lists, n, inner = 8, 50, 3
	var all sync.WaitGroup
	all.Add(lists * n) // every outer element of every list waits until all have started
	done := make(chan [lists]graphql.Array)
	go func() {
		var out [lists]graphql.Array
		var wg sync.WaitGroup
		for l := range lists {
			wg.Go(func() {
				out[l] = marshalList(ctx, n, 0, false, func(ctx context.Context, i int) graphql.Marshaler {
					if got := *graphql.GetFieldContext(ctx).Index; got != i {
						t.Errorf("element %d has index %d", i, got)
					}
					all.Done()
					all.Wait()
					return marshalList(ctx, inner, 0, false, func(ctx context.Context, j int) graphql.Marshaler {
						return graphql.MarshalInt(l*10000 + i*10 + j)
					})
				})
			})
		}
		wg.Wait()
		done <- out
	}()
	select {
	case out := <-done:
		for l, arr := range out {
			for i, v := range arr {
				got, ok := v.(graphql.Array)
				if !ok || len(got) != inner {
					t.Fatalf("list %d element %d: %#v", l, i, v)
				}
				for j, w := range got {
					if text(w) != strconv.Itoa(l*10000+i*10+j) {
						t.Errorf("list %d element %d.%d: %#v", l, i, j, w)
					}
				}
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("elements did not all run at once")
	}
}

// TestMarshalListPanicIsTheElementsError: a panic while marshalling an element makes
// that element null and an error of the response, as gqlgen's own does; the other
// elements and the kept goroutines go on.
func TestMarshalListPanicIsTheElementsError(t *testing.T) {
	ctx := graphql.WithResponseContext(context.Background(), graphql.DefaultErrorPresenter, graphql.DefaultRecover)
	for range 3 {
		arr := marshalList(ctx, 4, 0, false, func(ctx context.Context, i int) graphql.Marshaler {
			if i == 2 {
				panic("broken element")
			}
			return graphql.MarshalInt(i)
		})
		for i, v := range arr {
			want := strconv.Itoa(i)
			if i == 2 {
				want = "null"
			}
			if text(v) != want {
				t.Errorf("element %d: %s, want %s", i, text(v), want)
			}
		}
	}
	if errs := graphql.GetErrors(ctx); len(errs) != 3 {
		t.Errorf("errors %v, want one per panic", errs)
	}
}

func text(m graphql.Marshaler) string {
	var b bytes.Buffer
	m.MarshalGQL(&b)
	return b.String()
}
