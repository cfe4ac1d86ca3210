package graph

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/graph-gophers/dataloader/v7"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// Loaders batch the nested reads of one request: every Exchange.teacher of a page is
// read in one query, every Teacher.history in another, so a page costs a fixed number
// of queries however large it is.
type Loaders struct {
	store *postgres.Store
	mu    sync.Mutex
	m     map[string]any
	cols  map[selectionKey]columnSet // columnsOf, per selection
	// ahead holds the records read ahead for a page (prime.go), per loader key and
	// id (a nil *T: none the actor may read), which byID takes without the loader.
	ahead map[string]map[string]any
	// primed are the first selections of the node selection sets of pages whose
	// references primePage read ahead (directList writes only those).
	primed []selectionID
}

// selectionID identifies a selection set of a request by its first selection (a node
// of the query's syntax tree) and length: gqlgen collects the same selections into a
// new slice each time it collects a field's.
type selectionID struct {
	first ast.Selection
	n     int
}

// markPrimed records that the references of the nodes selected by sel were primed.
func (l *Loaders) markPrimed(sel ast.SelectionSet) {
	if len(sel) == 0 {
		return
	}
	l.mu.Lock()
	l.primed = append(l.primed, selectionID{sel[0], len(sel)})
	l.mu.Unlock()
}

// wasPrimed reports whether markPrimed recorded sel.
func (l *Loaders) wasPrimed(sel ast.SelectionSet) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.primed, selectionID{sel[0], len(sel)})
}

// putAhead records the records read ahead with the columns of the loader key key.
func (l *Loaders) putAhead(key string, records map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ahead == nil {
		l.ahead = map[string]map[string]any{}
	}
	m := l.ahead[key]
	if m == nil {
		l.ahead[key] = records
		return
	}
	for id, v := range records {
		m[id] = v
	}
}

// getAhead returns the record with that id read ahead for the loader key key.
func (l *Loaders) getAhead(key, id string) (any, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.ahead[key][id]
	return v, ok
}

type loadersKey struct{}

// Middleware gives each request its own loaders (their caches must not outlive it,
// nor be shared between users with different scopes).
func Middleware(store *postgres.Store, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), loadersKey{}, &Loaders{store: store, m: map[string]any{}})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// WithLoaders returns ctx with fresh loaders (for transports other than HTTP).
func WithLoaders(ctx context.Context, store *postgres.Store) context.Context {
	return context.WithValue(ctx, loadersKey{}, &Loaders{store: store, m: map[string]any{}})
}

func loadersFrom(ctx context.Context) *Loaders {
	l, _ := ctx.Value(loadersKey{}).(*Loaders)
	if l == nil {
		panic("graph: request without loaders (wrap the handler with graph.Middleware)")
	}
	return l
}

const batchWait = 500 * time.Microsecond

func loaderFor[K comparable, V any](ctx context.Context, key string, batch func(ctx context.Context, keys []K) (map[K]V, error)) *dataloader.Loader[K, V] {
	l := loadersFrom(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.m[key]; ok {
		return v.(*dataloader.Loader[K, V])
	}
	fn := func(ctx context.Context, keys []K) []*dataloader.Result[V] {
		found, err := batch(ctx, keys)
		out := make([]*dataloader.Result[V], len(keys))
		for i, k := range keys {
			out[i] = &dataloader.Result[V]{Data: found[k], Error: err}
		}
		return out
	}
	ld := dataloader.NewBatchedLoader(fn, dataloader.WithWait[K, V](batchWait), dataloader.WithBatchCapacity[K, V](500))
	l.m[key] = ld
	return ld
}

// byID loads the record of def with that id as the value of the field being resolved,
// through the request's batch loader for its entity and the columns the field's
// selection reads (columnsOf). A record the caller may not read loads as nil (null in
// the response).
func byID[T any](ctx context.Context, def *jiaoliu.Entity, id string) (*T, error) {
	var sel ast.SelectionSet
	if fc := graphql.GetFieldContext(ctx); fc != nil && fc.Field.Field != nil {
		sel = fc.Field.Selections
	}
	cs := columnsOf(ctx, def, sel)
	if v, ok := loadersFrom(ctx).getAhead(cs.key, id); ok {
		r, _ := v.(*T)
		return r, nil
	}
	loadedByID.Add(1)
	v, err := idLoader[T](ctx, def, cs).Load(ctx, id)()
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", def.Name, err)
	}
	return v, nil
}

// idLoader is the request's batch loader of records of def by id, reading the columns
// of cs (see postgres.GetManyColumns). Records read with different columns are kept
// apart.
func idLoader[T any](ctx context.Context, def *jiaoliu.Entity, cs columnSet) *dataloader.Loader[string, *T] {
	store := loadersFrom(ctx).store
	return loaderFor(ctx, cs.key, func(ctx context.Context, ids []string) (map[string]*T, error) {
		return postgres.GetManyColumns[T](ctx, store, def, ids, cs.cols)
	})
}

// loadedByID counts the records byID asked its loader for (not read ahead), for tests.
var loadedByID atomic.Int64

// pruneColumns turns on reading only the selected columns (tests turn it off to compare).
var pruneColumns = true

// columnSet is the columns of an entity's records that a selection reads (nil: every
// column) and the key of the request's loader of records read with them.
type columnSet struct {
	cols []string
	key  string // "id:<entity>", or "id:<entity>:<column>,<column>…"
}

// selectionKey names a selection set of one request: gqlgen collects each field's
// selections into a slice of their own, reused for every element of a list.
type selectionKey struct {
	first  *ast.Selection
	n      int
	entity string
}

// columnsOf returns the column set of the selection sel on records of def, worked out
// once per selection and request (every element of a list asks the same).
func columnsOf(ctx context.Context, def *jiaoliu.Entity, sel ast.SelectionSet) columnSet {
	if !pruneColumns || len(sel) == 0 || !graphql.HasOperationContext(ctx) {
		return columnSet{key: "id:" + def.Name}
	}
	l := loadersFrom(ctx)
	k := selectionKey{&sel[0], len(sel), def.Name}
	l.mu.Lock()
	kept, ok := l.cols[k]
	l.mu.Unlock()
	if ok {
		return kept
	}
	cs := columnSet{key: "id:" + def.Name}
	if cs.cols = selectedColumns(graphql.GetOperationContext(ctx), def, sel); cs.cols != nil {
		cs.key += ":" + strings.Join(cs.cols, ",")
	}
	l.mu.Lock()
	if l.cols == nil {
		l.cols = map[selectionKey]columnSet{}
	}
	l.cols[k] = cs
	l.mu.Unlock()
	return cs
}

// selectedColumns returns the columns of def that the selection sel on a record of def
// reads, in order and without the id (always read), or nil when sel reads any field
// that is not a column of the record itself: a field computed by a resolver or a
// method may read any column, so the record is read whole. A reference (school for
// schoolId) reads its id column; what is selected inside it is another record's.
func selectedColumns(op *graphql.OperationContext, def *jiaoliu.Entity, sel ast.SelectionSet) []string {
	if len(sel) == 0 {
		return nil
	}
	cols := []string{}
	for _, f := range graphql.CollectFields(op, sel, []string{def.Type}) {
		switch f.Name {
		case "id", "__typename":
			continue
		case "version", "deleted", "createdAt", "updatedAt":
			cols = append(cols, jiaoliu.SnakeCase(f.Name))
			continue
		}
		fd, ok := def.Field(f.Name)
		if ok && len(f.Selections) > 0 {
			return nil // a field of the same name that is an object: not this column
		}
		if !ok {
			fd, ok = def.Field(f.Name + "Id")
			if !ok || fd.Ref == "" || len(f.Selections) == 0 {
				return nil
			}
		}
		cols = append(cols, fd.Column())
	}
	slices.Sort(cols)
	return slices.Compact(cols)
}

// byOptID is byID for an optional reference.
func byOptID[T any](ctx context.Context, def *jiaoliu.Entity, id *string) (*T, error) {
	if id == nil || *id == "" {
		return nil, nil
	}
	return byID[T](ctx, def, *id)
}

// children loads the records of def whose field refers to parent, batched per field.
func children[T any](ctx context.Context, def *jiaoliu.Entity, field, parent string) ([]*T, error) {
	store := loadersFrom(ctx).store
	ld := loaderFor(ctx, "children:"+def.Name+"."+field, func(ctx context.Context, ids []string) (map[string][]*T, error) {
		return postgres.ChildrenOf[T](ctx, store, def, field, ids)
	})
	v, err := ld.Load(ctx, parent)()
	if err != nil {
		return nil, fmt.Errorf("load %s of %s: %w", def.Name, parent, err)
	}
	if v == nil {
		v = []*T{}
	}
	return v, nil
}

func tally(ctx context.Context, exchangeID string) (*postgres.ExchangeTally, error) {
	store := loadersFrom(ctx).store
	ld := loaderFor(ctx, "tally", store.ExchangeTallies)
	v, err := ld.Load(ctx, exchangeID)()
	if err != nil {
		return nil, fmt.Errorf("load tally: %w", err)
	}
	if v == nil {
		v = &postgres.ExchangeTally{ExchangeID: exchangeID}
	}
	return v, nil
}
