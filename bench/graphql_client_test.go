package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSendChecksTheAnswer: Send does not decode the data, but an answer with GraphQL
// errors, an HTTP error or a body that is not a JSON object of data is still an error.
func TestSendChecksTheAnswer(t *testing.T) {
	answers := []struct {
		status  int
		body    string
		wantErr string // "" for none
	}{
		{200, `{"data":{"lessons":{"nodes":[{"id":"1","subject":"errors"}]}}}`, ""},
		{200, "{\"data\":{\"schools\":null}}\n", ""},
		{200, `{"errors":[{"message":"sign in to read records"}],"data":null}`, "sign in to read records"},
		{200, `{"data":{"lessons":null},"errors":[{"message":"invalid page size"}]}`, "invalid page size"},
		{500, `internal error`, "500"},
		{502, `{"data":{"x":1}}`, "unexpected answer 502"},
		{200, `{"data":{"lessons":{"nodes":[`, "graphql: 200"},
		{200, `{"data":{"lessons":{"nodes":["errors"`, "graphql: 200"},
	}
	for _, a := range answers {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(a.status)
			_, _ = w.Write([]byte(a.body))
		}))
		g := &GraphQL{URL: srv.URL}
		req := NewRequest(`query { schools { nodes { id } } }`, nil)
		for range 2 { // the second time through a pooled buffer
			err := g.Send(context.Background(), req)
			switch {
			case a.wantErr == "" && err != nil:
				t.Errorf("%d %s: %v", a.status, a.body, err)
			case a.wantErr != "" && (err == nil || !strings.Contains(err.Error(), a.wantErr)):
				t.Errorf("%d %s: error %v, want one with %q", a.status, a.body, err, a.wantErr)
			}
		}
		srv.Close()
	}
}
