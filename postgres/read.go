package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
	"github.com/jmoiron/sqlx/reflectx"
	"github.com/lib/pq"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/internal/intern"
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
	// Sessions keep them as long as they are connected: one copy for all (intern).
	return intern.Strings(toks), nil
}

// readScope is the SQL condition on a record t restricting it to what an actor may
// read, with its arguments: on the record's change-log row l (sync_log.scopes, the one
// definition of who reads what), or, for a district reader, on the record's own copy
// of the change log's district tokens (district_scopes, migration 00018), which spares
// a probe of the change log per record.
type readScope struct {
	cond string
	args []any
	log  bool // cond reads l, the record's change-log row (from joins it)
}

// from is the FROM item of the records of def as alias t, with their change-log rows as
// alias l when the condition reads them.
func (r readScope) from(def *jiaoliu.Entity) string {
	if r.log {
		return fmt.Sprintf("%s t JOIN sync_log l ON l.entity = '%s' AND l.id = t.id", def.Table, def.Name)
	}
	return def.Table + " t"
}

// districtScopes turns on reading a district reader's scope from the records' own
// district_scopes (tests turn it off to compare with the change log).
var districtScopes = true

// scope returns the condition restricting records (alias t, change-log rows alias l) to
// what the actor of ctx may read, its argument numbered argN, or an UNAUTHENTICATED
// error.
func (s *Store) scope(ctx context.Context, argN int) (readScope, error) {
	a := jiaoliu.ActorFromContext(ctx)
	if a == nil {
		return readScope{}, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in to read records")
	}
	if a.System {
		return readScope{cond: "true", log: true}, nil
	}
	toks := a.ReadTokens
	if toks == nil {
		var err error
		if toks, err = s.ActorTokens(ctx, a); err != nil {
			return readScope{}, err
		}
		a.ReadTokens = toks
	}
	if districtScopes && districtReader(toks) {
		// The tokens are written into the statement, not passed: the planner then weighs
		// the district's share of the rows (the column's most common elements) as for any
		// constant. Given as an argument, a generic plan assumes 1 % of the rows match and
		// would sort a table's rows rather than walk its ordered index to the first page
		// (a district's page of the exchanges of a year: 1,336 µs of PostgreSQL per
		// request against 368). A statement per district; a county's server serves a few.
		return readScope{cond: "t.district_scopes && " + pq.QuoteLiteral(arrayLiteral(toks)) + "::text[]"}, nil
	}
	return readScope{cond: fmt.Sprintf("l.scopes && $%d", argN), args: []any{textArray(toks)}, log: true}, nil
}

// districtReader reports whether toks are district tokens only (a district's
// administrators and auditors): such a reader may read a record exactly when one of
// them is among its change log's scopes, that is among its district_scopes.
func districtReader(toks []string) bool {
	for _, t := range toks {
		if id, ok := strings.CutPrefix(t, "d:"); !ok || !isUUID(id) {
			return false
		}
	}
	return len(toks) > 0
}

func columns(def *jiaoliu.Entity) string {
	cols := []string{"t.id", "t.version", "t.deleted", "t.created_at", "t.updated_at"}
	for _, f := range def.Fields {
		cols = append(cols, "t."+f.Column())
	}
	return strings.Join(cols, ", ")
}

// selectColumns is the select list of the columns cols and plus of def, with the id
// first, or of every column when cols is nil; a name that is not a column of def is an
// error (the list is built into SQL).
func selectColumns(def *jiaoliu.Entity, cols []string, plus ...string) (string, error) {
	if cols == nil {
		return columns(def), nil
	}
	cols = append(slices.Clip(cols), plus...)
	out := []string{"t.id"}
	for _, c := range cols {
		switch {
		case c == "id" || slices.Contains(out, "t."+c):
			continue
		case c == "version" || c == "deleted" || c == "created_at" || c == "updated_at":
		default:
			if !slices.ContainsFunc(def.Fields, func(f jiaoliu.FieldDef) bool { return f.Column() == c }) {
				return "", fmt.Errorf("get %s: no column %q", def.Name, c)
			}
		}
		out = append(out, "t."+c)
	}
	return strings.Join(out, ", "), nil
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
	return GetManyColumns[T](ctx, s, def, ids, nil)
}

// GetManyColumns is GetMany reading only the columns cols of def (its field columns or
// "id", "version", "deleted", "created_at", "updated_at"; the id is always read): the
// other fields of the records returned are zero. nil cols reads every column. It is for
// a caller that knows which fields will be read, such as a GraphQL selection.
func GetManyColumns[T any](ctx context.Context, s *Store, def *jiaoliu.Entity, ids []string, cols []string) (map[string]*T, error) {
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
	rs, err := s.scope(ctx, 2)
	if err != nil {
		return nil, err
	}
	// One id is compared as one: PostgreSQL keeps a custom plan for "= ANY($1)" when its
	// first plans were for one id (a custom plan looks cheaper than the generic one's
	// guess of ten), and plans every call again: 0.23 ms of planning for a 0.05 ms read.
	match, key := `t.id = ANY($1::uuid[])`, any(textArray(valid))
	if len(valid) == 1 {
		match, key = `t.id = $1::uuid`, valid[0]
	}
	sel, err := selectColumns(def, cols)
	if err != nil {
		return nil, err
	}
	q := fmt.Sprintf(`SELECT %s FROM %s WHERE %s AND %s`, sel, rs.from(def), match, rs.cond)
	rows, err := s.queryx(ctx, q, append([]any{key}, rs.args...)...)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", def.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		v := new(T)
		if err := rows.StructScan(v); err != nil {
			return nil, fmt.Errorf("get %s: %w", def.Name, err)
		}
		out[FieldText(v, "id")] = v
	}
	return out, rows.Err()
}

// mapper finds struct fields by column as sqlx's default mapper does.
var mapper = reflectx.NewMapperFunc("db", sqlx.NameMapper)

// fieldPaths caches the field index of a column in a domain struct: FieldText runs for
// every record of every page (its cursor, its id, its references), and looking the
// field up by name and formatting it with fmt were 7 % of the CPU of a page of
// exchanges.
var fieldPaths sync.Map // fieldOf → []int

type fieldOf struct {
	t   reflect.Type
	col string
}

// FieldText returns the value of the column col of a scanned domain struct (a pointer)
// as text, as PostgreSQL would compare it: an id, a reference, a sort key; "" for NULL.
func FieldText(v any, col string) string {
	rv := reflect.ValueOf(v).Elem()
	key := fieldOf{rv.Type(), col}
	path, ok := fieldPaths.Load(key)
	if !ok {
		fi := mapper.TypeMap(key.t).Names[col]
		if fi == nil {
			panic(fmt.Sprintf("FieldText: %s has no column %q", key.t, col))
		}
		path, _ = fieldPaths.LoadOrStore(key, fi.Index)
	}
	fv := reflectx.FieldByIndexesReadOnly(rv, path.([]int))
	if fv.Kind() == reflect.Pointer {
		if fv.IsNil() {
			return ""
		}
		fv = fv.Elem()
	}
	if fv.Kind() == reflect.String {
		return fv.String()
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

// encodeCursor returns the cursor of a row whose order column reads v: the base64 of
// the JSON of cursor. Every node of a page has one, so it is written without
// json.Marshal when v and id need no escaping (dates, numbers, ids), on the stack but
// for the string returned.
func encodeCursor(v, id string) string {
	const plainMax = 128 // the JSON written on the stack
	if len(v)+len(id)+len(`{"v":"","i":""}`) > plainMax || !plainJSON(v) || !plainJSON(id) {
		b, _ := json.Marshal(cursor{V: v, ID: id})
		return base64.RawURLEncoding.EncodeToString(b)
	}
	var js [plainMax]byte
	b := append(append(append(append(append(js[:0], `{"v":"`...), v...), `","i":"`...), id...), `"}`...)
	var enc [(plainMax*4 + 2) / 3]byte
	n := base64.RawURLEncoding.EncodedLen(len(b))
	base64.RawURLEncoding.Encode(enc[:n], b)
	return string(enc[:n])
}

// plainJSON reports whether json.Marshal writes s as it is between quotes: valid
// UTF-8 without control characters, the characters it escapes for HTML, quotes,
// backslashes, U+2028 and U+2029.
func plainJSON(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return false
		}
		i += size
	}
	return true
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
	page, _, err := ListJoined[T](ctx, s, def, q, nil)
	return page, err
}

// ListJoined is List reading with the page the records its rows refer to (joins.go),
// returned by id per join; joined is nil when the page was read without them (a narrow
// list, a range or a search, more than maxJoins joins): the caller then reads them
// itself (ReadRefs).
func ListJoined[T any](ctx context.Context, s *Store, def *jiaoliu.Entity, q jiaoliu.ListQuery, joins []Join) (page jiaoliu.Page[T], joined []map[string]any, err error) {
	first := q.First
	switch {
	case first == 0:
		first = jiaoliu.DefaultPageSize
	case first < 0 || first > jiaoliu.MaxPageSize:
		return page, nil, &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid page size",
			Fields: map[string]string{"first": fmt.Sprintf("must be 1..%d", jiaoliu.MaxPageSize)}}
	}
	// A page whose condition is on the rows alone (broadScope: the system's, or a
	// district reader's, whose scope is the rows' district_scopes) walks the entity's
	// ordered index and stops after a page; filtered by a date range, it reads the bounds
	// through subqueries (blindRange, see filter), so that PostgreSQL keeps one generic
	// plan for it (a count is planned with the values). Other scopes join the change
	// log, starting from the scope's index entries.
	blindRange := blindRanges && s.broadScope(ctx, q.Filter) && !q.WithTotal
	where, logWhere, args, err := s.filter(ctx, def, q.Filter, blindRange)
	if err != nil {
		return page, nil, err
	}
	order := orderOf[def.Name]
	of, _ := def.Field(order.field)
	col := "t." + of.Column()
	cmp, dir := ">", "ASC"
	if order.desc {
		cmp, dir = "<", "DESC"
	}
	join := fmt.Sprintf(`FROM %s WHERE %s`, readScope{log: len(logWhere) > 0}.from(def),
		strings.Join(append(slices.Clip(where), logWhere...), " AND "))
	narrow, isNarrow := narrowOf(ctx, def, q.Filter)
	switch {
	case q.WithTotal && isNarrow:
		if page.TotalCount, err = countNarrow(ctx, s, def, narrow, where, logWhere, args); err != nil {
			return page, nil, err
		}
	case q.WithTotal:
		if err := s.get(ctx, &page.TotalCount, "SELECT count(*) "+join, args...); err != nil {
			return page, nil, fmt.Errorf("count %s: %w", def.Name, err)
		}
	}
	pageWhere := ""
	if q.After != "" {
		c, err := decodeCursor(q.After)
		if err != nil {
			return page, nil, err
		}
		args = append(args, c.V, c.ID)
		pageWhere = fmt.Sprintf(" AND (%s, t.id) %s ($%d, $%d)", col, cmp, len(args)-1, len(args))
	}
	// The page size is written into the statement rather than passed: PostgreSQL plans a
	// prepared statement afresh on every call while it finds its generic plan dearer than
	// the custom ones, and with an unknown LIMIT it costs the generic plan for a tenth of
	// the table (the page of exchanges of a year was planned on every call, 0.18 ms, more
	// than running it). There are few page sizes in use, each one statement.
	limit := first + 1
	sel, err := selectColumns(def, q.Columns, of.Column())
	if err != nil {
		return page, nil, err
	}
	var items []*T
	done := false
	if isNarrow {
		if items, done, err = listNarrow[T](ctx, s, def, narrow, where, logWhere, args, pageWhere, sel, col, dir, limit); err != nil {
			return page, nil, err
		}
	}
	sqlq := fmt.Sprintf(`SELECT %s %s%s ORDER BY %s %s, t.id %s LIMIT %d`, sel, join, pageWhere, col, dir, dir, limit)
	switch {
	case done:
	case len(joins) > 0 && len(joins) <= maxJoins && (blindRange || q.Filter.From == nil && q.Filter.To == nil) && q.Filter.Search == "":
		// Not with a search, nor a range whose values the planner sees: PostgreSQL plans
		// such a page afresh on every call (its generic plan looks dearer), and planning
		// the joins with it each time cost more (0.6–0.9 ms) than the statements they
		// save; the caller reads them with ReadRefs.
		if items, joined, err = listJoined[T](ctx, s, def, joins, sqlq, args, col, dir); err != nil {
			return page, nil, err
		}
	default:
		if err := s.selectx(ctx, &items, sqlq, args...); err != nil {
			return page, nil, fmt.Errorf("list %s: %w", def.Name, err)
		}
	}
	if len(items) > first {
		items, page.HasNext = items[:first], true
	}
	page.Items = items
	for _, v := range items {
		page.Cursors = append(page.Cursors, encodeCursor(FieldText(v, of.Column()), FieldText(v, "id")))
	}
	return page, joined, nil
}

// blindRanges turns on reading a broad page's date range through subqueries (see
// filter; tests turn it off to compare).
var blindRanges = true

// broadScope reports whether a page of the actor of ctx under f is conditioned on the
// rows alone: the system's, or a district reader's (see scope) that f does not narrow to
// a school or a teacher (whose tokens only the change log has).
func (s *Store) broadScope(ctx context.Context, f jiaoliu.Filter) bool {
	a := jiaoliu.ActorFromContext(ctx)
	if a == nil || f.SchoolID != "" || f.TeacherID != "" {
		return false
	}
	return a.System || districtScopes && districtReader(a.ReadTokens)
}

// filter turns a Filter into SQL conditions on t (the entity) and on l (its log row).
//
// With blindRange, a date range's bounds are compared through subqueries, (SELECT
// $n::date), which PostgreSQL plans as InitPlans whose values it does not see: its
// custom plans of the statement then cost what its generic plan costs, and after five
// calls it keeps the generic plan instead of planning the statement on every call.
// With the values in sight, a custom plan of a month's lessons looked cheaper than the
// generic plan (it expects the month to hold 247,000 of the rows, the generic plan
// 2,500, so a page of 51 ends sooner) and PostgreSQL planned it afresh on every call
// (0.2–0.3 ms, more than running it), for the same plan: the ordered index walked
// backwards from the range's end. Only pages of a broad scope use it, whose plan is
// that walk whatever the range.
func (s *Store) filter(ctx context.Context, def *jiaoliu.Entity, f jiaoliu.Filter, blindRange bool) (where, logWhere []string, args []any, err error) {
	where = []string{"NOT t.deleted"}
	add := func(format string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(format, len(args)))
	}
	addLog := func(format string, v any) {
		args = append(args, v)
		logWhere = append(logWhere, fmt.Sprintf(format, len(args)))
	}
	rs, err := s.scope(ctx, 1) // the first condition: its argument is $1
	if err != nil {
		return nil, nil, nil, err
	}
	args = append(args, rs.args...)
	switch {
	case !rs.log:
		where = append(where, rs.cond)
	case len(rs.args) > 0: // not the system's "true"
		logWhere = append(logWhere, rs.cond)
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
		if name == "d:" && !rs.log {
			// A district token is in the record's copy of them.
			add("t.district_scopes @> ARRAY[$%d]", name+strings.ToLower(id))
			continue
		}
		addLog("l.scopes @> ARRAY[$%d]", name+strings.ToLower(id))
	}
	for name, v := range f.Eq {
		fd, ok := def.Field(name)
		if !ok {
			return nil, nil, nil, fmt.Errorf("filter %s: unknown field %s", def.Name, name)
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
		bound := "$%d"
		if blindRange {
			bound = "(SELECT $%d::date)"
		}
		if f.From != nil {
			add("t."+fd.Column()+" >= "+bound, *f.From)
		}
		if f.To != nil {
			add("t."+fd.Column()+" <= "+bound, *f.To)
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
	return where, logWhere, args, fe.Err()
}

// ChildrenOf returns the live readable records of def whose field (a reference) is one
// of parentIDs, grouped by parent, each group in the entity's default order: one query
// for a whole page of parents (the dataloaders' batch function for nested lists).
func ChildrenOf[T any](ctx context.Context, s *Store, def *jiaoliu.Entity, field string, parentIDs []string) (map[string][]*T, error) {
	fd, ok := def.Field(field)
	if !ok {
		return nil, fmt.Errorf("children of %s: unknown field %s", def.Name, field)
	}
	rs, err := s.scope(ctx, 2)
	if err != nil {
		return nil, err
	}
	order := orderOf[def.Name]
	of, _ := def.Field(order.field)
	dir := "ASC"
	if order.desc {
		dir = "DESC"
	}
	q := fmt.Sprintf(`SELECT %s FROM %s
		WHERE t.%s = ANY($1::uuid[]) AND NOT t.deleted AND %s ORDER BY t.%s %s, t.id`,
		columns(def), rs.from(def), fd.Column(), rs.cond, of.Column(), dir)
	rows, err := s.queryx(ctx, q, append([]any{textArray(parentIDs)}, rs.args...)...)
	if err != nil {
		return nil, fmt.Errorf("children of %s: %w", def.Name, err)
	}
	defer rows.Close()
	out := make(map[string][]*T, len(parentIDs))
	for rows.Next() {
		v := new(T)
		if err := rows.StructScan(v); err != nil {
			return nil, fmt.Errorf("children of %s: %w", def.Name, err)
		}
		p := FieldText(v, fd.Column())
		out[p] = append(out[p], v)
	}
	return out, rows.Err()
}

// ExchangeTally counts what has been logged for an exchange.
type ExchangeTally struct {
	ExchangeID           string `db:"exchange_id"`
	Lessons              int    `db:"lessons"`
	DemonstrationLessons int    `db:"demonstration_lessons"`
	GuidanceLessons      int    `db:"guidance_lessons"`
	DeliveredLessons     int    `db:"delivered_lessons"`
	ResearchActivities   int    `db:"research_activities"`
	Observations         int    `db:"observations"`
	Critiques            int    `db:"critiques"`
	AttendanceDays       int    `db:"attendance_days"`
	AbsentDays           int    `db:"absent_days"`
}

// ExchangeTallies counts the live records of each exchange in one query. The caller
// has already read the exchanges, so their children are in the caller's scope.
func (s *Store) ExchangeTallies(ctx context.Context, ids []string) (map[string]*ExchangeTally, error) {
	var rows []*ExchangeTally
	err := s.db.SelectContext(ctx, &rows, `
		SELECT x.id AS exchange_id,
			coalesce(l.n, 0) AS lessons, coalesce(l.demo, 0) AS demonstration_lessons, coalesce(l.guid, 0) AS guidance_lessons,
			coalesce(l.deliv, 0) AS delivered_lessons, coalesce(r.n, 0) AS research_activities,
			coalesce(o.n, 0) AS observations, coalesce(o.crit, 0) AS critiques,
			coalesce(a.n, 0) AS attendance_days, coalesce(a.absent, 0) AS absent_days
		FROM unnest($1::uuid[]) AS x(id)
		LEFT JOIN (SELECT exchange_id, count(*) n, count(*) FILTER (WHERE kind = 'DEMONSTRATION') demo,
				count(*) FILTER (WHERE kind = 'GUIDANCE') guid, count(*) FILTER (WHERE kind = 'DELIVERED') deliv
			FROM lessons WHERE exchange_id = ANY($1::uuid[]) AND NOT deleted GROUP BY exchange_id) l ON l.exchange_id = x.id
		LEFT JOIN (SELECT exchange_id, count(*) n FROM research_activities WHERE exchange_id = ANY($1::uuid[]) AND NOT deleted GROUP BY exchange_id) r ON r.exchange_id = x.id
		LEFT JOIN (SELECT exchange_id, count(*) n, count(*) FILTER (WHERE critique) crit
			FROM observations WHERE exchange_id = ANY($1::uuid[]) AND NOT deleted GROUP BY exchange_id) o ON o.exchange_id = x.id
		LEFT JOIN (SELECT exchange_id, count(*) n, count(*) FILTER (WHERE status = 'ABSENT') absent
			FROM attendance WHERE exchange_id = ANY($1::uuid[]) AND NOT deleted GROUP BY exchange_id) a ON a.exchange_id = x.id`,
		pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("exchange tallies: %w", err)
	}
	out := make(map[string]*ExchangeTally, len(rows))
	for _, r := range rows {
		out[r.ExchangeID] = r
	}
	return out, nil
}
