package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, postgres.Migrate, postgres.CheckScopeCopies)) }

const adminPassword = "admin-secret-1"

// MustRunMain starts the whole program on a fresh database and a free port.
func MustRunMain(tb testing.TB) *Main {
	tb.Helper()
	m := NewMain()
	env := map[string]string{"DATABASE_URL": pgtest.NewDSN(tb), "ADDR": "127.0.0.1:0", "DEMO": "false",
		"ADMIN_PASSWORD": adminPassword, "LOG_LEVEL": "error"}
	if err := m.ParseFlags(nil, func(k string) string { return env[k] }); err != nil {
		tb.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = m.Close() })
	return m
}

// client talks GraphQL to a running server.
type client struct {
	tb    testing.TB
	url   string
	token string
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

func (c *client) do(query string, vars map[string]any) gqlResponse {
	c.tb.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest("POST", c.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out gqlResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		c.tb.Fatalf("status %d, body %s: %v", resp.StatusCode, raw, err)
	}
	return out
}

// must runs a query that must succeed and decodes its data into dst.
func (c *client) must(query string, vars map[string]any, dst any) {
	c.tb.Helper()
	r := c.do(query, vars)
	if len(r.Errors) > 0 {
		c.tb.Fatalf("query failed: %+v", r.Errors)
	}
	if dst != nil {
		if err := json.Unmarshal(r.Data, dst); err != nil {
			c.tb.Fatal(err)
		}
	}
}

// code runs a query that must fail and returns the code of its first error.
func (c *client) code(query string, vars map[string]any) (string, gqlError) {
	c.tb.Helper()
	r := c.do(query, vars)
	if len(r.Errors) == 0 {
		c.tb.Fatalf("query succeeded, want an error: %s", r.Data)
	}
	code, _ := r.Errors[0].Extensions["code"].(string)
	return code, r.Errors[0]
}

func login(tb testing.TB, m *Main, username, password string) *client {
	tb.Helper()
	c := &client{tb: tb, url: "http://" + m.Addr()}
	var out struct {
		Login struct{ Token string } `json:"login"`
	}
	c.must(`mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }`, map[string]any{"u": username, "p": password}, &out)
	c.token = out.Login.Token
	return c
}

// world is a district with two schools, two teachers and an exchange, made through
// the API as the admin.
type world struct {
	district, other, urban, rural, farSchool, teacher, teacher2, exchange string
}

func createID(tb testing.TB, c *client, mutation, typ string, input map[string]any) string {
	tb.Helper()
	var out map[string]struct{ ID string }
	c.must(fmt.Sprintf(`mutation($in: %sInput!) { x: %s(input: $in) { id } }`, typ, mutation), map[string]any{"in": input}, &out)
	return out["x"].ID
}

func newWorld(tb testing.TB, admin *client) world {
	tb.Helper()
	var w world
	w.district = createID(tb, admin, "createDistrict", "District", map[string]any{"name": "新密市"})
	w.other = createID(tb, admin, "createDistrict", "District", map[string]any{"name": "榆林市"})
	w.urban = createID(tb, admin, "createSchool", "School", map[string]any{"districtId": w.district, "name": "双河五小", "locality": "URBAN", "tier": "QUALITY"})
	w.rural = createID(tb, admin, "createSchool", "School", map[string]any{"districtId": w.district, "name": "曹河教学点", "locality": "TEACHING_POINT", "tier": "WEAK"})
	w.farSchool = createID(tb, admin, "createSchool", "School", map[string]any{"districtId": w.other, "name": "川底中心小学", "locality": "TOWN", "tier": "GENERAL"})
	w.teacher = createID(tb, admin, "createTeacher", "Teacher", map[string]any{"name": "王芳", "gender": "FEMALE", "birthDate": "1985-03-02", "schoolId": w.urban, "joinedSchoolOn": "2015-09-01", "subjects": []string{"数学"}})
	w.teacher2 = createID(tb, admin, "createTeacher", "Teacher", map[string]any{"name": "李强", "gender": "MALE", "birthDate": "1980-05-02", "schoolId": w.farSchool, "joinedSchoolOn": "2012-09-01"})
	w.exchange = createID(tb, admin, "createExchange", "Exchange", map[string]any{"teacherId": w.teacher, "sendingSchoolId": w.urban, "receivingSchoolId": w.rural,
		"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"})
	return w
}

func TestHealthAndReady(t *testing.T) {
	m := MustRunMain(t)
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
		resp, err := http.Get("http://" + m.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	resp, err := http.Get("http://" + m.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "/graphql") {
		t.Fatalf("playground: %d", resp.StatusCode)
	}
}

func TestCreateAndQueryThroughTheAPI(t *testing.T) {
	m := MustRunMain(t)
	admin := login(t, m, "admin", adminPassword)
	w := newWorld(t, admin)
	for d := 1; d <= 3; d++ {
		createID(t, admin, "createLesson", "Lesson", map[string]any{"exchangeId": w.exchange, "date": fmt.Sprintf("2026-10-%02d", d), "period": 2, "subject": "数学", "kind": "DEMONSTRATION"})
	}
	var out struct {
		Lessons struct {
			TotalCount int
			PageInfo   struct{ HasNextPage bool }
			Nodes      []struct {
				Date     string
				Exchange struct {
					Teacher         struct{ Name string }
					ReceivingSchool struct{ Name string }
					Tally           struct{ Lessons, DemonstrationLessons int }
				}
			}
		}
	}
	admin.must(`query($s: ID!) { lessons(filter: {schoolId: $s, academicYear: "2026-2027"}, first: 2) { totalCount pageInfo { hasNextPage }
		nodes { date exchange { teacher { name } receivingSchool { name } tally { lessons demonstrationLessons } } } } }`,
		map[string]any{"s": w.rural}, &out)
	if out.Lessons.TotalCount != 3 || !out.Lessons.PageInfo.HasNextPage || len(out.Lessons.Nodes) != 2 {
		t.Fatalf("lessons=%+v", out.Lessons)
	}
	n := out.Lessons.Nodes[0]
	if n.Date != "2026-10-03" || n.Exchange.Teacher.Name != "王芳" || n.Exchange.ReceivingSchool.Name != "曹河教学点" || n.Exchange.Tally.DemonstrationLessons != 3 {
		t.Fatalf("first lesson=%+v", n)
	}
}

func TestInvalidMutationGetsFieldErrorsAndChangesNothing(t *testing.T) {
	m := MustRunMain(t)
	admin := login(t, m, "admin", adminPassword)
	w := newWorld(t, admin)
	code, e := admin.code(`mutation($in: LessonInput!) { createLesson(input: $in) { id } }`, map[string]any{"in": map[string]any{
		"exchangeId": w.exchange, "date": "2026-10-12", "period": 13, "subject": "数学", "kind": "OPEN"}})
	fields, _ := e.Extensions["fields"].(map[string]any)
	if code != "INVALID" || fields["period"] != "must be 1..12" || fields["openLevel"] == nil {
		t.Fatalf("code=%s error=%+v", code, e)
	}
	code, e = admin.code(`mutation($id: ID!) { transitionExchange(id: $id, status: COMPLETED) { id } }`, map[string]any{"id": w.exchange})
	if code != "INVALID" || e.Extensions["fields"].(map[string]any)["status"] == nil {
		t.Fatalf("transition: code=%s error=%+v", code, e)
	}
	var out struct {
		Lessons  struct{ TotalCount int }
		Exchange struct{ Status string }
	}
	admin.must(`query($x: ID!) { lessons { totalCount } exchange(id: $x) { status } }`, map[string]any{"x": w.exchange}, &out)
	if out.Lessons.TotalCount != 0 || out.Exchange.Status != "APPROVED" {
		t.Fatalf("after failed mutations: %+v", out)
	}
	code, _ = admin.code(`mutation { createLesson(input: {exchangeId: "x", date: "2026-13-45", period: 1, subject: "a", kind: REGULAR}) { id } }`, nil)
	if code != "INVALID" && code != "GRAPHQL_VALIDATION_FAILED" {
		t.Fatalf("bad date literal: code=%s", code)
	}
	code, _ = admin.code(`mutation($in: LessonInput!) { createLesson(input: $in) { id } }`, map[string]any{"in": map[string]any{
		"exchangeId": "00000000-0000-0000-0000-000000000000", "date": "2026-10-12", "period": 1, "subject": "数学", "kind": "REGULAR"}})
	if code != "MISSING_REFERENCE" {
		t.Fatalf("unknown exchange: code=%s", code)
	}
}

func TestAuthentication(t *testing.T) {
	m := MustRunMain(t)
	anon := &client{tb: t, url: "http://" + m.Addr()}
	if code, _ := anon.code(`{ schools { totalCount } }`, nil); code != "UNAUTHENTICATED" {
		t.Fatalf("anonymous read: code=%s", code)
	}
	if code, _ := anon.code(`mutation { login(username: "admin", password: "wrong") { token } }`, nil); code != "UNAUTHENTICATED" {
		t.Fatalf("wrong password: code=%s", code)
	}
	bad := &client{tb: t, url: anon.url, token: "not-a-token"}
	if code, _ := bad.code(`{ me { id } }`, nil); code != "UNAUTHENTICATED" {
		t.Fatalf("bad token: code=%s", code)
	}
	admin := login(t, m, "admin", adminPassword)
	var me struct {
		Me struct{ Username, Role string }
	}
	admin.must(`{ me { username role } }`, nil, &me)
	if me.Me.Username != "admin" || me.Me.Role != "ADMIN" {
		t.Fatalf("me=%+v", me)
	}
}

func TestLoginFailuresAreSlowedDown(t *testing.T) {
	m := MustRunMain(t)
	anon := &client{tb: t, url: "http://" + m.Addr()}
	codes := []string{}
	for i := 0; i < 5; i++ {
		code, _ := anon.code(`mutation { login(username: "admin", password: "wrong") { token } }`, nil)
		codes = append(codes, code)
	}
	if got, want := strings.Join(codes, ","), "UNAUTHENTICATED,UNAUTHENTICATED,UNAUTHENTICATED,UNAUTHENTICATED,RATE_LIMITED"; got != want {
		t.Fatalf("codes=%s, want %s", got, want)
	}
	// Even the right password waits until the lock expires.
	if code, _ := anon.code(`mutation { login(username: "admin", password: "`+adminPassword+`") { token } }`, nil); code != "RATE_LIMITED" {
		t.Fatalf("right password during lock: code=%s", code)
	}
}

func TestQueryLimits(t *testing.T) {
	m := MustRunMain(t)
	admin := login(t, m, "admin", adminPassword)
	code, _ := admin.code(`{ lessons(first: 500) { nodes { exchange { teacher { exchanges { evaluations { exchange { teacher { history { school { district { schools { name } } } } } } } } } } } } }`, nil)
	if code != "COMPLEXITY_LIMIT_EXCEEDED" && code != "DEPTH_LIMIT_EXCEEDED" {
		t.Fatalf("deep query: code=%s", code)
	}
	code, _ = admin.code(`{ lessons(first: 500) { nodes { id exchange { id teacher { id name } } notes topic subject date period kind minutes
		school { name district { name } } } } teachers(first: 500) { nodes { id name exchanges { id } history { id } } } }`, nil)
	if code != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Fatalf("costly query: code=%s", code)
	}
	if code, _ := admin.code(`{ lessons(first: 501) { totalCount } }`, nil); code != "INVALID" {
		t.Fatalf("page too large: code=%s", code)
	}
}
