package graph_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/graph"
)

// TestPostTransportIsGqlgens: the POST transport answers every request — data only,
// data with characters json.Marshal escapes, field errors, syntax and validation
// errors, a body that is not JSON, each Accept header — with the status, media type
// and bytes of gqlgen's own.
func TestPostTransportIsGqlgens(t *testing.T) {
	db, store := demoStore(t)
	// Names json.Marshal escapes, written straight into the table (this is about the
	// transport, not about what the domain accepts).
	if _, err := db.Exec(`UPDATE schools SET name = name || ' <a href="x">&</a>' || U&'\2028' WHERE id IN (SELECT id FROM schools ORDER BY id LIMIT 2)`); err != nil {
		t.Fatal(err)
	}
	system := func() *jiaoliu.Actor { return jiaoliu.SystemActor }
	ours := serveAs(t, store, system)
	graph.SetPlainPOST(true)
	theirs := serveAs(t, store, system)
	graph.SetPlainPOST(false)

	type answer struct {
		status      int
		contentType string
		body        string
	}
	post := func(url, accept, body string) answer {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header.Get("Content-Type"), string(raw)}
	}
	bodies := []string{
		`{"query":"{ schools(first: 100) { nodes { id name tier } pageInfo { endCursor } } }"}`,
		`{"query":"{ exchanges(first: 20) { nodes { id status teacher { name } sendingSchool { name } receivingSchool { name } } } }"}`,
		`{"query":"{ exchange(id: \"00000000-0000-0000-0000-000000000000\") { id } }"}`,
		`{"query":"query($n: Int!) { lessons(first: $n) { nodes { id } } }","variables":{"n":3}}`,
		`{"query":"query($n: Int!) { lessons(first: $n) { nodes { id } } }","variables":{"n":0}}`,
		`{"query":"{ schools(first: 5) { nodes { nope } } }"}`,
		`{"query":"{ schools(first: 5) { nodes { id "}`,
		`{"query":"{ __typename }"}`,
		`{"query":""}`,
		`{"query":"{ schools { nodes { id } } }", "operationName": "missing"}`,
		`{"query": 5}`,
		`not json`,
		``,
	}
	accepts := []string{"", "application/json", "application/graphql-response+json", "*/*", "text/html", "text/html, application/json;q=0.9"}
	for _, body := range bodies {
		for _, accept := range accepts {
			a, b := post(ours.URL, accept, body), post(theirs.URL, accept, body)
			if a != b {
				t.Errorf("%s (Accept %q):\nours:    %d %s %.600s\ngqlgen's: %d %s %.600s", body, accept,
					a.status, a.contentType, a.body, b.status, b.contentType, b.body)
			}
		}
	}
	before := graph.DataWrites()
	post(ours.URL, "", bodies[3])
	if graph.DataWrites() != before+1 {
		t.Errorf("a response of data only was not written around its data")
	}
	if a := post(ours.URL, "", bodies[0]); !strings.Contains(a.body, `\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e\u2028`) {
		t.Errorf("the escaped names are not in the answer: %.600s", a.body)
	}
}
