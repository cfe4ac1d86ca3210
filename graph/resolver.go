package graph

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/graph/model"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hub"
)

// Resolver is the root resolver. Resolvers stay thin: every write goes through the
// store's Apply (the one write path), every read through its scoped queries.
type Resolver struct {
	Store *postgres.Store
	// Activity feeds the syncActivity subscription (its activity fan-out); nil makes
	// the subscription unavailable.
	Activity *hub.Hub
	// Publisher, when set, publishes the sync activity that happens through GraphQL (a
	// revoked device).
	Publisher ActivityPublisher
	// ReauthInterval is how often a subscription checks its token again; a token that
	// no longer authenticates (expired, user disabled) ends it.
	ReauthInterval time.Duration
	// Log receives what a client must not see.
	Log *slog.Logger
}

// create applies a create mutation as an upsert op stamped with the server's HLC and
// returns the record as stored (the canonical one when it merged by natural key).
func create[T any](ctx context.Context, r *Resolver, def *jiaoliu.Entity, input map[string]any) (*T, error) {
	id, _ := input["id"].(string)
	delete(input, "id")
	if id == "" {
		id = jiaoliu.NewID()
	}
	return write[T](ctx, r, def, jiaoliu.Op{Kind: jiaoliu.OpUpsert, ID: id, Fields: input})
}

// update applies a patch to an existing record; an unknown id is NOT_FOUND.
func update[T any](ctx context.Context, r *Resolver, def *jiaoliu.Entity, id string, input map[string]any) (*T, error) {
	return write[T](ctx, r, def, jiaoliu.Op{Kind: jiaoliu.OpUpsert, ID: id, Fields: input, MustExist: true})
}

func write[T any](ctx context.Context, r *Resolver, def *jiaoliu.Entity, op jiaoliu.Op) (*T, error) {
	op.OpID = jiaoliu.NewID()
	op.Entity = def.Name
	op.HLC = r.Store.Clock().Now()
	res, err := r.Store.Apply(ctx, jiaoliu.Batch{Ops: []jiaoliu.Op{op}, Atomic: true})
	if err != nil {
		return nil, err
	}
	return postgres.Get[T](ctx, r.Store, def, res[0].ID)
}

// get reads one record; a record outside the caller's scope is reported as not found.
func get[T any](ctx context.Context, r *Resolver, def *jiaoliu.Entity, id string) (*T, error) {
	return postgres.Get[T](ctx, r.Store, def, id)
}

// list reads one page of records for a connection field.
func list[T any](ctx context.Context, r *Resolver, def *jiaoliu.Entity, f *model.ListFilter, first *int, after *string) (jiaoliu.Page[T], error) {
	q := jiaoliu.ListQuery{WithTotal: wantsField(ctx, "totalCount")}
	if first != nil {
		q.First = *first
		if q.First == 0 {
			return jiaoliu.Page[T]{}, &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid page size", Fields: map[string]string{"first": "must be 1..500"}}
		}
	}
	if after != nil {
		q.After = *after
	}
	filter, err := toFilter(def, f)
	if err != nil {
		return jiaoliu.Page[T]{}, err
	}
	q.Filter = filter
	sels := nodeSelections(ctx)
	q.Columns = pageColumns(ctx, def, sels)
	plan := planJoins(ctx, def, sels)
	page, joined, err := postgres.ListJoined[T](ctx, r.Store, def, q, plan.joinList())
	if err == nil {
		primePage(ctx, def, page.Items, sels, plan, joined)
	}
	return page, err
}

// pageColumns returns the columns of def that the nodes of a connection read (sels:
// their selection sets), or nil when they need whole records.
func pageColumns(ctx context.Context, def *jiaoliu.Entity, sels []ast.SelectionSet) []string {
	if !pruneColumns || !graphql.HasOperationContext(ctx) {
		return nil
	}
	op := graphql.GetOperationContext(ctx)
	cols := []string{}
	for _, sel := range sels {
		c := selectedColumns(op, def, sel)
		if c == nil {
			return nil
		}
		cols = append(cols, c...)
	}
	slices.Sort(cols)
	return slices.Compact(cols)
}

// wantsField reports whether the current field's selection asks for name.
func wantsField(ctx context.Context, name string) bool {
	for _, f := range graphql.CollectFieldsCtx(ctx, nil) {
		if f.Name == name {
			return true
		}
	}
	return false
}

func pageInfo[T any](p jiaoliu.Page[T]) *model.PageInfo {
	pi := &model.PageInfo{HasNextPage: p.HasNext}
	if n := len(p.Cursors); n > 0 {
		pi.EndCursor = &p.Cursors[n-1]
	}
	return pi
}

// toFilter maps the API's one ListFilter onto an entity, refusing criteria that do
// not apply to it rather than ignoring them silently.
func toFilter(def *jiaoliu.Entity, f *model.ListFilter) (jiaoliu.Filter, error) {
	out := jiaoliu.Filter{Eq: map[string]any{}}
	if f == nil {
		return out, nil
	}
	fe := jiaoliu.FieldErrors{}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	out.DistrictID, out.SchoolID, out.TeacherID = deref(f.DistrictID), deref(f.SchoolID), deref(f.TeacherID)
	if f.Search != nil {
		if _, ok := def.Field("name"); !ok {
			fe.Add("search", "applies only to lists of named records")
		}
		out.Search = *f.Search
	}
	eq := func(arg, field string, v any) {
		if _, ok := def.Field(field); !ok {
			fe.Add(arg, "does not apply to "+def.Name+" lists")
			return
		}
		out.Eq[field] = v
	}
	if f.ExchangeID != nil {
		eq("exchangeId", "exchangeId", *f.ExchangeID)
	}
	if f.PairID != nil {
		eq("pairId", "pairId", *f.PairID)
	}
	if f.ExchangeStatus != nil {
		if def != jiaoliu.ExchangeEntity {
			fe.Add("exchangeStatus", "applies only to exchange lists")
		} else {
			out.Eq["status"] = string(*f.ExchangeStatus)
		}
	}
	if f.ExchangeMode != nil {
		eq("exchangeMode", "mode", string(*f.ExchangeMode))
	}
	if f.LessonKind != nil {
		if def != jiaoliu.LessonEntity {
			fe.Add("lessonKind", "applies only to lesson lists")
		} else {
			out.Eq["kind"] = string(*f.LessonKind)
		}
	}
	if f.AttendanceStatus != nil {
		if def != jiaoliu.AttendanceEntity {
			fe.Add("attendanceStatus", "applies only to attendance lists")
		} else {
			out.Eq["status"] = string(*f.AttendanceStatus)
		}
	}
	if f.Locality != nil {
		eq("locality", "locality", string(*f.Locality))
	}
	if f.Tier != nil {
		eq("tier", "tier", string(*f.Tier))
	}
	dateField := ""
	for _, fd := range def.Fields {
		if fd.Kind == jiaoliu.KindDate && (fd.Name == "date" || dateField == "") {
			dateField = fd.Name
		}
	}
	if f.AcademicYear != nil {
		if _, ok := def.Field("academicYear"); ok {
			out.Eq["academicYear"] = *f.AcademicYear
		} else if y, err := jiaoliu.ParseAcademicYear(*f.AcademicYear); err != nil {
			fe.Add("academicYear", "must be an academic year such as 2026-2027")
		} else if dateField != "" {
			// For dated records, the academic year is the range 1 September – 31 August.
			from, to := y.ReferenceDate(), y.End()
			out.DateField, out.From, out.To = dateField, &from, &to
		} else {
			fe.Add("academicYear", "does not apply to "+def.Name+" lists")
		}
	}
	if f.From != nil || f.To != nil {
		if dateField == "" {
			fe.Add("from", "does not apply to "+def.Name+" lists")
		} else {
			out.DateField = dateField
			if f.From != nil {
				out.From = f.From
			}
			if f.To != nil {
				out.To = f.To
			}
		}
	}
	return out, fe.Err()
}
