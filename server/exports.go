package main

import (
	"context"
	"net/http"
	"time"

	"github.com/jiaoliu/jiaoliu/export"
	"github.com/jiaoliu/jiaoliu/graph"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// StatsCompactInterval is how often the server folds the activity counts that the
// write path appends (see postgres.Store.CompactExchangeStats).
const StatsCompactInterval = 30 * time.Second

// exportRoutes mounts the exports of the policy views (/exports/…, behind the same
// Bearer authentication as /graphql) and starts the periodic compaction of the weekly
// activity counts that the dashboards read, until ctx ends.
func (m *Main) exportRoutes(ctx context.Context, mux *http.ServeMux) {
	h := export.NewHandler(m.Store, m.Log, postgres.Today)
	exports := http.NewServeMux()
	h.Routes(exports)
	mux.Handle("/exports/", graph.Authenticate(m.Store, m.Log, exports))
	go func() {
		t := time.NewTicker(StatsCompactInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				if _, err := m.Store.CompactExchangeStats(cctx); err != nil && ctx.Err() == nil {
					m.Log.Error("compact exchange stats", "error", err.Error())
				}
				cancel()
			}
		}
	}()
}
