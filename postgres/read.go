package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
)

// orderOf is the default order of each entity's lists: the field and whether newest
// first. Every order ends with the id, so that keyset cursors are stable.
var orderOf = map[string]struct {
	field string
	desc  bool
}{
	"district": {"name", false}, "zone": {"name", false}, "schoolGroup": {"name", false},
	"school": {"name", false}, "teacher": {"name", false}, "schoolStint": {"startDate", true},
	"deferral": {"startsOn", true}, "exchange": {"plannedStart", true}, "lesson": {"date", true},
	"observation": {"date", true}, "researchActivity": {"date", true}, "attendance": {"date", true},
	"mentoringPair": {"academicYear", true}, "mentoringActivity": {"date", true},
	"evaluation": {"term", true}, "semesterReport": {"term", true}, "policy": {"academicYear", true},
}

// ActorTokens returns the scope tokens an actor reads with (see migration 00002). The
// system actor reads everything and gets nil.
func (s *Store) ActorTokens(ctx context.Context, a *jiaoliu.Actor) ([]string, error) {
	if a == nil || a.System {
		return nil, nil
	}
	var toks []string
	if err := s.db.GetContext(ctx, pq.Array(&toks), `SELECT actor_tokens($1, $2, $3, $4)`,
		string(a.Role), nullID(a.DistrictID), nullID(a.SchoolID), nullID(a.TeacherID)); err != nil {
		return nil, fmt.Errorf("actor scope: %w", err)
	}
	return toks, nil
}

// scope returns the SQL condition restricting rows of sync_log alias l to what the
// actor of ctx may read, with its argument, or an UNAUTHENTICATED error.
func (s *Store) scope(ctx context.Context, argN int) (string, []any, error) {
	a := jiaoliu.ActorFromContext(ctx)
	if a == nil {
		return "", nil, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to read records")
	}
	if a.System {
		return "true", nil, nil
	}
	toks := a.ReadTokens
	if toks == nil {
		var err error
		if toks, err = s.ActorTokens(ctx, a); err != nil {
			return "", nil, err
		}
		a.ReadTokens = toks
	}
	return fmt.Sprintf("l.scopes && $%d", argN), []any{pq.Array(toks)}, nil
}

func columns(def *jiaoliu.Entity) string {
	cols := []string{"t.id", "t.version", "t.deleted", "t.created_at", "t.updated_at"}
	for _, f := range def.Fields {
		cols = append(cols, "t."+f.Column())
	}
	return strings.Join(cols, ", ")
}

// Get returns the record of def with the given id if the actor of ctx may read it, or
// NOT_FOUND — also when it exists outside the actor's scope, which reveals nothing.
func Get[T any](ctx context.Context, s *Store, def *jiaoliu.Entity, id string) (*T, error) {
	m, err := GetMany[T](ctx, s, def, []string{id})
	if err != nil {
		return nil, err
	}
	if v := m[id]; v != nil {
		return v, nil
	}
	return nil, jiaoliu.Errorf(jiaoliu.ENOTFOUND, "%s %s not found", def.Name, id)
}

// GetMany returns the readable records of def among ids, keyed by id, in one query (the
// dataloaders' batch function). Tombstones are included: a child may refer to a
// deleted parent, and the tombstone still names it.
func GetMany[T any](ctx context.Context, s *Store, def *jiaoliu.Entity, ids []string) (map[string]*T, error) {
	valid := make([]string, 0, len(ids))
	for _, id := range ids {
		if isUUID(id) {
			valid = append(valid, id)
		}
	}
	out := make(map[string]*T, len(valid))
	if len(valid) == 0 {
		return out, nil
	}
	cond, args, err := s.scope(ctx, 2)
	if err != nil {
		return nil, err
	}
	q := fmt.Sprintf(`SELECT %s FROM %s t JOIN sync_log l ON l.entity = '%s' AND l.id = t.id WHERE t.id = ANY($1::uuid[]) AND %s`,
		columns(def), def.Table, def.Name, cond)
	rows, err := s.db.QueryxContext(ctx, q, append([]any{pq.Array(valid)}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", def.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		v := new(T)
		if err := rows.StructScan(v); err != nil {
			return nil, fmt.Errorf("get %s: %w", def.Name, err)
		}
		out[s.fieldText(v, "id")] = v
	}
	return out, rows.Err()
}

// fieldText returns the value of the column col of a scanned domain struct as text,
// as PostgreSQL would compare it: the id for maps, the sort key for cursors.
func (s *Store) fieldText(v any, col string) string {
	fv := s.db.Mapper.FieldByName(reflect.ValueOf(v).Elem(), col)
	if fv.Kind() == reflect.Pointer {
		if fv.IsNil() {
			return ""
		}
		fv = fv.Elem()
	}
	switch x := fv.Interface().(type) {
	case jiaoliu.Date:
		return x.String()
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(fv.Interface())
}

type cursor struct {
	V  string `json:"v"`
	ID string `json:"i"`
}

func encodeCursor(v, id string) string {
	b, _ := json.Marshal(cursor{V: v, ID: id})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || !isUUID(c.ID) {
		return c, &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid cursor", Fields: map[string]string{"after": "is not a cursor from this list"}}
	}
	return c, nil
}

// List returns one page of the live records of def matching q that the actor of ctx
// may read, in the entity's default order, with keyset pagination.
func List[T any](ctx context.Context, s *Store, def *jiaoliu.Entity, q jiaoliu.ListQuery) (jiaoliu.Page[T], error) {
	var page jiaoliu.Page[T]
	first := q.First
	switch {
	case first == 0:
		first = jiaoliu.DefaultPageSize
	case first < 0 || first > jiaoliu.MaxPageSize:
		return page, &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid page size",
			Fields: map[string]string{"first": fmt.Sprintf("must be 1..%d", jiaoliu.MaxPageSize)}}
	}
	where, args, err := s.filter(ctx, def, q.Filter)
	if err != nil {
		return page, err
	}
	order := orderOf[def.Name]
	of, _ := def.Field(order.field)
	col := "t." + of.Column()
	cmp, dir := ">", "ASC"
	if order.desc {
		cmp, dir = "<", "DESC"
	}
	base := fmt.Sprintf(`FROM %s t JOIN sync_log l ON l.entity = '%s' AND l.id = t.id WHERE %s`, def.Table, def.Name, strings.Join(where, " AND "))
	if q.WithTotal {
		if err := s.db.GetContext(ctx, &page.TotalCount, "SELECT count(*) "+base, args...); err != nil {
			return page, fmt.Errorf("count %s: %w", def.Name, err)
		}
	}
	pageWhere := ""
	if q.After != "" {
		c, err := decodeCursor(q.After)
		if err != nil {
			return page, err
		}
		args = append(args, c.V, c.ID)
		pageWhere = fmt.Sprintf(" AND (%s, t.id) %s ($%d, $%d)", col, cmp, len(args)-1, len(args))
	}
	args = append(args, first+1)
	sqlq := fmt.Sprintf(`SELECT %s %s%s ORDER BY %s %s, t.id %s LIMIT $%d`,
		columns(def), base, pageWhere, col, dir, dir, len(args))
	rows, err := s.db.QueryxContext(ctx, sqlq, args...)
	if err != nil {
		return page, fmt.Errorf("list %s: %w", def.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		v := new(T)
		if err := rows.StructScan(v); err != nil {
			return page, fmt.Errorf("list %s: %w", def.Name, err)
		}
		if len(page.Items) == first {
			page.HasNext = true
			break
		}
		page.Items = append(page.Items, v)
		page.Cursors = append(page.Cursors, encodeCursor(s.fieldText(v, of.Column()), s.fieldText(v, "id")))
	}
	return page, rows.Err()
}

// filter turns a Filter into SQL conditions on t (the entity) and l (its log row).
func (s *Store) filter(ctx context.Context, def *jiaoliu.Entity, f jiaoliu.Filter) ([]string, []any, error) {
	where := []string{"NOT t.deleted"}
	var args []any
	add := func(format string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(format, len(args)))
	}
	cond, sargs, err := s.scope(ctx, 1)
	if err != nil {
		return nil, nil, err
	}
	if len(sargs) > 0 {
		add("l.scopes && $%d", sargs[0])
	} else {
		where = append(where, cond)
	}
	fe := jiaoliu.FieldErrors{}
	for name, id := range map[string]string{"d:": f.DistrictID, "s:": f.SchoolID, "t:": f.TeacherID} {
		if id == "" {
			continue
		}
		if !isUUID(id) {
			fe.Add(map[string]string{"d:": "districtId", "s:": "schoolId", "t:": "teacherId"}[name], "must be an id (UUID)")
			continue
		}
		add("l.scopes @> ARRAY[$%d]", name+strings.ToLower(id))
	}
	for name, v := range f.Eq {
		fd, ok := def.Field(name)
		if !ok {
			return nil, nil, fmt.Errorf("filter %s: unknown field %s", def.Name, name)
		}
		pv, err := fd.Parse(v)
		if err != nil {
			fe.Add(name, err.Error())
			continue
		}
		add("t."+fd.Column()+" = $%d", pv)
	}
	if f.DateField != "" {
		fd, _ := def.Field(f.DateField)
		if f.From != nil {
			add("t."+fd.Column()+" >= $%d", *f.From)
		}
		if f.To != nil {
			add("t."+fd.Column()+" <= $%d", *f.To)
		}
		if f.From != nil && f.To != nil && f.To.Before(*f.From) {
			fe.Add("to", "must not be before from")
		}
	}
	if f.Search != "" {
		if _, ok := def.Field("name"); ok {
			add("t.name ILIKE '%%' || $%d || '%%'", strings.NewReplacer("%", `\%`, "_", `\_`).Replace(f.Search))
		}
	}
	return where, args, fe.Err()
}
