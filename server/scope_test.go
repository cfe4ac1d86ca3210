package main

import (
	"net/http"
	"strings"
	"testing"
)

// users of every role over the world of newWorld.
type cast struct {
	admin, district, auditor, ruralAdmin, farAdmin, wang, li *client
}

func createUser(t *testing.T, admin *client, username, role string, extra map[string]any) {
	t.Helper()
	in := map[string]any{"username": username, "password": "password-1", "role": role}
	for k, v := range extra {
		in[k] = v
	}
	admin.must(`mutation($in: NewUserInput!) { createUser(input: $in) { id } }`, map[string]any{"in": in}, nil)
}

func newCast(t *testing.T, m *Main, w world) cast {
	t.Helper()
	admin := login(t, m, "admin", adminPassword)
	createUser(t, admin, "xinmi", "DISTRICT_ADMIN", map[string]any{"districtId": w.district})
	createUser(t, admin, "audit", "AUDITOR", map[string]any{"districtId": w.district})
	createUser(t, admin, "caohe", "SCHOOL_ADMIN", map[string]any{"schoolId": w.rural})
	createUser(t, admin, "chuandi", "SCHOOL_ADMIN", map[string]any{"schoolId": w.farSchool})
	createUser(t, admin, "wangfang", "TEACHER", map[string]any{"teacherId": w.teacher})
	createUser(t, admin, "liqiang", "TEACHER", map[string]any{"teacherId": w.teacher2})
	return cast{admin: admin, district: login(t, m, "xinmi", "password-1"), auditor: login(t, m, "audit", "password-1"),
		ruralAdmin: login(t, m, "caohe", "password-1"), farAdmin: login(t, m, "chuandi", "password-1"),
		wang: login(t, m, "wangfang", "password-1"), li: login(t, m, "liqiang", "password-1")}
}

func total(t *testing.T, c *client, list string, vars map[string]any, filter string) int {
	t.Helper()
	var out map[string]struct{ TotalCount int }
	decl, used := []string{}, map[string]any{}
	for _, v := range []string{"s", "d", "t"} {
		if strings.Contains(filter, "$"+v) {
			decl = append(decl, "$"+v+": ID")
			used[v] = vars[v]
		}
	}
	q := `query { x: ` + list + `(filter: {` + filter + `}) { totalCount } }`
	if len(decl) > 0 {
		q = `query(` + strings.Join(decl, ", ") + `) { x: ` + list + `(filter: {` + filter + `}) { totalCount } }`
	}
	c.must(q, used, &out)
	return out["x"].TotalCount
}

const lessonMutation = `mutation($in: LessonInput!) { createLesson(input: $in) { id } }`

func TestScopes(t *testing.T) {
	m := MustRunMain(t)
	admin := login(t, m, "admin", adminPassword)
	w := newWorld(t, admin)
	c := newCast(t, m, w)
	lesson := map[string]any{"exchangeId": w.exchange, "date": "2026-10-12", "period": 1, "subject": "数学", "kind": "REGULAR"}

	// The teacher writes their own lessons; the other teacher can neither see nor touch them.
	var created struct{ CreateLesson struct{ ID string } }
	c.wang.must(lessonMutation, map[string]any{"in": lesson}, &created)
	lessonID := created.CreateLesson.ID
	lesson["date"] = "2026-10-13"
	if code, _ := c.li.code(lessonMutation, map[string]any{"in": lesson}); code != "FORBIDDEN" {
		t.Fatalf("li creating a lesson on wang's exchange: %s", code)
	}
	if code, _ := c.li.code(`query($id: ID!) { lesson(id: $id) { id } }`, map[string]any{"id": lessonID}); code != "NOT_FOUND" {
		t.Fatalf("li reading wang's lesson: %s", code)
	}
	if code, _ := c.li.code(`mutation($id: ID!) { updateLesson(id: $id, input: {topic: "x"}) { id } }`, map[string]any{"id": lessonID}); code != "NOT_FOUND" {
		t.Fatalf("li updating wang's lesson: %s", code)
	}
	if code, _ := c.li.code(`mutation($id: ID!) { deleteRecord(entity: "lesson", id: $id) }`, map[string]any{"id": lessonID}); code != "NOT_FOUND" {
		t.Fatalf("li deleting wang's lesson: %s", code)
	}
	// Filters cannot reach outside the scope.
	vars := map[string]any{"s": w.rural, "d": w.district, "t": w.teacher}
	for _, f := range []string{"schoolId: $s", "districtId: $d", "teacherId: $t"} {
		if n := total(t, c.li, "lessons", vars, f); n != 0 {
			t.Fatalf("li lessons filtered by %s = %d, want 0", f, n)
		}
		if n := total(t, c.farAdmin, "lessons", vars, f); n != 0 {
			t.Fatalf("far school admin lessons filtered by %s = %d, want 0", f, n)
		}
	}
	// Nested fields do not leak either: li reads only what is theirs.
	var mine struct {
		Me struct {
			Teacher struct {
				Name      string
				Exchanges []struct{ ID string }
			}
		}
		Teachers struct{ TotalCount int }
		Schools  struct{ Nodes []struct{ Name string } }
	}
	c.li.must(`{ me { teacher { name exchanges { id } } } teachers { totalCount } schools { nodes { name } } }`, nil, &mine)
	if mine.Me.Teacher.Name != "李强" || len(mine.Me.Teacher.Exchanges) != 0 || mine.Teachers.TotalCount != 1 ||
		len(mine.Schools.Nodes) != 1 || mine.Schools.Nodes[0].Name != "川底中心小学" {
		t.Fatalf("li sees %+v", mine)
	}
	if code, _ := c.li.code(`query($id: ID!) { teacher(id: $id) { name } }`, map[string]any{"id": w.teacher}); code != "NOT_FOUND" {
		t.Fatalf("li reading wang's teacher record: %s", code)
	}

	// Teachers read their exchange and the schools they serve, and change neither.
	if n := total(t, c.wang, "exchanges", vars, ""); n != 1 {
		t.Fatalf("wang exchanges=%d", n)
	}
	if n := total(t, c.wang, "schools", vars, ""); n != 2 {
		t.Fatalf("wang schools=%d, want the sending and receiving schools", n)
	}
	if code, _ := c.wang.code(`mutation($id: ID!) { updateExchange(id: $id, input: {note: "x"}) { id } }`, map[string]any{"id": w.exchange}); code != "FORBIDDEN" {
		t.Fatalf("wang updating the exchange: %s", code)
	}
	evaluation := map[string]any{"exchangeId": w.exchange, "period": "SEMESTER", "term": "2026-2027-1", "evaluatorSchoolId": w.rural, "grade": "EXCELLENT"}
	if code, _ := c.wang.code(`mutation($in: EvaluationInput!) { createEvaluation(input: $in) { id } }`, map[string]any{"in": evaluation}); code != "FORBIDDEN" {
		t.Fatalf("wang evaluating himself: %s", code)
	}

	// The receiving school's admin sees the exchange, its lessons and its teacher, and
	// records attendance and evaluations; the district's structure is not theirs.
	if n := total(t, c.ruralAdmin, "lessons", vars, ""); n != 1 {
		t.Fatalf("rural admin lessons=%d", n)
	}
	c.ruralAdmin.must(`query($id: ID!) { teacher(id: $id) { name } }`, map[string]any{"id": w.teacher}, nil)
	c.ruralAdmin.must(`mutation($in: AttendanceInput!) { createAttendance(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"exchangeId": w.exchange, "date": "2026-10-12", "status": "PRESENT"}}, nil)
	c.ruralAdmin.must(`mutation($in: EvaluationInput!) { createEvaluation(input: $in) { id } }`, map[string]any{"in": evaluation}, nil)
	if code, _ := c.ruralAdmin.code(`mutation($id: ID!) { updateSchool(id: $id, input: {tier: QUALITY}) { id } }`, map[string]any{"id": w.rural}); code != "FORBIDDEN" {
		t.Fatalf("school admin re-tiering the school: %s", code)
	}
	if code, _ := c.farAdmin.code(`query($id: ID!) { exchange(id: $id) { id } }`, map[string]any{"id": w.exchange}); code != "NOT_FOUND" {
		t.Fatalf("another district's school admin reading the exchange: %s", code)
	}

	// The district admin acts on the district and nothing outside it.
	c.district.must(`mutation($id: ID!) { updateSchool(id: $id, input: {remote: true}) { id } }`, map[string]any{"id": w.rural}, nil)
	if code, _ := c.district.code(`query($id: ID!) { school(id: $id) { name } }`, map[string]any{"id": w.farSchool}); code != "NOT_FOUND" {
		t.Fatalf("district admin reading another district's school: %s", code)
	}
	if n := total(t, c.district, "teachers", vars, ""); n != 1 {
		t.Fatalf("district admin teachers=%d, want 1", n)
	}

	// The auditor reads the district and changes nothing.
	if n := total(t, c.auditor, "lessons", vars, ""); n != 1 {
		t.Fatalf("auditor lessons=%d", n)
	}
	if code, _ := c.auditor.code(`mutation($id: ID!) { updateSchool(id: $id, input: {remote: false}) { id } }`, map[string]any{"id": w.rural}); code != "FORBIDDEN" {
		t.Fatalf("auditor writing: %s", code)
	}

	// Every change is in the audit trail with its author; teachers cannot read it.
	var audit struct {
		AuditLog struct {
			Nodes []struct {
				Username, Entity, Action string
				Changes                  map[string]any
			}
		}
	}
	c.district.must(`query($id: ID!) { auditLog(filter: {recordId: $id}) { nodes { username entity action changes } } }`, map[string]any{"id": lessonID}, &audit)
	if n := audit.AuditLog.Nodes; len(n) != 1 || n[0].Username != "wangfang" || n[0].Action != "CREATE" || n[0].Changes["subject"] == nil {
		t.Fatalf("audit of the lesson=%+v", n)
	}
	c.district.must(`query($id: ID!) { auditLog(filter: {recordId: $id}) { nodes { username entity action changes } } }`, map[string]any{"id": w.rural}, &audit)
	if n := audit.AuditLog.Nodes; len(n) != 2 || n[0].Username != "xinmi" || n[0].Action != "UPDATE" {
		t.Fatalf("audit of the school=%+v", n)
	}
	c.farAdmin.must(`query($id: ID!) { auditLog(filter: {recordId: $id}) { nodes { username } } }`, map[string]any{"id": lessonID}, &audit)
	if len(audit.AuditLog.Nodes) != 0 {
		t.Fatalf("another district's admin reads the lesson's audit: %+v", audit.AuditLog.Nodes)
	}
	if code, _ := c.wang.code(`{ auditLog { nodes { id } } }`, nil); code != "FORBIDDEN" {
		t.Fatalf("teacher reading the audit trail: %s", code)
	}
}

func TestDevices(t *testing.T) {
	m := MustRunMain(t)
	admin := login(t, m, "admin", adminPassword)
	w := newWorld(t, admin)
	c := newCast(t, m, w)
	var reg struct {
		RegisterDevice struct {
			Token  string
			Device struct{ ID string }
		}
	}
	c.wang.must(`mutation { registerDevice(name: "王芳的平板") { token device { id } } }`, nil, &reg)
	var me struct{ Me struct{ ID string } }
	c.li.must(`{ me { id } }`, nil, &me)
	if code, _ := c.wang.code(`mutation($u: ID!) { registerDevice(name: "x", userId: $u) { token } }`, map[string]any{"u": me.Me.ID}); code != "NOT_FOUND" {
		t.Fatalf("wang registering a device for li: %s", code)
	}
	// The device token authenticates as the teacher.
	dev := &client{tb: t, url: c.wang.url, token: reg.RegisterDevice.Token}
	var who struct{ Me struct{ Username string } }
	dev.must(`{ me { username } }`, nil, &who)
	if who.Me.Username != "wangfang" {
		t.Fatalf("device acts as %q", who.Me.Username)
	}
	var list struct {
		Devices []struct {
			Name       string
			LastSeenAt *string
		}
	}
	c.ruralAdmin.must(`{ devices { name lastSeenAt } }`, nil, &list)
	if len(list.Devices) != 0 {
		t.Fatalf("receiving school admin lists the sending school's teacher's devices: %+v", list)
	}
	c.district.must(`{ devices { name lastSeenAt } }`, nil, &list)
	if len(list.Devices) != 1 || list.Devices[0].LastSeenAt == nil {
		t.Fatalf("district admin devices=%+v", list)
	}
	if code, _ := c.li.code(`mutation($id: ID!) { revokeDevice(id: $id) { id } }`, map[string]any{"id": reg.RegisterDevice.Device.ID}); code != "NOT_FOUND" {
		t.Fatalf("li revoking wang's device: %s", code)
	}
	c.district.must(`mutation($id: ID!) { revokeDevice(id: $id) { revokedAt } }`, map[string]any{"id": reg.RegisterDevice.Device.ID}, nil)
	req, _ := http.NewRequest("POST", dev.url+"/graphql", nil)
	req.Header.Set("Authorization", "Bearer "+dev.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked token: status %d, want 401", resp.StatusCode)
	}
}
