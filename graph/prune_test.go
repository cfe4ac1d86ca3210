package graph_test

import (
	"encoding/json"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/graph"
)

// TestSelectedColumnsAnswerAsWholeRecords: nested records read with only the columns
// their selection needs give the same answers as whole records, for references of
// references, fragments, aliases of one field with different selections, meta fields,
// fields computed by resolvers next to plain ones, and single records. On the demo
// data, every query is asked with pruning on and off and the answers compared.
func TestSelectedColumnsAnswerAsWholeRecords(t *testing.T) {
	_, store := demoStore(t)
	srv := serveAs(t, store, func() *jiaoliu.Actor { return jiaoliu.SystemActor })

	ask := func(query string) string {
		t.Helper()
		raw := postQuery(t, srv.URL, query, nil)
		var out struct {
			Data   json.RawMessage `json:"data"`
			Errors []any           `json:"errors"`
		}
		if err := json.Unmarshal(raw, &out); err != nil || len(out.Errors) > 0 || len(out.Data) < 50 {
			t.Fatalf("%s\n→ %.600s", query, raw)
		}
		return string(out.Data)
	}
	var exchangeID string
	{
		var out struct {
			Exchanges struct{ Nodes []struct{ ID string } }
		}
		_ = json.Unmarshal([]byte(ask(`{ exchanges(first: 1) { nodes { id } } }`)), &out)
		exchangeID = out.Exchanges.Nodes[0].ID
	}
	queries := []string{
		`{ exchanges(first: 100) { nodes { id status teacher { name title school { name tier group { name } zone { name } } }
			sendingSchool { name } receivingSchool { name locality district { name } } } } }`,
		`{ lessons(first: 100) { nodes { id date exchange { academicYear teacher { name history { startDate school { name } } } }
			school { name remote } } } }`,
		`{ teachers(first: 100) { nodes { id name school { name averageWeeklyLessons group { name mainSchool { name } } } } } }`,
		`{ mentoringPairs(first: 100) { nodes { mentor { name } mentee { name birthDate honors subjects } school { name } activities { id } } } }`,
		`{ observations(first: 100) { nodes { observer { name } observedTeacher { name subjects leadershipSince }
			exchange { status allowedTransitions teacher { name } } lesson { topic minutes exchange { mode } } } } }`,
		`{ exchanges(first: 100) { nodes { t1: teacher { name } t2: teacher { ...T school { id } } t3: teacher { exchanges { id } } } } }
		 fragment T on Teacher { title honors createdAt updatedAt version deleted }`,
		`{ exchanges(first: 100) { edges { node { teacher { __typename id } sendingSchool { ... on School { name staffingCap } } } } } }`,
		`{ exchange(id: "` + exchangeID + `") { teacher { name gender } sendingSchool { name tierAssessedOn } receivingSchool { name } } }`,
		`{ lessons(first: 100) { totalCount pageInfo { endCursor hasNextPage } edges { cursor node { date period } } nodes { topic } } }`,
		`{ schools(first: 100) { nodes { name tier } pageInfo { endCursor } } teachers(first: 100) { nodes { name history { startDate } } } }`,
		`{ attendances(first: 100) { edges { cursor } pageInfo { endCursor } } observations(first: 100) { nodes { __typename } } }`,
		`{ exchanges(first: 100) { nodes { plannedStart allowedTransitions } } mentoringPairs(first: 100) { nodes { academicYear status } } }`,
	}
	for _, q := range queries {
		graph.SetPruneColumns(true)
		pruned := ask(q)
		graph.SetPruneColumns(false)
		whole := ask(q)
		graph.SetPruneColumns(true)
		if pruned != whole {
			t.Errorf("%s\npruned: %.800s\nwhole:  %.800s", q, pruned, whole)
		}
	}
}
