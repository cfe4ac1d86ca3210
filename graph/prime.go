package graph

import (
	"context"
	"slices"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// Priming the loaders of a page.
//
// A page of 50 exchanges that asks for each one's teacher and schools resolves 150
// nested fields, each in its own goroutine, each waiting on a batch loader; the batches
// are cut by time (batchWait), so under load one page's teachers were read in two or
// three queries instead of one, each after a wait. Instead, the list resolver reads the
// records the page's selection refers to before it returns: one query per entity and
// nesting level (the sending and receiving schools together), in parallel, into the
// request's Loaders, beside the batch loaders (Loaders.putAhead). The nested resolvers
// (byID) take them from there without a loader's thunk, channel and lock; what priming
// does not cover (a reference inside a nested list, a failed read) they load as
// before.

// primer loads the records of one entity by id, reading the columns of cs, into the
// request's loader, and returns those found.
type primer func(ctx context.Context, ids []string, cs columnSet) []any

// refReader reads ahead the records of an entity that others refer to: read loads them
// by id (prime); new and put serve the references read with a page (joins.go): a new
// record to scan into, and the records a join found put into the request's loader.
type refReader struct {
	read primer
	new  func() any
	put  func(ctx context.Context, cs columnSet, ids []string, found map[string]any)
}

// refReaders are the entities whose references are read ahead.
var refReaders = map[string]refReader{
	jiaoliu.DistrictEntity.Name:      refReaderOf[jiaoliu.District](jiaoliu.DistrictEntity),
	jiaoliu.ZoneEntity.Name:          refReaderOf[jiaoliu.Zone](jiaoliu.ZoneEntity),
	jiaoliu.SchoolGroupEntity.Name:   refReaderOf[jiaoliu.SchoolGroup](jiaoliu.SchoolGroupEntity),
	jiaoliu.SchoolEntity.Name:        refReaderOf[jiaoliu.School](jiaoliu.SchoolEntity),
	jiaoliu.TeacherEntity.Name:       refReaderOf[jiaoliu.Teacher](jiaoliu.TeacherEntity),
	jiaoliu.ExchangeEntity.Name:      refReaderOf[jiaoliu.Exchange](jiaoliu.ExchangeEntity),
	jiaoliu.MentoringPairEntity.Name: refReaderOf[jiaoliu.MentoringPair](jiaoliu.MentoringPairEntity),
}

// readAhead reports whether references to the entity are read ahead.
func readAhead(entity string) bool { return refReaders[entity].read != nil }

// refReaderOf's read takes the records straight from the store and keeps them for
// byID, per loader key, as the loader's batches would (a record the actor may not read
// as nil),
// rather than through a batch: a batch waits batchWait for more keys, which a primer
// never has. On an error nothing is primed, and the nested fields load (and report) as
// before.
func refReaderOf[T any](def *jiaoliu.Entity) refReader {
	put := func(ctx context.Context, cs columnSet, ids []string, found func(id string) *T) {
		m := make(map[string]any, len(ids))
		for _, id := range ids {
			m[id] = found(id)
		}
		loadersFrom(ctx).putAhead(cs.key, m)
	}
	return refReader{
		read: func(ctx context.Context, ids []string, cs columnSet) []any {
			found, err := postgres.GetManyColumns[T](ctx, loadersFrom(ctx).store, def, ids, cs.cols)
			if err != nil {
				return nil
			}
			put(ctx, cs, ids, func(id string) *T { return found[id] })
			out := make([]any, 0, len(found))
			for _, id := range ids {
				if v := found[id]; v != nil {
					out = append(out, v)
				}
			}
			return out
		},
		new: func() any { return new(T) },
		put: func(ctx context.Context, cs columnSet, ids []string, found map[string]any) {
			put(ctx, cs, ids, func(id string) *T { v, _ := found[id].(*T); return v })
		},
	}
}

// primePage primes the loaders for the nodes of a connection field whose items are
// records of def; sels are the nodes' selection sets (nodeSelections). The records they
// refer to were joined with the page (joined, per join of plan: postgres.ListJoined),
// else are read in one statement (postgres.ReadRefs), else — without a plan, or when
// that read fails — a level at a time (prime), after which a reference not primed
// loads (and reports) as it would without priming.
func primePage[T any](ctx context.Context, def *jiaoliu.Entity, items []*T, sels []ast.SelectionSet, plan *joinPlan, joined []map[string]any) {
	if len(items) == 0 || len(sels) == 0 {
		return
	}
	recs := make([]any, len(items))
	for i, v := range items {
		recs[i] = v
	}
	l := loadersFrom(ctx)
	if plan != nil && joined == nil {
		if found, err := postgres.ReadRefs(ctx, l.store, recs, plan.joins); err == nil {
			joined = found
		}
	}
	if joined != nil {
		plan.prime(ctx, recs, joined)
	} else {
		op := graphql.GetOperationContext(ctx)
		for _, sel := range sels {
			prime(ctx, op, def, recs, sel)
		}
	}
	for _, sel := range sels {
		l.markPrimed(sel)
	}
}

// nodeSelections returns the selection sets of the nodes of the connection field of
// ctx: its nodes' and its edges' node's (none without an operation).
func nodeSelections(ctx context.Context) []ast.SelectionSet {
	if !graphql.HasOperationContext(ctx) {
		return nil
	}
	op := graphql.GetOperationContext(ctx)
	var out []ast.SelectionSet
	for _, f := range graphql.CollectFieldsCtx(ctx, nil) {
		switch f.Name {
		case "nodes":
			out = append(out, f.Selections)
		case "edges":
			for _, e := range graphql.CollectFields(op, f.Selections, nil) {
				if e.Name == "node" {
					out = append(out, e.Selections)
				}
			}
		}
	}
	return out
}

// prime loads, for the records recs of def, the records that the selection sel refers
// to (a field "teacher" for the reference "teacherId"), one query per entity, and then
// what their own selections refer to.
func prime(ctx context.Context, op *graphql.OperationContext, def *jiaoliu.Entity, recs []any, sel ast.SelectionSet) {
	// A read is an entity and the columns its selection reads: the sending and receiving
	// schools of exchanges are one query when both ask for the same fields.
	type read struct {
		to  string
		cs  columnSet
		ids []string
	}
	type ref struct {
		field *graphql.CollectedField
		read  string
		ids   []string
	}
	var refs []ref
	reads := map[string]*read{}
	for _, f := range graphql.CollectFields(op, sel, []string{def.Type}) {
		fd, ok := def.Field(f.Name + "Id")
		if !ok || fd.Ref == "" || !readAhead(fd.Ref) || len(f.Selections) == 0 {
			continue
		}
		cs := columnsOf(ctx, jiaoliu.Entities[fd.Ref], f.Selections)
		key := cs.key
		r := ref{field: &f, read: key}
		for _, v := range recs {
			if id := postgres.FieldText(v, fd.Column()); id != "" {
				r.ids = append(r.ids, id)
			}
		}
		refs = append(refs, r)
		if reads[key] == nil {
			reads[key] = &read{to: fd.Ref, cs: cs}
		}
		reads[key].ids = append(reads[key].ids, r.ids...)
	}
	if len(refs) == 0 {
		return
	}
	type loaded struct {
		key  string
		recs []any
	}
	done := make(chan loaded, len(reads))
	for key, rd := range reads {
		slices.Sort(rd.ids)
		ids := slices.Compact(rd.ids)
		load := func() { done <- loaded{key, refReaders[rd.to].read(ctx, ids, rd.cs)} }
		if len(reads) == 1 {
			load() // no goroutine (and its stack growth) for a level of one read
		} else {
			go load()
		}
	}
	type readID struct{ read, id string }
	byID := map[readID]any{}
	for range reads {
		l := <-done
		for _, v := range l.recs {
			byID[readID{l.key, postgres.FieldText(v, "id")}] = v
		}
	}
	for _, r := range refs {
		next := make([]any, 0, len(r.ids))
		for _, id := range r.ids {
			if v := byID[readID{r.read, id}]; v != nil {
				next = append(next, v)
			}
		}
		if len(next) > 0 {
			prime(ctx, op, jiaoliu.Entities[reads[r.read].to], next, r.field.Selections)
		}
	}
}
