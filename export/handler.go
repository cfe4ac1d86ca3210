package export

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/google/uuid"

	"github.com/jiaoliu/jiaoliu"
)

// Source is what the exports read. Each method authorizes the actor of ctx (see
// jiaoliu.PolicyService): district administrators and auditors their district, school
// administrators their school; teachers are refused.
type Source interface {
	PublicList(ctx context.Context, districtID string, y jiaoliu.AcademicYear) ([]*jiaoliu.PublicListEntry, error)
	AttendanceSheet(ctx context.Context, q jiaoliu.AttendanceQuery, month jiaoliu.Date) (*jiaoliu.AttendanceSheet, error)
	ExchangeProgressOfYear(ctx context.Context, districtID, schoolID string, y jiaoliu.AcademicYear, asOf jiaoliu.Date) ([]*jiaoliu.ExchangeProgress, error)
	Eligibility(ctx context.Context, districtID string, y jiaoliu.AcademicYear, schoolID string) (*jiaoliu.EligibilityList, error)
	DistrictName(ctx context.Context, id string) (string, error)
	SchoolName(ctx context.Context, id string) (string, error)
}

// Handler serves the exports under /exports/. Requests must pass through an
// authenticating middleware that puts the actor in the context (graph.Authenticate):
// without one the answer is 401.
type Handler struct {
	src   Source
	log   *slog.Logger
	today func() jiaoliu.Date
}

// NewHandler returns the export handler. today gives the default "as of" day.
func NewHandler(src Source, log *slog.Logger, today func() jiaoliu.Date) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{src: src, log: log, today: today}
}

// Routes mounts the exports on mux:
//
//	GET /exports/public-list?districtId=&year=2026-2027&format=xlsx|csv
//	GET /exports/attendance?month=2026-11&(exchangeId=|schoolId=|districtId=)&format=
//	GET /exports/progress?(districtId=|schoolId=)&year=&asOf=2026-11-22&format=
//	GET /exports/eligibility?districtId=&year=[&schoolId=]&format=
//
// format defaults to xlsx. Bad parameters get 400 with the offending fields, a missing
// or invalid session 401, a view outside the caller's scope 403.
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /exports/public-list", h.serve(h.publicList))
	mux.HandleFunc("GET /exports/attendance", h.serve(h.attendance))
	mux.HandleFunc("GET /exports/progress", h.serve(h.progress))
	mux.HandleFunc("GET /exports/eligibility", h.serve(h.eligibility))
}

// params reads and checks query parameters, collecting every problem.
type params struct {
	q  url.Values
	fe jiaoliu.FieldErrors
}

func (p *params) id(name string, required bool) string {
	v := p.q.Get(name)
	if v == "" {
		if required {
			p.fe.Add(name, "is required (an id)")
		}
		return ""
	}
	if _, err := uuid.Parse(v); err != nil {
		p.fe.Add(name, "must be an id (UUID)")
		return ""
	}
	return v
}

func (p *params) year() jiaoliu.AcademicYear {
	v := p.q.Get("year")
	if v == "" {
		p.fe.Add("year", "is required: an academic year YYYY-YYYY, e.g. 2026-2027")
		return ""
	}
	y, err := jiaoliu.ParseAcademicYear(v)
	if err != nil {
		p.fe.Add("year", "must be an academic year YYYY-YYYY with consecutive years, e.g. 2026-2027")
	}
	return y
}

var monthRE = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])$`)

func (p *params) month() jiaoliu.Date {
	v := p.q.Get("month")
	if !monthRE.MatchString(v) {
		p.fe.Add("month", "must be a month YYYY-MM, e.g. 2026-11")
		return jiaoliu.Date{}
	}
	t, _ := time.Parse("2006-01", v)
	return jiaoliu.DateOf(t)
}

func (p *params) date(name string, def jiaoliu.Date) jiaoliu.Date {
	v := p.q.Get(name)
	if v == "" {
		return def
	}
	d, err := jiaoliu.ParseDate(v)
	if err != nil {
		p.fe.Add(name, "must be a date YYYY-MM-DD")
	}
	return d
}

func (p *params) format() string {
	switch v := p.q.Get("format"); v {
	case "", "xlsx":
		return "xlsx"
	case "csv":
		return "csv"
	default:
		p.fe.Add("format", "must be xlsx or csv")
		return ""
	}
}

// report builds a table from a request, or fails with a domain error.
type report func(ctx context.Context, p *params) (*Table, error)

func (h *Handler) serve(build report) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if jiaoliu.ActorFromContext(r.Context()) == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="jiaoliu"`)
			h.fail(w, r, jiaoliu.Errorf(jiaoliu.EUNAUTHENTICATED, "sign in: send Authorization: Bearer <session token>"))
			return
		}
		p := &params{q: r.URL.Query(), fe: jiaoliu.FieldErrors{}}
		format := p.format()
		ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
		defer cancel()
		t, err := build(ctx, p)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		var buf bytes.Buffer
		ctype := "text/csv; charset=utf-8"
		if format == "xlsx" {
			ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
			err = WriteXLSX(&buf, t)
		} else {
			err = WriteCSV(&buf, t)
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		name := t.Title + "." + format
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="export.%s"; filename*=UTF-8''%s`, format, url.PathEscape(name)))
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
		_, _ = w.Write(buf.Bytes())
	}
}

// statusOf maps a domain error code to an HTTP status.
func statusOf(code string) int {
	switch code {
	case jiaoliu.EINVALID:
		return http.StatusBadRequest
	case jiaoliu.EUNAUTHENTICATED:
		return http.StatusUnauthorized
	case jiaoliu.EFORBIDDEN:
		return http.StatusForbidden
	case jiaoliu.ENOTFOUND:
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// fail answers with the error as JSON: {"error": {"code", "message", "fields"}}.
// Internal errors are logged and shown without detail.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := jiaoliu.ErrorCode(err)
	if code == jiaoliu.EINTERNAL {
		h.log.ErrorContext(r.Context(), "export", "path", r.URL.Path, "error", err.Error())
	}
	body := map[string]any{"code": code, "message": jiaoliu.ErrorMessage(err)}
	if f := jiaoliu.ErrorFields(err); len(f) > 0 {
		body["fields"] = f
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(statusOf(code))
	_ = json.NewEncoder(w).Encode(map[string]any{"error": body})
}

func (h *Handler) publicList(ctx context.Context, p *params) (*Table, error) {
	district, y := p.id("districtId", true), p.year()
	if err := p.fe.Err(); err != nil {
		return nil, err
	}
	list, err := h.src.PublicList(ctx, district, y)
	if err != nil {
		return nil, err
	}
	name, err := h.src.DistrictName(ctx, district)
	if err != nil {
		return nil, err
	}
	return PublicListTable(name, y, list), nil
}

func (h *Handler) attendance(ctx context.Context, p *params) (*Table, error) {
	month := p.month()
	q := jiaoliu.AttendanceQuery{ExchangeID: p.id("exchangeId", false), SchoolID: p.id("schoolId", false), DistrictID: p.id("districtId", false)}
	n := 0
	for _, k := range []string{"exchangeId", "schoolId", "districtId"} {
		if p.q.Get(k) != "" {
			n++
		}
	}
	if n != 1 {
		p.fe.Add("exchangeId", "give exactly one of exchangeId, schoolId or districtId")
	}
	if err := p.fe.Err(); err != nil {
		return nil, err
	}
	sheet, err := h.src.AttendanceSheet(ctx, q, month)
	if err != nil {
		return nil, err
	}
	title := sheet.Month + "交流教师考勤表"
	switch {
	case q.SchoolID != "":
		name, err := h.src.SchoolName(ctx, q.SchoolID)
		if err != nil {
			return nil, err
		}
		title = name + title
	case q.DistrictID != "":
		name, err := h.src.DistrictName(ctx, q.DistrictID)
		if err != nil {
			return nil, err
		}
		title = name + title
	case len(sheet.Rows) == 1:
		title = sheet.Rows[0].TeacherName + title
	}
	return AttendanceTable(title, sheet), nil
}

func (h *Handler) progress(ctx context.Context, p *params) (*Table, error) {
	district, school, y := p.id("districtId", false), p.id("schoolId", false), p.year()
	asOf := p.date("asOf", h.today())
	if p.q.Get("districtId") == "" && p.q.Get("schoolId") == "" {
		p.fe.Add("districtId", "give a districtId or a schoolId")
	}
	if err := p.fe.Err(); err != nil {
		return nil, err
	}
	list, err := h.src.ExchangeProgressOfYear(ctx, district, school, y, asOf)
	if err != nil {
		return nil, err
	}
	var name string
	if school != "" {
		name, err = h.src.SchoolName(ctx, school)
	} else {
		name, err = h.src.DistrictName(ctx, district)
	}
	if err != nil {
		return nil, err
	}
	return ProgressTable(fmt.Sprintf("%s%s学年交流工作进度表（截至%s）", name, y, asOf), list), nil
}

func (h *Handler) eligibility(ctx context.Context, p *params) (*Table, error) {
	district, school, y := p.id("districtId", true), p.id("schoolId", false), p.year()
	if err := p.fe.Err(); err != nil {
		return nil, err
	}
	list, err := h.src.Eligibility(ctx, district, y, school)
	if err != nil {
		return nil, err
	}
	name, err := h.src.DistrictName(ctx, district)
	if err != nil {
		return nil, err
	}
	return EligibilityTable(fmt.Sprintf("%s%s学年交流人员资格认定表", name, y), list.Teachers), nil
}
