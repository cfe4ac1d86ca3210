package export_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"

	"github.com/google/uuid"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/export"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, postgres.Migrate, postgres.CheckScopeCopies)) }

// FuzzExportParameters sends arbitrary query strings to every export, served from a
// store on a real database, as an admin: bad parameters must be refused with 4xx and
// the offending fields, never answered 500 or with a panic. Run longer with
//
//	go test ./export -run '^$' -fuzz FuzzExportParameters -fuzztime 30s
func FuzzExportParameters(f *testing.F) {
	store := postgres.NewStore(pgtest.NewDB(f), hlc.NewClock("fuzz"), nil)
	sys := jiaoliu.NewContextWithActor(context.Background(), jiaoliu.SystemActor)
	clock := hlc.NewClock("seed")
	district, urban, rural, teacher, exchange := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	up := func(entity, id string, fields map[string]any) jiaoliu.Op {
		return jiaoliu.Op{OpID: uuid.NewString(), Kind: jiaoliu.OpUpsert, Entity: entity, ID: id, HLC: clock.Now(), Fields: fields}
	}
	if _, err := store.Apply(sys, jiaoliu.Batch{Atomic: true, Ops: []jiaoliu.Op{
		up("district", district, map[string]any{"name": "新密市"}),
		up("school", urban, map[string]any{"districtId": district, "name": "双河五小", "locality": "URBAN", "tier": "QUALITY"}),
		up("school", rural, map[string]any{"districtId": district, "name": "曹河教学点", "locality": "TEACHING_POINT", "tier": "WEAK"}),
		up("teacher", teacher, map[string]any{"name": "王芳", "gender": "FEMALE", "birthDate": "1985-03-02", "schoolId": urban, "joinedSchoolOn": "2015-09-01"}),
		up("exchange", exchange, map[string]any{"teacherId": teacher, "sendingSchoolId": urban, "receivingSchoolId": rural,
			"mode": "FULL_TIME", "academicYear": "2026-2027", "plannedStart": "2026-09-01", "plannedEnd": "2027-07-15", "status": "APPROVED"}),
	}}); err != nil {
		f.Fatal(err)
	}
	mux := http.NewServeMux()
	export.NewHandler(store, nil, postgres.Today).Routes(mux)
	admin := jiaoliu.NewContextWithActor(context.Background(), &jiaoliu.Actor{UserID: uuid.NewString(), Username: "admin", Role: jiaoliu.RoleAdmin})
	paths := []string{"/exports/public-list", "/exports/attendance", "/exports/progress", "/exports/eligibility"}

	for _, s := range []struct {
		path  int
		query string
	}{
		{0, "districtId=" + district + "&year=2026-2027&format=csv"},
		{0, "districtId=" + district + "&year=2026-2028"},
		{0, "districtId=nope&year=&format=pdf"},
		{1, "month=2026-11&exchangeId=" + exchange + "&format=csv"},
		{1, "month=2026-13&schoolId=" + rural + "&districtId=" + district},
		{1, "month=0000-01&districtId=" + district},
		{2, "districtId=" + district + "&year=2026-2027&asOf=2026-02-30"},
		{2, "schoolId=" + rural + "&year=9999-10000&asOf=2026-11-22&format=xlsx"},
		{3, "districtId=" + district + "&year=2026-2027&schoolId=" + urban},
		{3, "districtId=" + uuid.NewString() + "&year=2026-2027"},
		{3, "districtId=%00&year=%ZZ&format=csv;format=xlsx&districtId=" + district},
	} {
		f.Add(s.path, s.query)
	}
	f.Fuzz(func(t *testing.T, path int, query string) {
		if path < 0 || path >= len(paths) {
			return
		}
		req := (&http.Request{Method: "GET", URL: &url.URL{Path: paths[path], RawQuery: query}, Header: http.Header{}}).WithContext(admin)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		switch {
		case rec.Code >= 500:
			t.Fatalf("%s?%s: status %d: %.300s", paths[path], query, rec.Code, rec.Body.Bytes())
		case rec.Code >= 400:
			var body struct {
				Error struct{ Code string } `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code == "" {
				t.Fatalf("%s?%s: status %d without an error code: %.300s", paths[path], query, rec.Code, rec.Body.Bytes())
			}
		}
	})
}
