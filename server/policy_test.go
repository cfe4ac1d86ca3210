package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
)

// download GETs an export with the client's session and returns the status and body.
func (c *client) download(path string) (int, []byte) {
	c.tb.Helper()
	req, _ := http.NewRequest("GET", c.url+path, nil)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func xlsxRows(tb testing.TB, b []byte) [][]string {
	tb.Helper()
	f, err := excelize.OpenReader(bytes.NewReader(b))
	if err != nil {
		tb.Fatalf("open xlsx: %v (%q)", err, b[:min(len(b), 200)])
	}
	defer f.Close()
	rows, err := f.GetRows(f.GetSheetName(0))
	if err != nil {
		tb.Fatal(err)
	}
	return rows
}

// TestPolicyThroughTheAPI builds a district through the API — policy from a preset, 7
// teachers who must rotate at 双河五小, one exchange with 11 unexcused absences in a
// row — and checks the views and exports as its administrator, a teacher and a stranger.
func TestPolicyThroughTheAPI(t *testing.T) {
	m := MustRunMain(t)
	admin := login(t, m, "admin", adminPassword)
	w := newWorld(t, admin)
	c := newCast(t, m, w)

	var pol struct{ ApplyPolicyPreset struct{ ID, Preset string } }
	applyPreset := `mutation($d: ID!) { applyPolicyPreset(districtId: $d, academicYear: "2026-2027", preset: "CHUANDI") { id preset } }`
	c.district.must(applyPreset, map[string]any{"d": w.district}, &pol)
	first := pol.ApplyPolicyPreset.ID
	c.district.must(applyPreset, map[string]any{"d": w.district}, &pol)
	if pol.ApplyPolicyPreset.ID != first || pol.ApplyPolicyPreset.Preset != "CHUANDI" {
		t.Fatalf("second applyPolicyPreset made another policy: %s vs %s", pol.ApplyPolicyPreset.ID, first)
	}
	for i := range 6 {
		createID(t, admin, "createTeacher", "Teacher", map[string]any{"name": fmt.Sprintf("教师%d", i), "gender": "MALE",
			"birthDate": "1980-01-01", "schoolId": w.urban, "joinedSchoolOn": "2010-09-01", "employed": true})
	}
	admin.must(`mutation($id: ID!) { a: transitionExchange(id: $id, status: PUBLISHED) { id } b: transitionExchange(id: $id, status: ACTIVE, reportedOn: "2026-09-01") { id } }`,
		map[string]any{"id": w.exchange}, nil)
	// Employed is false by default: 王芳 was created without it.
	admin.must(`mutation($id: ID!) { updateTeacher(id: $id, input: {employed: true}) { id } }`, map[string]any{"id": w.teacher}, nil)
	day := 2 // 2026-11-02 is a Monday
	for n := 0; n < 11; day++ {
		date := fmt.Sprintf("2026-11-%02d", day)
		if wd := (day + 6) % 7; wd == 5 || wd == 6 { // 2026-11-07 is a Saturday
			continue
		}
		createID(t, admin, "createAttendance", "Attendance", map[string]any{"exchangeId": w.exchange, "date": date, "status": "ABSENT"})
		n++
	}

	t.Run("Eligibility", func(t *testing.T) {
		var out struct {
			Eligibility struct {
				Summary  struct{ MustRotate, Rotating int }
				Teachers []struct {
					TeacherName, Status, Rule, Explanation string
				}
			}
		}
		c.district.must(`query($d: ID!) { eligibility(districtId: $d, academicYear: "2026-2027", status: MUST_ROTATE) {
			summary { mustRotate rotating } teachers { teacherName status rule explanation } } }`, map[string]any{"d": w.district}, &out)
		if out.Eligibility.Summary.MustRotate != 7 || len(out.Eligibility.Teachers) != 7 || out.Eligibility.Summary.Rotating != 1 {
			t.Fatalf("eligibility=%+v", out.Eligibility)
		}
		if code, _ := c.wang.code(`query($d: ID!) { eligibility(districtId: $d, academicYear: "2026-2027") { summary { mustRotate } } }`, map[string]any{"d": w.district}); code != "FORBIDDEN" {
			t.Fatalf("teacher: %s", code)
		}
		if code, _ := c.district.code(`query($d: ID!) { eligibility(districtId: $d, academicYear: "2026") { summary { mustRotate } } }`, map[string]any{"d": w.district}); code != "INVALID" {
			t.Fatalf("bad year: %s", code)
		}
	})

	t.Run("Quotas", func(t *testing.T) {
		var out struct {
			Quotas struct {
				Schools []struct {
					SchoolName                  string
					Eligible, Rotating, Minimum int
					Met                         bool
				}
				ReverseFlow struct {
					QualityToLower, LowerToQuality int
					Holds                          bool
				}
			}
		}
		c.auditor.must(`query($d: ID!) { quotas(districtId: $d, academicYear: "2026-2027") {
			schools { schoolName eligible rotating minimum met } reverseFlow { qualityToLower lowerToQuality holds } } }`, map[string]any{"d": w.district}, &out)
		var found bool
		for _, s := range out.Quotas.Schools {
			if s.SchoolName == "双河五小" {
				found = true
				if s.Eligible != 7 || s.Rotating != 1 || s.Minimum != 2 || s.Met {
					t.Fatalf("双河五小=%+v", s)
				}
			}
		}
		if !found || out.Quotas.ReverseFlow.Holds {
			t.Fatalf("quotas=%+v", out.Quotas)
		}
	})

	t.Run("Progress", func(t *testing.T) {
		q := `query($x: ID!) { exchangeProgress(exchangeId: $x, asOf: "2026-11-30") {
			dutyStatus attendance { absent longestAbsentRun mustBeUnqualified } consequences { kind } } }`
		var out struct {
			ExchangeProgress struct {
				DutyStatus string
				Attendance struct {
					Absent, LongestAbsentRun int
					MustBeUnqualified        bool
				}
				Consequences []struct{ Kind string }
			}
		}
		for _, cl := range []*client{c.district, c.wang, c.ruralAdmin} {
			cl.must(q, map[string]any{"x": w.exchange}, &out)
			if a := out.ExchangeProgress.Attendance; a.Absent != 11 || a.LongestAbsentRun != 11 || !a.MustBeUnqualified {
				t.Fatalf("attendance=%+v", a)
			}
		}
		var none struct{ ExchangeProgress *struct{ DutyStatus string } }
		c.li.must(q, map[string]any{"x": w.exchange}, &none)
		if none.ExchangeProgress != nil {
			t.Fatal("a teacher of another district sees the progress")
		}
		var list struct {
			Exchanges struct {
				Nodes []struct {
					Progress struct {
						Attendance struct{ LongestAbsentRun int }
					}
				}
			}
		}
		c.district.must(`{ exchanges(filter: {academicYear: "2026-2027"}) { nodes { progress(asOf: "2026-11-30") { attendance { longestAbsentRun } } } } }`, nil, &list)
		if len(list.Exchanges.Nodes) != 1 || list.Exchanges.Nodes[0].Progress.Attendance.LongestAbsentRun != 11 {
			t.Fatalf("exchanges=%+v", list)
		}
	})

	t.Run("Dashboards", func(t *testing.T) {
		var out struct {
			DistrictDashboard struct {
				Eligibility struct{ MustRotate int }
				Progress    struct{ Exchanges, MustBeUnqualified int }
				Alerts      []struct{ Kind, Severity string }
			}
			SchoolDashboard struct {
				Quota struct{ Eligible int }
				Sent  []struct{ TeacherName string }
			}
		}
		c.district.must(`query($d: ID!, $s: ID!) {
			districtDashboard(districtId: $d, academicYear: "2026-2027", asOf: "2026-11-30") {
				eligibility { mustRotate } progress { exchanges mustBeUnqualified } alerts { kind severity } }
			schoolDashboard(schoolId: $s, academicYear: "2026-2027", asOf: "2026-11-30") { quota { eligible } sent { teacherName } } }`,
			map[string]any{"d": w.district, "s": w.urban}, &out)
		d := out.DistrictDashboard
		if d.Eligibility.MustRotate != 7 || d.Progress.Exchanges != 1 || d.Progress.MustBeUnqualified != 1 || len(d.Alerts) == 0 || d.Alerts[0].Severity != "CRITICAL" {
			t.Fatalf("district dashboard=%+v", d)
		}
		if s := out.SchoolDashboard; s.Quota.Eligible != 7 || len(s.Sent) != 1 || s.Sent[0].TeacherName != "王芳" {
			t.Fatalf("school dashboard=%+v", s)
		}
		if code, _ := c.ruralAdmin.code(`query($d: ID!) { districtDashboard(districtId: $d, academicYear: "2026-2027") { districtName } }`, map[string]any{"d": w.district}); code != "FORBIDDEN" {
			t.Fatalf("school admin on the district dashboard: %s", code)
		}
		if code, _ := c.farAdmin.code(`query($s: ID!) { schoolDashboard(schoolId: $s, academicYear: "2026-2027") { schoolName } }`, map[string]any{"s": w.urban}); code != "FORBIDDEN" {
			t.Fatalf("another district's school admin: %s", code)
		}
	})

	t.Run("Exports", func(t *testing.T) {
		q := "districtId=" + w.district + "&year=2026-2027"
		status, body := c.district.download("/exports/public-list?" + q)
		if status != 200 {
			t.Fatalf("public list: %d %s", status, body)
		}
		rows := xlsxRows(t, body)
		if len(rows) != 2 || rows[0][0] != "序号" || rows[1][1] != "王芳" || rows[1][7] != "双河五小" {
			t.Fatalf("public list rows=%q", rows)
		}
		status, body = c.district.download("/exports/attendance?month=2026-11&format=csv&exchangeId=" + w.exchange)
		if status != 200 || !bytes.HasPrefix(body, []byte("\ufeff")) {
			t.Fatalf("attendance: %d %s", status, body)
		}
		recs, err := csv.NewReader(bytes.NewReader(body[3:])).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 || len(recs[0]) != 4+30+4 || recs[1][len(recs[1])-1] != "11" || strings.Count(strings.Join(recs[1], ","), "旷") != 11 {
			t.Fatalf("attendance sheet=%q", recs)
		}
		status, body = c.ruralAdmin.download("/exports/progress?year=2026-2027&asOf=2026-11-30&schoolId=" + w.rural)
		if status != 200 {
			t.Fatalf("progress: %d %s", status, body)
		}
		if rows := xlsxRows(t, body); len(rows) != 2 || rows[1][1] != "王芳" {
			t.Fatalf("progress rows=%q", rows)
		}
		if status, _ := c.district.download("/exports/eligibility?format=csv&" + q); status != 200 {
			t.Fatalf("eligibility: %d", status)
		}
		anon := &client{tb: t, url: c.district.url}
		if status, _ := anon.download("/exports/public-list?" + q); status != 401 {
			t.Fatalf("anonymous: %d", status)
		}
		if status, _ := c.wang.download("/exports/public-list?" + q); status != 403 {
			t.Fatalf("teacher: %d", status)
		}
		if status, _ := c.farAdmin.download("/exports/public-list?" + q); status != 403 {
			t.Fatalf("another district's school admin: %d", status)
		}
		if status, body := c.district.download("/exports/public-list?districtId=" + w.district + "&year=2026-2028"); status != 400 || !strings.Contains(string(body), "year") {
			t.Fatalf("bad year: %d %s", status, body)
		}
	})
}
