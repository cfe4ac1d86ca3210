package export_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/export"
)

// MustOpenXLSX opens a workbook and returns the rows of its first sheet.
func MustOpenXLSX(tb testing.TB, b []byte) (string, [][]string) {
	tb.Helper()
	f, err := excelize.OpenReader(bytes.NewReader(b))
	if err != nil {
		tb.Fatalf("open xlsx: %v", err)
	}
	defer f.Close()
	sheet := f.GetSheetName(0)
	rows, err := f.GetRows(sheet)
	if err != nil {
		tb.Fatalf("read xlsx: %v", err)
	}
	return sheet, rows
}

// MustReadCSV checks the byte-order mark and parses a CSV export.
func MustReadCSV(tb testing.TB, b []byte) [][]string {
	tb.Helper()
	if !bytes.HasPrefix(b, []byte("\ufeff")) {
		tb.Fatal("CSV without the UTF-8 byte-order mark")
	}
	recs, err := csv.NewReader(bytes.NewReader(b[3:])).ReadAll()
	if err != nil {
		tb.Fatalf("parse csv: %v", err)
	}
	return recs
}

func sampleTable() *export.Table {
	return &export.Table{Title: "新密市2026-2027学年交流轮岗公示名单：测试/长标题超过三十一个字符的部分会被截断",
		Header: []string{"序号", "姓名", "派出学校"},
		Rows:   [][]any{{1, "李秀梅", "双河五小"}, {2, "赵志强, \"强\"", "北海小学"}}}
}

func TestWriteXLSX(t *testing.T) {
	var buf bytes.Buffer
	if err := export.WriteXLSX(&buf, sampleTable()); err != nil {
		t.Fatal(err)
	}
	sheet, rows := MustOpenXLSX(t, buf.Bytes())
	if n := len([]rune(sheet)); n > 31 || strings.ContainsAny(sheet, "/:") || !strings.HasPrefix(sheet, "新密市") {
		t.Fatalf("sheet name %q", sheet)
	}
	if len(rows) != 3 || strings.Join(rows[0], ",") != "序号,姓名,派出学校" || rows[2][1] != `赵志强, "强"` || rows[1][0] != "1" {
		t.Fatalf("rows=%q", rows)
	}
}

func TestWriteCSV(t *testing.T) {
	var buf bytes.Buffer
	if err := export.WriteCSV(&buf, sampleTable()); err != nil {
		t.Fatal(err)
	}
	recs := MustReadCSV(t, buf.Bytes())
	if len(recs) != 3 || recs[0][1] != "姓名" || recs[2][1] != `赵志强, "强"` {
		t.Fatalf("records=%q", recs)
	}
}

func TestAttendanceTable(t *testing.T) {
	days := make([]jiaoliu.AttendanceStatus, 30)
	days[1], days[2], days[3] = jiaoliu.AttendancePresent, jiaoliu.AttendanceAbsent, jiaoliu.AttendanceLeave
	tab := export.AttendanceTable("2026-11考勤表", &jiaoliu.AttendanceSheet{Month: "2026-11", Days: 30,
		Rows: []*jiaoliu.AttendanceSheetRow{{TeacherName: "赵志强", Days: days, Present: 1, Absent: 1, Leave: 1}}})
	if len(tab.Header) != 4+30+4 || tab.Header[4] != "1日" || tab.Header[33] != "30日" {
		t.Fatalf("header=%q", tab.Header)
	}
	row := tab.Rows[0]
	if row[5] != "√" || row[6] != "旷" || row[7] != "假" || row[4] != "" || row[len(row)-1] != 1 {
		t.Fatalf("row=%v", row)
	}
}

// fakeSource answers with fixed data, or with err.
type fakeSource struct {
	err       error
	lastMonth jiaoliu.Date
	lastQuery jiaoliu.AttendanceQuery
}

func (f *fakeSource) PublicList(ctx context.Context, districtID string, y jiaoliu.AcademicYear) ([]*jiaoliu.PublicListEntry, error) {
	return []*jiaoliu.PublicListEntry{{TeacherName: "李秀梅", Gender: jiaoliu.GenderFemale, SendingSchoolName: "双河五小", ReceivingSchoolName: "朱家沟小学",
		Mode: jiaoliu.ModeFullTime, Status: jiaoliu.StatusActive, Subjects: jiaoliu.StringList{"语文"}}}, f.err
}

func (f *fakeSource) AttendanceSheet(ctx context.Context, q jiaoliu.AttendanceQuery, month jiaoliu.Date) (*jiaoliu.AttendanceSheet, error) {
	f.lastMonth, f.lastQuery = month, q
	return &jiaoliu.AttendanceSheet{Month: "2026-02", Days: 28}, f.err
}

func (f *fakeSource) ExchangeProgressOfYear(ctx context.Context, districtID, schoolID string, y jiaoliu.AcademicYear, asOf jiaoliu.Date) ([]*jiaoliu.ExchangeProgress, error) {
	return nil, f.err
}

func (f *fakeSource) Eligibility(ctx context.Context, districtID string, y jiaoliu.AcademicYear, schoolID string) (*jiaoliu.EligibilityList, error) {
	return &jiaoliu.EligibilityList{}, f.err
}

func (f *fakeSource) DistrictName(ctx context.Context, id string) (string, error) {
	return "新密市", nil
}
func (f *fakeSource) SchoolName(ctx context.Context, id string) (string, error) {
	return "北海小学", nil
}

const district = "8d5f2a3c-1111-4c1e-9a44-0d6b1c2e3f40"

func TestHandler(t *testing.T) {
	src := &fakeSource{}
	mux := http.NewServeMux()
	export.NewHandler(src, nil, func() jiaoliu.Date { return jiaoliu.MustDate("2026-11-22") }).Routes(mux)
	admin := &jiaoliu.Actor{UserID: "u", Role: jiaoliu.RoleDistrictAdmin, DistrictID: district}
	get := func(actor *jiaoliu.Actor, url string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", url, nil)
		if actor != nil {
			req = req.WithContext(jiaoliu.NewContextWithActor(req.Context(), actor))
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}
	fields := func(rec *httptest.ResponseRecorder) map[string]any {
		var body struct {
			Error struct {
				Code   string         `json:"code"`
				Fields map[string]any `json:"fields"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("error body %q: %v", rec.Body.String(), err)
		}
		return body.Error.Fields
	}

	for _, c := range []struct {
		url    string
		status int
		field  string
	}{
		{"/exports/public-list?districtId=" + district + "&year=2026-2027", 200, ""},
		{"/exports/public-list?districtId=" + district + "&year=2026-2027&format=csv", 200, ""},
		{"/exports/public-list?districtId=" + district + "&year=2026-2028", 400, "year"},
		{"/exports/public-list?districtId=" + district + "&year=2026", 400, "year"},
		{"/exports/public-list?districtId=" + district, 400, "year"},
		{"/exports/public-list?districtId=nope&year=2026-2027", 400, "districtId"},
		{"/exports/public-list?year=2026-2027", 400, "districtId"},
		{"/exports/public-list?districtId=" + district + "&year=2026-2027&format=pdf", 400, "format"},
		{"/exports/attendance?districtId=" + district + "&month=2026-13", 400, "month"},
		{"/exports/attendance?districtId=" + district + "&month=2026-2", 400, "month"},
		{"/exports/attendance?month=2026-02", 400, "exchangeId"},
		{"/exports/attendance?month=2026-02&districtId=" + district + "&schoolId=" + district, 400, "exchangeId"},
		{"/exports/attendance?month=2026-02&districtId=" + district, 200, ""},
		{"/exports/progress?year=2026-2027", 400, "districtId"},
		{"/exports/progress?year=2026-2027&districtId=" + district + "&asOf=2026-13-01", 400, "asOf"},
		{"/exports/progress?year=2026-2027&districtId=" + district, 200, ""},
		{"/exports/eligibility?year=2026-2027&districtId=" + district, 200, ""},
	} {
		rec := get(admin, c.url)
		if rec.Code != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.url, rec.Code, c.status, rec.Body.String())
			continue
		}
		if c.field != "" {
			if _, ok := fields(rec)[c.field]; !ok {
				t.Errorf("%s: fields=%v, want %s", c.url, fields(rec), c.field)
			}
		}
	}

	t.Run("downloads", func(t *testing.T) {
		rec := get(admin, "/exports/public-list?districtId="+district+"&year=2026-2027")
		if ct := rec.Header().Get("Content-Type"); !strings.Contains(ct, "spreadsheetml") {
			t.Fatalf("content type %q", ct)
		}
		if cd := rec.Header().Get("Content-Disposition"); !strings.Contains(cd, "attachment") || !strings.Contains(cd, "UTF-8''") {
			t.Fatalf("content disposition %q", cd)
		}
		_, rows := MustOpenXLSX(t, rec.Body.Bytes())
		if len(rows) != 2 || rows[0][1] != "姓名" || rows[1][1] != "李秀梅" || rows[1][9] != "全日制交流" {
			t.Fatalf("rows=%q", rows)
		}
		recs := MustReadCSV(t, get(admin, "/exports/public-list?districtId="+district+"&year=2026-2027&format=csv").Body.Bytes())
		if len(recs) != 2 || recs[1][5] != "语文" {
			t.Fatalf("csv=%q", recs)
		}
		rec = get(admin, "/exports/attendance?districtId="+district+"&month=2026-02&format=csv")
		if recs := MustReadCSV(t, rec.Body.Bytes()); len(recs[0]) != 4+28+4 || src.lastMonth != jiaoliu.MustDate("2026-02-01") || src.lastQuery.DistrictID != district {
			t.Fatalf("attendance header=%q month=%s query=%+v", recs[0], src.lastMonth, src.lastQuery)
		}
	})

	t.Run("auth", func(t *testing.T) {
		if rec := get(nil, "/exports/public-list?districtId="+district+"&year=2026-2027"); rec.Code != 401 || rec.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("no actor: %d", rec.Code)
		}
		src.err = jiaoliu.Errorf(jiaoliu.EFORBIDDEN, "no")
		defer func() { src.err = nil }()
		if rec := get(admin, "/exports/public-list?districtId="+district+"&year=2026-2027"); rec.Code != 403 {
			t.Fatalf("forbidden: %d", rec.Code)
		}
		src.err = jiaoliu.Errorf(jiaoliu.ENOTFOUND, "no policy")
		if rec := get(admin, "/exports/progress?districtId="+district+"&year=2026-2027"); rec.Code != 404 {
			t.Fatalf("not found: %d", rec.Code)
		}
		src.err = context.DeadlineExceeded
		if rec := get(admin, "/exports/eligibility?districtId="+district+"&year=2026-2027"); rec.Code != 500 || strings.Contains(rec.Body.String(), "deadline") {
			t.Fatalf("internal: %d %s", rec.Code, rec.Body.String())
		}
	})
}
