package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/jmoiron/sqlx/reflectx"

	"github.com/jiaoliu/jiaoliu"
)

// Joined references.
//
// A page whose nodes show what they refer to (a lesson's exchange and its teacher, an
// exchange's teacher and schools) was three statements: the page, then the records it
// refers to a level at a time (graph/prime.go). Each statement is a round trip, a
// portal and an executor in PostgreSQL, and in the server a driver call, a scan and
// their allocations. With joins the page's statement reads them too: each reference
// is a LEFT JOIN LATERAL of one row by id, under the same read condition as
// GetManyColumns, so what the actor may not read comes back NULL, as a missing record
// does.

// A Join is a reference read with a page: the records of Entity whose id is in the
// column Column of the page's rows (Parent -1) or of the records of the join Parent (an
// earlier one), reading the columns Columns of Entity (nil: all; see GetManyColumns).
// New returns a new record of Entity (a pointer to its struct).
type Join struct {
	Parent  int
	Column  string
	Entity  *jiaoliu.Entity
	Columns []string
	New     func() any
}

// maxJoins bounds the joins of one statement.
const maxJoins = 6

// joinsSQL returns the select list of the joins' columns (each named _j<i>_<column>)
// and their LEFT JOIN LATERAL clauses, under the read condition rs; a join of the page's
// rows (Parent -1) reads its id from the column of the rows of alias p.
func joinsSQL(joins []Join, rs readScope) (sel, from string, err error) {
	var sb, fb strings.Builder
	for i, j := range joins {
		cols, err := selectColumns(j.Entity, j.Columns)
		if err != nil {
			return "", "", err
		}
		parent := "p." + j.Column
		if j.Parent >= 0 {
			parent = fmt.Sprintf("j%d.%s", j.Parent, j.Column)
		}
		for c := range strings.SplitSeq(cols, ", ") {
			col := strings.TrimPrefix(c, "t.")
			if sb.Len() > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "j%d.%s AS _j%d_%s", i, col, i, col)
		}
		// LIMIT 1 keeps the lateral read a probe by id per row (PostgreSQL would otherwise
		// pull it up into a join it may plan as a hash of the whole table).
		fmt.Fprintf(&fb, ` LEFT JOIN LATERAL (SELECT %s FROM %s
			WHERE t.id = %s AND %s LIMIT 1) j%d ON true`, cols, rs.from(j.Entity), parent, rs.cond, i)
	}
	return sb.String(), fb.String(), nil
}

// joinedPageSQL wraps the page's statement page (selecting from alias t, ordered by
// orderCol dir, t.id dir) with the joins; the page's rows keep their order.
func joinedPageSQL(page string, joins []Join, rs readScope, orderCol, dir string) (string, error) {
	sel, from, err := joinsSQL(joins, rs)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("SELECT p.*, %s FROM (%s) p%s ORDER BY p.%s %s, p.id %s",
		sel, page, from, strings.TrimPrefix(orderCol, "t."), dir, dir), nil
}

// scanJoined reads the rows of a joined page: the page's columns into new Ts, each
// join's (named _j<i>_<column>) into records of its entity, returned by id per join.
func scanJoined[T any](rows *sqlx.Rows, joins []Join) ([]*T, []map[string]any, error) {
	var items []*T
	found, err := scanJoins(rows, joins, reflect.TypeFor[T](), func(v reflect.Value) { items = append(items, v.Addr().Interface().(*T)) })
	return items, found, err
}

// scannerType is sql.Scanner, which a field may implement to read its column itself.
var scannerType = reflect.TypeFor[sql.Scanner]()

// scanJoins reads rows of joins' columns (named _j<i>_<column>) into records of their
// entities, returned by id per join, and the other columns into a new value of page
// for each row, passed to item (none without page).
func scanJoins(rows *sqlx.Rows, joins []Join, pageType reflect.Type, item func(reflect.Value)) ([]map[string]any, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	// Where each column goes: the page's record (join -1) or a join's, at a field path.
	type target struct {
		join int
		path []int
		ptr  reflect.Type // a pointer to the field's type
		// str: a join's field of a string kind without a Scan method of its own (ids,
		// names, enums), scanned into a sql.NullString reused from row to row and set
		// only into a new record, instead of a new value per row.
		str bool
	}
	targets := make([]target, len(cols))
	idCol := make([]int, len(joins)) // the column of each join's id
	for i, c := range cols {
		tg := target{join: -1}
		name := c
		if rest, ok := strings.CutPrefix(c, "_j"); ok {
			k, col, _ := strings.Cut(rest, "_")
			n, err := strconv.Atoi(k)
			if err != nil || n >= len(joins) {
				return nil, fmt.Errorf("unexpected column %q", c)
			}
			tg.join, name = n, col
		}
		t := pageType
		if tg.join < 0 && t == nil {
			return nil, fmt.Errorf("unexpected column %q", c)
		}
		if tg.join >= 0 {
			t = reflect.TypeOf(joins[tg.join].New()).Elem()
			if name == "id" {
				idCol[tg.join] = i
			}
		}
		fi := mapper.TypeMap(t).Names[name]
		if fi == nil {
			return nil, fmt.Errorf("no field for column %q in %s", c, t)
		}
		tg.path, tg.ptr = fi.Index, reflect.PointerTo(fi.Field.Type)
		tg.str = tg.join >= 0 && fi.Field.Type.Kind() == reflect.String && !tg.ptr.Implements(scannerType)
		targets[i] = tg
	}
	// Sized for a page of the default size (a map grown from empty rehashed four times).
	found := make([]map[string]any, len(joins))
	for i := range found {
		found[i] = make(map[string]any, jiaoliu.DefaultPageSize+1)
	}
	// A join's columns are NULL when it found nothing: scanned through a pointer
	// (database/sql converts as it would into the field, then points the pointer at a
	// new value, or sets it nil for NULL: the pointers are reused from row to row),
	// or into a sql.NullString (str), then copied.
	dest := make([]any, len(cols))
	for i, tg := range targets {
		switch {
		case tg.str:
			dest[i] = new(sql.NullString)
		case tg.join >= 0:
			dest[i] = reflect.New(tg.ptr).Interface()
		}
	}
	// scanned returns what a join's column c read: its text (a string kind's, for an
	// id) and its value, and false for NULL.
	scanned := func(c int) (string, reflect.Value, bool) {
		if targets[c].str {
			ns := dest[c].(*sql.NullString)
			return ns.String, reflect.Value{}, ns.Valid
		}
		p := reflect.ValueOf(dest[c]).Elem()
		if p.IsNil() {
			return "", reflect.Value{}, false
		}
		if v := p.Elem(); v.Kind() == reflect.String {
			return v.String(), v, true
		}
		return "", p.Elem(), true
	}
	for rows.Next() {
		var iv reflect.Value
		if pageType != nil {
			iv = reflect.New(pageType).Elem()
		}
		for i, tg := range targets {
			if tg.join < 0 {
				dest[i] = reflectx.FieldByIndexes(iv, tg.path).Addr().Interface()
			}
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		for i, j := range joins {
			// A record is made once, from the first row that refers to it.
			id, _, ok := scanned(idCol[i])
			if !ok {
				continue
			}
			if _, ok := found[i][id]; ok {
				continue
			}
			rec := reflect.ValueOf(j.New())
			for c, tg := range targets {
				if tg.join != i {
					continue
				}
				text, v, ok := scanned(c)
				switch {
				case !ok:
				case tg.str:
					reflectx.FieldByIndexes(rec.Elem(), tg.path).SetString(text)
				default:
					reflectx.FieldByIndexes(rec.Elem(), tg.path).Set(v)
				}
			}
			found[i][id] = rec.Interface()
		}
		if pageType != nil {
			item(iv)
		}
	}
	return found, rows.Err()
}

// listJoined runs the page's statement page (with its arguments args) with the joins.
func listJoined[T any](ctx context.Context, s *Store, def *jiaoliu.Entity, joins []Join, page string, args []any, orderCol, dir string) ([]*T, []map[string]any, error) {
	rs, err := s.scope(ctx, len(args)+1)
	if err != nil {
		return nil, nil, err
	}
	q, err := joinedPageSQL(page, joins, rs, orderCol, dir)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", def.Name, err)
	}
	rows, err := s.queryx(ctx, q, append(slices.Clip(args), rs.args...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s with references: %w", def.Name, err)
	}
	defer rows.Close()
	items, found, err := scanJoined[T](rows, joins)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s with references: %w", def.Name, err)
	}
	return items, found, nil
}

// ReadRefs reads the records that the records items refer to through joins (as
// ListJoined would with the page) in one statement: its rows are the items'
// references, given as arrays.
func ReadRefs(ctx context.Context, s *Store, items []any, joins []Join) ([]map[string]any, error) {
	if len(items) == 0 || len(joins) == 0 || len(joins) > maxJoins {
		return nil, nil
	}
	var rootCols []string // the items' columns the joins of the page's rows read
	for _, j := range joins {
		if j.Parent < 0 && !slices.Contains(rootCols, j.Column) {
			rootCols = append(rootCols, j.Column)
		}
	}
	var args []any
	for _, c := range rootCols {
		ids := make([]sql.NullString, len(items))
		for i, v := range items {
			if id := FieldText(v, c); id != "" {
				ids[i] = sql.NullString{String: id, Valid: true}
			}
		}
		args = append(args, nullTextArray(ids))
	}
	rs, err := s.scope(ctx, len(args)+1)
	if err != nil {
		return nil, err
	}
	sel, from, err := joinsSQL(joins, rs)
	if err != nil {
		return nil, err
	}
	unnest := make([]string, len(rootCols))
	for i := range rootCols {
		unnest[i] = fmt.Sprintf("$%d::uuid[]", i+1)
	}
	q := fmt.Sprintf("SELECT %s FROM unnest(%s) AS p(%s)%s", sel, strings.Join(unnest, ", "), strings.Join(rootCols, ", "), from)
	rows, err := s.queryx(ctx, q, append(args, rs.args...)...)
	if err != nil {
		return nil, fmt.Errorf("read references: %w", err)
	}
	defer rows.Close()
	found, err := scanJoins(rows, joins, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("read references: %w", err)
	}
	return found, nil
}
