package postgres

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/jmoiron/sqlx"
	"github.com/jmoiron/sqlx/reflectx"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
)

// A narrow list of an exchange's children (a school administrator's or a teacher's
// lessons, or anyone's lessons of one school or one teacher) cannot walk the entity's
// ordered index as broad lists do: a school's lessons are 1 in 150 of the district's,
// so the walk probes the change log for thousands of rows before it has a page. Nor
// can it start from the scope's change-log entries: they are thousands of random rows
// to fetch and sort. It reads instead, for each exchange whose children can carry the
// narrowing token, that exchange's first rows in the list's order (its own index), and
// merges them.
//
// This rests on what exchange_child_tokens (migration 00005) puts in the change log
// for these entities, kept current in the same transaction as any change of an
// exchange's schools (refreshRelated) — an exchange's teacher and a child's exchange
// cannot change: a child carries
//   - "t:T" (and "w:T") exactly when its exchange's teacher is T;
//   - "s:S" exactly when its exchange's sending or receiving school is S, or (lessons
//     only) the lesson's own school is S;
//   - "d:D" for the districts of those schools, and no other token.
// So the candidates are a superset of the rows a token reads. The change-log condition
// is still checked, on the merged page; should any candidate there not pass it (the log
// disagreeing with the tables), the list is read the general way instead.
// TestNarrowListsAreTheJoinedLists compares both ways.

// narrowChildren are the entities listed by exchange, and whether a row's own school
// column narrows it too.
var narrowChildren = map[string]bool{
	"lesson": true, "attendance": false, "researchActivity": false, "semesterReport": false,
}

// narrowFallbacks counts the pages read the general way because a candidate did not
// pass the change-log condition (never, while the log agrees with the tables).
var narrowFallbacks atomic.Int64

// narrowLists turns on the by-exchange reading of narrow lists (tests turn it off to
// compare both forms).
var narrowLists = true

// narrowScope bounds a narrow list: the schools and teachers whose tokens the rows it
// may list carry one of.
type narrowScope struct {
	schools, teachers []string
	// perRow is true when many candidates may fail the change-log condition, which is
	// then checked on each candidate rather than on the page.
	perRow bool
}

// narrowOf returns the scope of a narrow list of def for the actor of ctx under f, and
// whether the list is narrow at all: the filter's teacher, else its school, else the
// actor's own tokens when none is a district's. A token that no exchange child carries
// (ps:, pd:) bounds nothing.
func narrowOf(ctx context.Context, def *jiaoliu.Entity, f jiaoliu.Filter) (narrowScope, bool) {
	var n narrowScope
	if _, child := narrowChildren[def.Name]; !child || !narrowLists {
		return n, false
	}
	var toks []string
	a := jiaoliu.ActorFromContext(ctx)
	switch {
	case f.TeacherID != "":
		toks = []string{"t:" + f.TeacherID}
	case f.SchoolID != "":
		toks = []string{"s:" + f.SchoolID}
	case a == nil || a.System || a.ReadTokens == nil:
		return n, false
	default:
		toks = a.ReadTokens
	}
	// Narrowed by the filter, an actor who does not read a whole district (a school
	// administrator's lessons of one teacher) may read only some of the candidates.
	n.perRow = (f.TeacherID != "" || f.SchoolID != "") && a != nil && !a.System &&
		!slices.ContainsFunc(a.ReadTokens, func(t string) bool { return strings.HasPrefix(t, "d:") })
	n.schools, n.teachers = []string{}, []string{}
	for _, t := range toks {
		kind, id, _ := strings.Cut(t, ":")
		switch kind {
		case "d":
			return n, false
		case "s":
			n.schools = append(n.schools, strings.ToLower(id))
		case "t", "w":
			n.teachers = append(n.teachers, strings.ToLower(id))
		}
	}
	return n, true
}

// readable is the change-log condition logWhere on the row t of def, as a subquery
// (NULL when the row has no log entry).
func readable(def *jiaoliu.Entity, logWhere []string) string {
	cond := "true"
	if len(logWhere) > 0 {
		cond = strings.Join(logWhere, " AND ")
	}
	return fmt.Sprintf("(SELECT %s FROM sync_log l WHERE l.entity = '%s' AND l.id = t.id)", cond, def.Name)
}

// candidates returns the SQL of the candidate rows of def matching cond, each branch
// followed by tail (its order and limit), selecting sel, as a WITH query ending in the
// table expression c, and args with its arguments.
func (n narrowScope) candidates(def *jiaoliu.Entity, args []any, sel, cond, tail string) (string, []any) {
	args = append(args, pq.Array(n.schools), pq.Array(n.teachers))
	sArg, tArg := len(args)-1, len(args)
	q := fmt.Sprintf(`WITH x AS (SELECT id FROM exchanges WHERE sending_school_id = ANY($%[1]d::uuid[])
			OR receiving_school_id = ANY($%[1]d::uuid[]) OR teacher_id = ANY($%[2]d::uuid[])),
		c AS (SELECT c.* FROM x, LATERAL (SELECT %[3]s FROM %[4]s t WHERE t.exchange_id = x.id AND %[5]s %[6]s) c`,
		sArg, tArg, sel, def.Table, cond, tail)
	if narrowChildren[def.Name] {
		q += fmt.Sprintf(`
			UNION ALL (SELECT %[1]s FROM %[2]s t WHERE t.school_id = ANY($%[3]d::uuid[]) AND t.exchange_id NOT IN (SELECT id FROM x)
				AND %[4]s %[5]s)`, sel, def.Table, sArg, cond, tail)
	}
	return q + ")", args
}

// countNarrow counts the rows of def a narrow list has (see listNarrow for the
// arguments), the change-log condition checked on every candidate.
func countNarrow(ctx context.Context, s *Store, def *jiaoliu.Entity, n narrowScope, where, logWhere []string, args []any) (int, error) {
	cond := strings.Join(where, " AND ") + " AND " + readable(def, logWhere)
	q, args := n.candidates(def, args, "t.id", cond, "")
	var count int
	if err := s.get(ctx, &count, q+` SELECT count(*) FROM c`, args...); err != nil {
		return 0, fmt.Errorf("count %s by exchange: %w", def.Name, err)
	}
	return count, nil
}

// listNarrow reads a page of def by exchange (see above): where, logWhere and args are
// filter's, pageWhere the keyset condition, sel the select list, orderCol and dir the
// list's order, limit the page size plus one. It returns false
// when the change log disagreed with a candidate of the page; the caller then reads the
// list the general way.
func listNarrow[T any](ctx context.Context, s *Store, def *jiaoliu.Entity, n narrowScope,
	where, logWhere []string, args []any, pageWhere, sel, orderCol, dir string, limit int) ([]*T, bool, error) {
	cond := strings.Join(where, " AND ") + pageWhere
	if n.perRow {
		cond += " AND " + readable(def, logWhere)
	}
	order := fmt.Sprintf("ORDER BY %s %s, t.id %s LIMIT %d", orderCol, dir, dir, limit)
	q, args := n.candidates(def, args, sel, cond, order)
	q += fmt.Sprintf(`
		SELECT t.*, coalesce(%s, false) AS readable_ FROM c t %s`, readable(def, logWhere), order)
	rows, err := s.queryx(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list %s by exchange: %w", def.Name, err)
	}
	defer rows.Close()
	var items []*T
	scan, err := flaggedScanner[T](rows)
	if err != nil {
		return nil, false, fmt.Errorf("list %s by exchange: %w", def.Name, err)
	}
	for rows.Next() {
		v, ok, err := scan()
		if err != nil {
			return nil, false, fmt.Errorf("list %s by exchange: %w", def.Name, err)
		}
		if !ok {
			narrowFallbacks.Add(1)
			s.log.WarnContext(ctx, "change log disagrees with the tables; list read the general way",
				"entity", def.Name, "id", FieldText(v, "id"))
			return nil, false, nil
		}
		items = append(items, v)
	}
	return items, true, rows.Err()
}

// flaggedScanner returns a function scanning the current row of rows into a new T, as
// StructScan would, except for its last column, a boolean, which it returns.
func flaggedScanner[T any](rows *sqlx.Rows) (func() (*T, bool, error), error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	paths := mapper.TraversalsByName(reflect.TypeFor[T](), cols[:len(cols)-1])
	for i, p := range paths {
		if len(p) == 0 {
			return nil, fmt.Errorf("no field for column %q", cols[i])
		}
	}
	dest := make([]any, len(cols))
	return func() (*T, bool, error) {
		v := new(T)
		rv := reflect.ValueOf(v).Elem()
		for i, p := range paths {
			dest[i] = reflectx.FieldByIndexes(rv, p).Addr().Interface()
		}
		var flag bool
		dest[len(cols)-1] = &flag
		if err := rows.Scan(dest...); err != nil {
			return nil, false, err
		}
		return v, flag, nil
	}, nil
}
