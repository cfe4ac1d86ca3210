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

// narrowTokens returns the schools and teachers whose tokens bound the rows of def that
// the actor of ctx may read under f, and whether the list is narrow at all: the filter's
// teacher, else its school, else the actor's own tokens when none is a district's. A
// token that no exchange child carries (ps:, pd:) bounds nothing. perRow is true when
// many candidates may fail the change-log condition, which must then be checked on each
// candidate rather than on the page.
func narrowTokens(ctx context.Context, def *jiaoliu.Entity, f jiaoliu.Filter) (schools, teachers []string, perRow, ok bool) {
	if _, child := narrowChildren[def.Name]; !child || !narrowLists {
		return nil, nil, false, false
	}
	var toks []string
	a := jiaoliu.ActorFromContext(ctx)
	switch {
	case f.TeacherID != "":
		toks = []string{"t:" + f.TeacherID}
	case f.SchoolID != "":
		toks = []string{"s:" + f.SchoolID}
	case a == nil || a.System || a.ReadTokens == nil:
		return nil, nil, false, false
	default:
		toks = a.ReadTokens
	}
	// Narrowed by the filter, an actor who does not read a whole district (a school
	// administrator's lessons of one teacher) may read only some of the candidates.
	perRow = (f.TeacherID != "" || f.SchoolID != "") && a != nil && !a.System &&
		!slices.ContainsFunc(a.ReadTokens, func(t string) bool { return strings.HasPrefix(t, "d:") })
	schools, teachers = []string{}, []string{}
	for _, t := range toks {
		kind, id, _ := strings.Cut(t, ":")
		switch kind {
		case "d":
			return nil, nil, false, false
		case "s":
			schools = append(schools, strings.ToLower(id))
		case "t", "w":
			teachers = append(teachers, strings.ToLower(id))
		}
	}
	return schools, teachers, perRow, true
}

// listNarrow reads a page of def by exchange (see above): where, logWhere and args are
// filter's, pageWhere the keyset condition, sel the select list, order the list's order
// ("t.date DESC, t.id DESC"), limit the argument number of the page size plus one. It
// returns false when the change log disagreed with a candidate of the page; the caller
// then reads the list the general way.
func listNarrow[T any](ctx context.Context, s *Store, def *jiaoliu.Entity, schools, teachers []string, perRow bool,
	where, logWhere []string, args []any, pageWhere, sel, orderCol, dir string, limit int) ([]*T, bool, error) {
	args = append(args, pq.Array(schools), pq.Array(teachers))
	sArg, tArg := len(args)-1, len(args)
	readable := "true"
	if len(logWhere) > 0 {
		readable = strings.Join(logWhere, " AND ")
	}
	readable = fmt.Sprintf("(SELECT %s FROM sync_log l WHERE l.entity = '%s' AND l.id = t.id)", readable, def.Name)
	cond := strings.Join(where, " AND ") + pageWhere
	if perRow {
		cond += " AND " + readable
	}
	order := fmt.Sprintf("%s %s, t.id %s", orderCol, dir, dir)
	q := fmt.Sprintf(`WITH x AS (SELECT id FROM exchanges WHERE sending_school_id = ANY($%[1]d::uuid[])
			OR receiving_school_id = ANY($%[1]d::uuid[]) OR teacher_id = ANY($%[2]d::uuid[])),
		c AS (SELECT c.* FROM x, LATERAL (SELECT %[3]s FROM %[4]s t WHERE t.exchange_id = x.id AND %[5]s ORDER BY %[6]s LIMIT $%[7]d) c`,
		sArg, tArg, sel, def.Table, cond, order, limit)
	if narrowChildren[def.Name] {
		q += fmt.Sprintf(`
			UNION ALL (SELECT %[1]s FROM %[2]s t WHERE t.school_id = ANY($%[3]d::uuid[]) AND t.exchange_id NOT IN (SELECT id FROM x)
				AND %[4]s ORDER BY %[5]s LIMIT $%[6]d)`, sel, def.Table, sArg, cond, order, limit)
	}
	q += fmt.Sprintf(`)
		SELECT t.*, coalesce(%s, false) AS readable_ FROM c t ORDER BY %s LIMIT $%d`, readable, order, limit)
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
