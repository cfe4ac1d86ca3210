package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/graph"
	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/postgres/demo"
	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// demoStore returns a fresh database with the demo data and a store on it.
func demoStore(t *testing.T) (*sqlx.DB, *postgres.Store) {
	t.Helper()
	db := pgtest.NewDB(t)
	store := postgres.NewStore(db, hlc.NewClock("test"), slog.New(slog.DiscardHandler))
	if err := demo.Load(context.Background(), db, store); err != nil {
		t.Fatal(err)
	}
	return db, store
}

// serveAs serves the GraphQL handler on store, each request as the actor that actor
// returns then, until the test ends.
func serveAs(t *testing.T, store *postgres.Store, actor func() *jiaoliu.Actor) *httptest.Server {
	t.Helper()
	h := graph.Middleware(store, graph.NewHandler(store, slog.New(slog.DiscardHandler)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(jiaoliu.NewContextWithActor(r.Context(), actor())))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// postQuery posts a GraphQL request (vars may be nil) to the server at url and returns
// the response's body.
func postQuery(t *testing.T, url, query string, vars any) []byte {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
