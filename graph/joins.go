package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// Joined references: the records a page's selection refers to read in the page's own
// statement (postgres/joins.go) rather than by prime after it, a statement per entity
// and level. What they prime is what prime would: the same loaders (entity and
// columns), each id a parent refers to primed with its record or, when the actor may
// not read it, with nil. How a page's references are read is decided in primePage.

// joinedRefs turns joined references on (tests turn it off to compare with prime).
var joinedRefs = true

// joinPlan is the joins of a page and how to prime their records.
type joinPlan struct {
	joins []postgres.Join
	cols  []columnSet // each join's loader
}

// joinList is the plan's joins (none without a plan).
func (p *joinPlan) joinList() []postgres.Join {
	if p == nil {
		return nil
	}
	return p.joins
}

// planJoins returns the joins that read what the nodes' selections sels (of records of
// def) refer to, as prime would read them, to any depth.
func planJoins(ctx context.Context, def *jiaoliu.Entity, sels []ast.SelectionSet) *joinPlan {
	if !joinedRefs || len(sels) == 0 || !graphql.HasOperationContext(ctx) {
		return nil
	}
	op := graphql.GetOperationContext(ctx)
	p := &joinPlan{}
	var walk func(def *jiaoliu.Entity, sel ast.SelectionSet, parent int)
	walk = func(def *jiaoliu.Entity, sel ast.SelectionSet, parent int) {
		for _, f := range graphql.CollectFields(op, sel, []string{def.Type}) {
			fd, ok := def.Field(f.Name + "Id")
			if !ok || fd.Ref == "" || !readAhead(fd.Ref) || len(f.Selections) == 0 {
				continue
			}
			to := jiaoliu.Entities[fd.Ref]
			cs := columnsOf(ctx, to, f.Selections)
			p.joins = append(p.joins, postgres.Join{Parent: parent, Column: fd.Column(), Entity: to, Columns: cs.cols, New: refReaders[fd.Ref].new})
			p.cols = append(p.cols, cs)
			walk(to, f.Selections, len(p.joins)-1)
		}
	}
	for _, sel := range sels {
		walk(def, sel, -1)
	}
	if len(p.joins) == 0 {
		return nil
	}
	return p
}

// prime puts the records the joins read (found, per join) into the request's loaders
// for the page's items.
func (p *joinPlan) prime(ctx context.Context, items []any, found []map[string]any) {
	for i, j := range p.joins {
		var parents []any
		if j.Parent < 0 {
			parents = items
		} else {
			for _, v := range found[j.Parent] {
				parents = append(parents, v)
			}
		}
		ids := make([]string, 0, len(parents))
		for _, v := range parents {
			if id := postgres.FieldText(v, j.Column); id != "" {
				ids = append(ids, id)
			}
		}
		refReaders[j.Entity.Name].put(ctx, p.cols[i], ids, found[i])
	}
}
