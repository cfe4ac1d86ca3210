package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/google/uuid"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/graph"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, postgres.Migrate, postgres.CheckScopeCopies)) }

// fuzzOps are the operations FuzzGraphQLVariables sends random variables to: the
// mutations that write (through the one write path), and the lists with filters and
// cursors.
var fuzzOps = []string{
	`mutation($in: LessonInput!) { createLesson(input: $in) { id topic } }`,
	`mutation($id: ID!, $in: LessonPatch!) { updateLesson(id: $id, input: $in) { id topic } }`,
	`mutation($in: TeacherInput!) { createTeacher(input: $in) { id } }`,
	`mutation($in: ExchangeInput!) { createExchange(input: $in) { id } }`,
	`mutation($in: AttendanceInput!) { createAttendance(input: $in) { id } }`,
	`mutation($in: PolicyInput!) { createPolicy(input: $in) { id } }`,
	`mutation($id: ID!, $s: ExchangeStatus!, $d: Date) { transitionExchange(id: $id, status: $s, reportedOn: $d) { id } }`,
	`mutation($e: String!, $id: ID!) { deleteRecord(entity: $e, id: $id) }`,
	`mutation($n: String!, $u: ID) { registerDevice(name: $n, userId: $u) { device { id } } }`,
	`query($f: ListFilter, $n: Int, $a: String) { lessons(filter: $f, first: $n, after: $a) { totalCount nodes { id } pageInfo { endCursor } } }`,
	`query($f: ListFilter, $n: Int, $a: String) { teachers(filter: $f, first: $n, after: $a) { totalCount nodes { id name } } }`,
	`query($f: AuditFilter, $n: Int, $a: String) { auditLog(filter: $f, first: $n, after: $a) { nodes { id } } }`,
	`query($s: String, $n: Int) { syncRejections(status: $s, first: $n) { id } }`,
}

// FuzzGraphQLVariables sends arbitrary variables to the real GraphQL handler, with a
// store on a real database, as a signed-in admin: whatever the input, the answer is a
// GraphQL response whose errors carry a domain code (INVALID, NOT_FOUND, ...), never
// INTERNAL (a panic, a SQL error leaking through, a constraint the write path does not
// map). Run longer with
//
//	go test ./graph -run '^$' -fuzz FuzzGraphQLVariables -fuzztime 30s
func FuzzGraphQLVariables(f *testing.F) {
	db := pgtest.NewDB(f)
	log := slog.New(slog.DiscardHandler)
	store := postgres.NewStore(db, hlc.NewClock("fuzz"), log)
	sys := jiaoliu.NewContextWithActor(context.Background(), jiaoliu.SystemActor)
	clock := hlc.NewClock("seed")
	district, school, other, teacher, exchange := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	up := func(entity, id string, fields map[string]any) jiaoliu.Op {
		return jiaoliu.Op{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, Entity: entity, ID: id, HLC: clock.Now(), Fields: fields}
	}
	if _, err := store.Apply(sys, jiaoliu.Batch{Atomic: true, Ops: []jiaoliu.Op{
		up("district", district, map[string]any{"name": "新密市"}),
		up("school", school, map[string]any{"districtId": district, "name": "曹河教学点", "locality": "TEACHING_POINT", "tier": "WEAK"}),
		up("school", other, map[string]any{"districtId": district, "name": "双河五小", "locality": "URBAN", "tier": "QUALITY"}),
		up("teacher", teacher, map[string]any{"name": "王芳", "gender": "FEMALE", "birthDate": "1985-03-02", "schoolId": school, "joinedSchoolOn": "2015-09-01"}),
		up("exchange", exchange, map[string]any{"teacherId": teacher, "sendingSchoolId": other, "receivingSchoolId": school,
			"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"}),
	}}); err != nil {
		f.Fatal(err)
	}
	admin := &jiaoliu.Actor{UserID: uuid.NewString(), Username: "admin", Role: jiaoliu.RoleAdmin}
	h := graph.Middleware(store, graph.NewHandler(store, log))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(jiaoliu.NewContextWithActor(r.Context(), admin)))
	}))
	f.Cleanup(srv.Close)

	lesson := `{"in":{"exchangeId":"` + exchange + `","date":"2026-10-12","period":3,"subject":"数学","kind":"DEMONSTRATION","topic":"分数"}}`
	for _, s := range []struct {
		op   int
		vars string
	}{
		{0, lesson},
		{0, `{"in":{"exchangeId":"` + exchange + `","date":"2026-13-45","period":13,"subject":"","kind":"OPEN"}}`},
		{0, `{"in":{"exchangeId":"` + exchange + `","date":"2026-10-12","period":2147483648,"subject":"a\u0000b","kind":"REGULAR","minutes":-1}}`},
		{0, `{"in":{"exchangeId":"not-a-uuid","date":"2026-10-12","period":1,"subject":"x","kind":"REGULAR"}}`},
		{1, `{"id":"` + exchange + `","in":{"topic":"x"}}`},
		{1, `{"id":"00000000-0000-0000-0000-000000000000","in":{"period":null}}`},
		{2, `{"in":{"name":"李强","gender":"MALE","birthDate":"1980-02-30","schoolId":"` + school + `","joinedSchoolOn":"2012-09-01","subjects":["a",null]}}`},
		{3, `{"in":{"teacherId":"` + teacher + `","sendingSchoolId":"` + school + `","receivingSchoolId":"` + school + `","mode":"FULL_TIME","academicYear":"2026-2027x","plannedStart":"2027-09-01","plannedEnd":"2026-07-15"}}`},
		{4, `{"in":{"exchangeId":"` + exchange + `","date":"2026-10-12","status":"PRESENT","note":"` + string(bytes.Repeat([]byte("长"), 300)) + `"}}`},
		{5, `{"in":{"districtId":"` + district + `","academicYear":"2026","femaleAgeLimit":1e308,"maleAgeLimit":-1,"preset":"nope"}}`},
		{6, `{"id":"` + exchange + `","s":"COMPLETED","d":"2026-99-99"}`},
		{7, `{"e":"lesson; DROP TABLE lessons","id":"` + exchange + `"}`},
		{7, `{"e":"exchange","id":"` + exchange + `"}`},
		{8, `{"n":"","u":"not-a-uuid"}`},
		{9, `{"f":{"from":"2026-10-01","to":"1900-01-01","search":"%_\\","schoolId":"x"},"n":-5,"a":"garbage"}`},
		{9, `{"f":{"search":"\u0000"},"n":100000,"a":"eyJ2IjoxfQ"}`},
		{10, `{"f":{"search":"王","districtId":"` + district + `"},"n":0}`},
		// A malformed Time or Date variable is INVALID (it was INTERNAL: a coercion
		// error wraps its cause).
		{11, `{"f":{"from":"yesterday","to":5},"n":1}`},
		{9, `{"f":{"from":"2026-02-30"}}`},
		{11, `{"f":{"entity":"lesson","recordId":"x"},"n":2,"a":"MTIz"}`},
		{12, `{"s":"PENDING\u0000","n":-1}`},
	} {
		f.Add(s.op, []byte(s.vars))
	}
	f.Fuzz(func(t *testing.T, op int, vars []byte) {
		if op < 0 || op >= len(fuzzOps) || !json.Valid(vars) {
			return
		}
		body, _ := json.Marshal(map[string]any{"query": fuzzOps[op], "variables": json.RawMessage(vars)})
		resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out struct {
			Errors []struct {
				Message    string         `json:"message"`
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("status %d, not a GraphQL response: %.300s", resp.StatusCode, raw)
		}
		if resp.StatusCode >= 500 {
			t.Fatalf("status %d: %.300s", resp.StatusCode, raw)
		}
		for _, e := range out.Errors {
			if code, _ := e.Extensions["code"].(string); code == "" || code == jiaoliu.EINTERNAL {
				t.Fatalf("%s with %s: error %q code %q", fuzzOps[op], vars, e.Message, code)
			}
		}
	})
}
