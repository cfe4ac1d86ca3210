package chaos_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu/internal/pgtest"
)

func pgtestDSN(tb testing.TB) string { return pgtest.NewDSN(tb) }

// gql talks GraphQL to a server.
type gql struct {
	tb    testing.TB
	url   string
	token string
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

type gqlResponse struct {
	Status int
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// Do posts a query and returns the response (an error only for transport failures).
func (c *gql) Do(query string, vars map[string]any) (gqlResponse, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest("POST", c.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return gqlResponse{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := gqlResponse{Status: resp.StatusCode}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("status %d, body %.200s: %w", resp.StatusCode, raw, err)
	}
	out.Status = resp.StatusCode
	return out, nil
}

// Must runs a query that must succeed and decodes its data into dst.
func (c *gql) Must(query string, vars map[string]any, dst any) {
	c.tb.Helper()
	r, err := c.Do(query, vars)
	if err != nil {
		c.tb.Fatal(err)
	}
	if len(r.Errors) > 0 {
		c.tb.Fatalf("query failed: %+v", r.Errors)
	}
	if dst != nil {
		if err := json.Unmarshal(r.Data, dst); err != nil {
			c.tb.Fatal(err)
		}
	}
}

// Code runs a query that must fail and returns the code of its first error.
func (c *gql) Code(query string, vars map[string]any) string {
	c.tb.Helper()
	r, err := c.Do(query, vars)
	if err != nil {
		c.tb.Fatal(err)
	}
	if len(r.Errors) == 0 {
		c.tb.Fatalf("query succeeded, want an error: %s", r.Data)
	}
	code, _ := r.Errors[0].Extensions["code"].(string)
	return code
}

// login signs in and returns a client with the session token.
func login(tb testing.TB, url, username, password string) *gql {
	tb.Helper()
	c := &gql{tb: tb, url: url}
	var out struct {
		Login struct{ Token string } `json:"login"`
	}
	c.Must(`mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }`,
		map[string]any{"u": username, "p": password}, &out)
	c.token = out.Login.Token
	return c
}

func createID(tb testing.TB, c *gql, mutation, typ string, input map[string]any) string {
	tb.Helper()
	var out map[string]struct{ ID string }
	c.Must(fmt.Sprintf(`mutation($in: %sInput!) { x: %s(input: $in) { id } }`, typ, mutation), map[string]any{"in": input}, &out)
	return out["x"].ID
}

// world is what the devices write against: a district with three schools, two
// exchange teachers with an exchange each, and a user per role that has devices.
type world struct {
	admin                        *gql
	district                     string
	urban, rural, town           string
	teacherA, teacherB           string
	exchangeA, exchangeB         string
	userA, userB, userD          string // teacher A, teacher B, the district admin
	usernameA, usernameB, userDN string
}

const userPassword = "chaos-password-1"

func newWorld(tb testing.TB, url string) *world {
	tb.Helper()
	admin := login(tb, url, "admin", adminPassword)
	w := &world{admin: admin}
	w.district = createID(tb, admin, "createDistrict", "District", map[string]any{"name": "新密市"})
	w.urban = createID(tb, admin, "createSchool", "School", map[string]any{"districtId": w.district, "name": "双河五小", "locality": "URBAN", "tier": "QUALITY"})
	w.rural = createID(tb, admin, "createSchool", "School", map[string]any{"districtId": w.district, "name": "曹河教学点", "locality": "TEACHING_POINT", "tier": "WEAK"})
	w.town = createID(tb, admin, "createSchool", "School", map[string]any{"districtId": w.district, "name": "来集镇中心小学", "locality": "TOWN", "tier": "GENERAL"})
	w.teacherA = createID(tb, admin, "createTeacher", "Teacher", map[string]any{"name": "王芳", "gender": "FEMALE", "birthDate": "1985-03-02", "schoolId": w.urban, "joinedSchoolOn": "2015-09-01", "subjects": []string{"数学"}})
	w.teacherB = createID(tb, admin, "createTeacher", "Teacher", map[string]any{"name": "李强", "gender": "MALE", "birthDate": "1980-05-02", "schoolId": w.urban, "joinedSchoolOn": "2012-09-01"})
	exchange := func(teacher, to string) string {
		return createID(tb, admin, "createExchange", "Exchange", map[string]any{"teacherId": teacher, "sendingSchoolId": w.urban, "receivingSchoolId": to,
			"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"})
	}
	w.exchangeA = exchange(w.teacherA, w.rural)
	w.exchangeB = exchange(w.teacherB, w.town)
	w.usernameA, w.usernameB, w.userDN = "wangfang", "liqiang", "xinmi"
	w.userA = createUser(tb, admin, w.usernameA, "TEACHER", map[string]any{"teacherId": w.teacherA})
	w.userB = createUser(tb, admin, w.usernameB, "TEACHER", map[string]any{"teacherId": w.teacherB})
	w.userD = createUser(tb, admin, w.userDN, "DISTRICT_ADMIN", map[string]any{"districtId": w.district})
	return w
}

func createUser(tb testing.TB, admin *gql, username, role string, extra map[string]any) string {
	tb.Helper()
	in := map[string]any{"username": username, "password": userPassword, "role": role}
	for k, v := range extra {
		in[k] = v
	}
	var out struct{ CreateUser struct{ ID string } }
	admin.Must(`mutation($in: NewUserInput!) { createUser(input: $in) { id } }`, map[string]any{"in": in}, &out)
	return out.CreateUser.ID
}

// registration is a device's identity.
type registration struct {
	DeviceID, Token, UserID string
}

// registerDevice registers a device for a user (as the admin) and returns its token.
func registerDevice(tb testing.TB, admin *gql, userID, name string) registration {
	tb.Helper()
	var out struct {
		RegisterDevice struct {
			Token  string
			Device struct{ ID string }
		}
	}
	admin.Must(`mutation($n: String!, $u: ID) { registerDevice(name: $n, userId: $u) { token device { id } } }`,
		map[string]any{"n": name, "u": userID}, &out)
	return registration{DeviceID: out.RegisterDevice.Device.ID, Token: out.RegisterDevice.Token, UserID: userID}
}
