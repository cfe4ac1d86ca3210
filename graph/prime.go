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
// nesting level (the sending and receiving schools together), in parallel, straight
// into the request's loaders. The nested resolvers then find them in the loaders'
// caches; what priming does not cover (a reference inside a nested list, a failed
// read) they load as before.

// primer loads the records of one entity by id, reading the columns of cs, into the
// request's loader, and returns those found.
type primer func(ctx context.Context, ids []string, cs columnSet) []any

var primers = map[string]primer{
	jiaoliu.DistrictEntity.Name:      primeOf[jiaoliu.District](jiaoliu.DistrictEntity),
	jiaoliu.ZoneEntity.Name:          primeOf[jiaoliu.Zone](jiaoliu.ZoneEntity),
	jiaoliu.SchoolGroupEntity.Name:   primeOf[jiaoliu.SchoolGroup](jiaoliu.SchoolGroupEntity),
	jiaoliu.SchoolEntity.Name:        primeOf[jiaoliu.School](jiaoliu.SchoolEntity),
	jiaoliu.TeacherEntity.Name:       primeOf[jiaoliu.Teacher](jiaoliu.TeacherEntity),
	jiaoliu.ExchangeEntity.Name:      primeOf[jiaoliu.Exchange](jiaoliu.ExchangeEntity),
	jiaoliu.MentoringPairEntity.Name: primeOf[jiaoliu.MentoringPair](jiaoliu.MentoringPairEntity),
}

// primeOf reads the records straight from the store and puts them into the request's
// loader as its batches would (a record the actor may not read as nil), rather than
// through a batch: a batch waits batchWait for more keys, which a primer never has.
// On an error nothing is primed, and the nested fields load (and report) as before.
func primeOf[T any](def *jiaoliu.Entity) primer {
	return func(ctx context.Context, ids []string, cs columnSet) []any {
		found, err := postgres.GetManyColumns[T](ctx, loadersFrom(ctx).store, def, ids, cs.cols)
		if err != nil {
			return nil
		}
		l := idLoader[T](ctx, def, cs)
		out := make([]any, 0, len(found))
		for _, id := range ids {
			v := found[id]
			l.Prime(ctx, id, v)
			if v != nil {
				out = append(out, v)
			}
		}
		return out
	}
}

// primePage primes the loaders for the nodes of a connection field whose items are
// records of def; sels are the nodes' selection sets (nodeSelections).
func primePage[T any](ctx context.Context, def *jiaoliu.Entity, items []*T, sels []ast.SelectionSet) {
	if len(items) == 0 || len(sels) == 0 {
		return
	}
	recs := make([]any, len(items))
	for i, v := range items {
		recs[i] = v
	}
	op := graphql.GetOperationContext(ctx)
	l := loadersFrom(ctx)
	for _, sel := range sels {
		prime(ctx, op, def, recs, sel)
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
		if !ok || fd.Ref == "" || primers[fd.Ref] == nil || len(f.Selections) == 0 {
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
		load := func() { done <- loaded{key, primers[rd.to](ctx, ids, rd.cs)} }
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
