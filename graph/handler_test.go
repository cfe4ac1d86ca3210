package graph_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/graph"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// MustServeGraphQL serves the GraphQL handler on a fresh database, as an ADMIN.
func MustServeGraphQL(tb testing.TB) string {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	store := postgres.NewStore(pgtest.NewDB(tb), hlc.NewClock("test"), log)
	admin := &jiaoliu.Actor{UserID: uuid.NewString(), Username: "admin", Role: jiaoliu.RoleAdmin, System: true}
	h := graph.Middleware(store, graph.NewHandler(store, log))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(jiaoliu.NewContextWithActor(r.Context(), admin)))
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

func post(tb testing.TB, url string, body io.Reader, contentLength int64) (int, []gqlError, string) {
	tb.Helper()
	req, err := http.NewRequest("POST", url, body)
	if err != nil {
		tb.Fatal(err)
	}
	req.ContentLength = contentLength
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Errors []gqlError `json:"errors"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		tb.Fatalf("status %d, not a GraphQL response: %.300s", resp.StatusCode, raw)
	}
	return resp.StatusCode, out.Errors, resp.Header.Get("Content-Type")
}

// TestMalformedScalarsAreInvalid checks that a Date or Time that cannot be read, as a
// variable or a literal, is answered INVALID and names the input (it was INTERNAL for
// Time: gqlgen's coercion error wraps its cause).
func TestMalformedScalarsAreInvalid(t *testing.T) {
	url := MustServeGraphQL(t)
	for _, tt := range []struct {
		name, query, vars, field string
	}{
		{"time variable", `query($f: AuditFilter) { auditLog(filter: $f) { nodes { id } } }`, `{"f":{"from":"yesterday"}}`, "filter.from"},
		{"time variable of the wrong type", `query($f: AuditFilter) { auditLog(filter: $f) { nodes { id } } }`, `{"f":{"to":17}}`, "filter.to"},
		{"time literal", `{ auditLog(filter: {from: "2026-10-12"}) { nodes { id } } }`, `null`, "filter.from"},
		{"date variable", `query($f: ListFilter) { lessons(filter: $f) { totalCount } }`, `{"f":{"from":"2026-02-30"}}`, "filter.from"},
		{"date argument", `mutation($d: Date) { transitionExchange(id: "x", status: ACTIVE, reportedOn: $d) { id } }`, `{"d":"12.10.2026"}`, "reportedOn"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"query":` + string(must(json.Marshal(tt.query))) + `,"variables":` + tt.vars + `}`
			status, errs, _ := post(t, url, strings.NewReader(body), int64(len(body)))
			if status != http.StatusOK || len(errs) != 1 {
				t.Fatalf("status %d, errors %+v", status, errs)
			}
			e := errs[0]
			if got, want := e.Extensions["code"], jiaoliu.EINVALID; got != want {
				t.Fatalf("code=%v, want %v (%q)", got, want, e.Message)
			}
			fields, _ := e.Extensions["fields"].(map[string]any)
			if msg, _ := fields[tt.field].(string); msg == "" || !strings.Contains(e.Message, tt.field) {
				t.Fatalf("error does not name %s: %+v", tt.field, e)
			}
		})
	}
}

// TestBodyOverLimitIs413 checks that a request body over MaxBodyBytes is answered
// 413 with a GraphQL error body, whether it announces its length or not.
func TestBodyOverLimitIs413(t *testing.T) {
	url := MustServeGraphQL(t)
	big := `{"query":"{ me { id } }","variables":{"pad":"` + strings.Repeat("x", graph.MaxBodyBytes) + `"}}`
	for _, tt := range []struct {
		name   string
		length int64
	}{{"content-length", int64(len(big))}, {"chunked", -1}} {
		t.Run(tt.name, func(t *testing.T) {
			status, errs, ctype := post(t, url, io.MultiReader(strings.NewReader(big)), tt.length)
			if status != http.StatusRequestEntityTooLarge || len(errs) != 1 || !strings.HasPrefix(ctype, "application/json") {
				t.Fatalf("status %d, content type %q, errors %+v", status, ctype, errs)
			}
			if got, want := errs[0].Extensions["code"], graph.ETOOLARGE; got != want {
				t.Fatalf("code=%v, want %v", got, want)
			}
		})
	}
	// Just under the limit goes through.
	small := `{"query":"{ policyPresets }","variables":{"pad":"` + strings.Repeat("x", graph.MaxBodyBytes-100) + `"}}`
	if status, errs, _ := post(t, url, bytes.NewReader([]byte(small)), int64(len(small))); status != http.StatusOK || len(errs) != 0 {
		t.Fatalf("a body under the limit: status %d, errors %+v", status, errs)
	}
}

// TestSubscriptionOverHTTPIsRefused checks that a subscription sent over HTTP is
// answered at once (it would otherwise hold the request until its first event).
func TestSubscriptionOverHTTPIsRefused(t *testing.T) {
	url := MustServeGraphQL(t)
	body := `{"query":"subscription { syncActivity { kind } }"}`
	status, errs, _ := post(t, url, strings.NewReader(body), int64(len(body)))
	if len(errs) != 1 || errs[0].Extensions["code"] != jiaoliu.EINVALID || !strings.Contains(errs[0].Message, "websocket") {
		t.Fatalf("status %d, errors %+v", status, errs)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
