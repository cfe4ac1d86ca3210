package graph_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/graph"
)

// TestPageReferencesAreReadAhead: the references of a page's nodes (and theirs) are
// read with the page, joined or in statements of their own, and the nested resolvers
// take them from there: no resolver of the page asks a loader. A single record's
// references, which nothing reads ahead, go through the loaders (so the count counts).
func TestPageReferencesAreReadAhead(t *testing.T) {
	db, store := demoStore(t)
	srv := serveAs(t, store, func() *jiaoliu.Actor { return jiaoliu.SystemActor })
	ask := func(query string, vars map[string]any) map[string]any {
		t.Helper()
		var out struct {
			Data   map[string]any
			Errors []any
		}
		if err := json.Unmarshal(postQuery(t, srv.URL, query, vars), &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Errors) > 0 {
			t.Fatalf("%s: errors %v", query, out.Errors)
		}
		return out.Data
	}
	var lessonDate string
	if err := db.Get(&lessonDate, `SELECT date::text FROM lessons WHERE NOT deleted ORDER BY date LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	pages := []struct {
		name, query string
		vars        map[string]any
	}{
		{"exchanges (joined)", `{ exchanges(first: 20) { nodes { id teacher { name school { name } } sendingSchool { name } receivingSchool { name tier } } } }`, nil},
		{"lessons of a date range (one statement of references)", `query($d: Date!) { lessons(filter: {from: $d, to: $d}, first: 20) { nodes { id exchange { teacher { name } receivingSchool { name } } } } }`,
			map[string]any{"d": lessonDate}},
		{"teachers, edges", `{ teachers(first: 20) { edges { node { name school { name district { name } } } } } }`, nil},
	}
	for _, joined := range []bool{true, false} {
		prev := graph.SetJoinedRefs(joined)
		for _, p := range pages {
			before := graph.LoadedByID()
			data := ask(p.query, p.vars)
			if n := graph.LoadedByID() - before; n != 0 {
				t.Errorf("%s, joins %v: %d references asked of the loaders, want 0 (all read ahead)", p.name, joined, n)
			}
			if b, _ := json.Marshal(data); !bytes.Contains(b, []byte(`"name":"`)) {
				t.Errorf("%s: no names in %s: the test reads nothing", p.name, b)
			}
		}
		graph.SetJoinedRefs(prev)
	}
	var exchange string
	if err := db.Get(&exchange, `SELECT id::text FROM exchanges WHERE NOT deleted ORDER BY id LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	before := graph.LoadedByID()
	ask(`query($id: ID!) { exchange(id: $id) { teacher { name } sendingSchool { name } } }`, map[string]any{"id": exchange})
	if n := graph.LoadedByID() - before; n != 2 {
		t.Errorf("one exchange's teacher and school: %d asked of the loaders, want 2", n)
	}
}
