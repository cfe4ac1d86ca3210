package graph_test

import (
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/graph"
)

// TestDirectListsAreGqlgensLists: the nodes of a page written by the direct marshallers
// are the bytes gqlgen's code writes. On the demo data, as the system, a school
// administrator and a teacher (whose references to records outside their scope are
// null), every connection of the schema is asked for each field of its nodes on its
// own (a reference with every plain field of what it refers to), for all of them at
// once, and for references of references, with aliases, fragments and directives; each
// answer with direct lists on and off, compared byte for byte.
func TestDirectListsAreGqlgensLists(t *testing.T) {
	db, store := demoStore(t)
	actors := map[string]*jiaoliu.Actor{"system": jiaoliu.SystemActor}
	// A school administrator of the receiving school of an exchange, and its teacher
	// (whose sending school's records are outside the first's scope, and the other
	// way round).
	var ex struct{ Teacher, School, District string }
	if err := db.QueryRowx(`SELECT e.teacher_id AS teacher, e.receiving_school_id AS school, s.district_id AS district
		FROM exchanges e JOIN schools s ON s.id = e.receiving_school_id ORDER BY e.id LIMIT 1`).StructScan(&ex); err != nil {
		t.Fatal(err)
	}
	actors["school admin"] = &jiaoliu.Actor{UserID: "direct-test-school", Username: "school", Role: jiaoliu.RoleSchoolAdmin,
		DistrictID: ex.District, SchoolID: ex.School}
	actors["teacher"] = &jiaoliu.Actor{UserID: "direct-test-teacher", Username: "teacher", Role: jiaoliu.RoleTeacher,
		DistrictID: ex.District, TeacherID: ex.Teacher}
	var actor *jiaoliu.Actor
	srv := serveAs(t, store, func() *jiaoliu.Actor { return actor })
	ask := func(query string, vars map[string]any) string {
		t.Helper()
		return string(postQuery(t, srv.URL, query, vars))
	}

	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	// plain is the fields of an object type that take no arguments and are scalars or
	// enums (lists of them included).
	plain := func(typ string) []string {
		var out []string
		for _, f := range schema.Types[typ].Fields {
			if len(f.Arguments) == 0 && !strings.HasPrefix(f.Name, "__") {
				if k := schema.Types[f.Type.Name()].Kind; k == ast.Scalar || k == ast.Enum {
					out = append(out, f.Name)
				}
			}
		}
		return out
	}
	// objectFields is the fields of typ without arguments whose type is an object.
	objectFields := func(typ string) []*ast.FieldDefinition {
		var out []*ast.FieldDefinition
		for _, f := range schema.Types[typ].Fields {
			if len(f.Arguments) == 0 && schema.Types[f.Type.Name()].Kind == ast.Object && !strings.HasPrefix(f.Name, "__") {
				out = append(out, f)
			}
		}
		return out
	}
	type query struct {
		text string
		vars map[string]any
	}
	var perField, whole []query
	for _, conn := range schema.Query.Fields {
		ct := schema.Types[conn.Type.Name()]
		if ct == nil || ct.Kind != ast.Object || !strings.HasSuffix(ct.Name, "Connection") || ct.Fields.ForName("nodes") == nil || conn.Arguments.ForName("first") == nil {
			continue
		}
		node := ct.Fields.ForName("nodes").Type.Name()
		list := func(sel string) string { return "{ " + conn.Name + "(first: 100) { nodes { " + sel + " } } }" }
		all := []string{"__typename"}
		for _, f := range plain(node) {
			perField = append(perField, query{text: list("__typename " + f)})
			all = append(all, f)
		}
		for _, f := range objectFields(node) {
			sel := f.Name + " { __typename " + strings.Join(plain(f.Type.Name()), " ") + " }"
			perField = append(perField, query{text: list("__typename " + sel)})
			all = append(all, sel)
			var nested []string
			for _, g := range objectFields(f.Type.Name()) {
				nested = append(nested, g.Name+" { "+strings.Join(plain(g.Type.Name()), " ")+" }")
			}
			if len(nested) > 0 {
				whole = append(whole, query{text: list("id " + f.Name + " { id " + strings.Join(nested, " ") + " }")})
			}
		}
		whole = append(whole, query{text: list(strings.Join(all, " "))})
	}
	whole = append(whole,
		query{text: `{ lessons(first: 100) { nodes { id date period subject exchange { teacher { name } } } pageInfo { endCursor } } }`},
		query{text: `{ exchanges(first: 100) { nodes { id status teacher { name } sendingSchool { name } receivingSchool { name } } } }`},
		query{text: `query($on: Boolean!) { exchanges(first: 100) { nodes { a: id b: status t1: teacher { name } t2: teacher { ...T school { id } }
			... on Exchange { academicYear } x: sendingSchool @include(if: $on) { name } y: receivingSchool @skip(if: $on) { name } } } }
			fragment T on Teacher { title createdAt updatedAt version deleted __typename }`, vars: map[string]any{"on": true}},
		query{text: `query($on: Boolean!) { exchanges(first: 100) { nodes { x: sendingSchool @include(if: $on) { name } y: receivingSchool @skip(if: $on) { name } } } }`,
			vars: map[string]any{"on": false}},
		query{text: `{ lessons(filter: {from: "2026-09-01", to: "2026-12-31"}, first: 100) { nodes { id date exchange { teacher { name } sendingSchool { name } } school { name } } } }`},
		query{text: `{ teachers(filter: {search: "王"}, first: 100) { nodes { name school { name zone { name } } } } }`},
		query{text: `{ exchanges(first: 100) { nodes { t1: teacher { ...S } t2: teacher { ...S school { tier } } } } } fragment S on Teacher { school { name } }`},
		query{text: `{ lessons(first: 100) { totalCount edges { cursor node { id } } nodes { topic school { name } } } teachers(first: 100) { nodes { name school { name } } } }`},
	)

	// Each query is also asked with its references read by prime after the page
	// instead of joined in the page's statement (joins.go), with and without direct
	// lists.
	compare := func(who string, qs []query) (direct int) {
		for _, q := range qs {
			graph.SetDirectLists(false)
			slow := ask(q.text, q.vars)
			graph.SetJoinedRefs(false)
			primedSlow := ask(q.text, q.vars)
			graph.SetDirectLists(true)
			primedFast := ask(q.text, q.vars)
			graph.SetJoinedRefs(true)
			before := graph.DirectListed()
			fast := ask(q.text, q.vars)
			if graph.DirectListed() > before {
				direct++
			}
			if fast != slow {
				t.Errorf("%s: %s\ndirect: %.1500s\ngqlgen: %.1500s", who, q.text, fast, slow)
			}
			if primedSlow != slow || primedFast != slow {
				t.Errorf("%s: %s\njoined: %.1500s\nprimed: %.1500s\nprimed, direct: %.1500s", who, q.text, slow, primedSlow, primedFast)
			}
		}
		return direct
	}
	actor = jiaoliu.SystemActor
	n := compare("system", perField)
	t.Logf("%d of %d single-field queries written directly", n, len(perField))
	if n < len(perField)/2 {
		t.Errorf("only %d of %d single-field queries written directly", n, len(perField))
	}
	for who, a := range actors {
		actor = a
		n := compare(who, whole)
		t.Logf("%s: %d of %d queries written directly", who, n, len(whole))
	}
	// The lists of the benchmark are written directly.
	actor = jiaoliu.SystemActor
	for _, q := range whole[len(whole)-5 : len(whole)-3] {
		before := graph.DirectListed()
		ask(q.text, q.vars)
		if graph.DirectListed() == before {
			t.Errorf("not written directly: %s", q.text)
		}
	}
}
