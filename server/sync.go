package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/jiaoliu/jiaoliu/sync/hub"
	syncserver "github.com/jiaoliu/jiaoliu/sync/server"
)

// syncRoutes mounts the sync protocol's endpoints and starts the hub that pokes
// devices after commits on any replica (LISTEN/NOTIFY).
func (m *Main) syncRoutes(ctx context.Context, mux *http.ServeMux) error {
	h := hub.New(m.Log)
	errc := make(chan error, 1)
	go func() {
		for {
			err := h.Listen(ctx, m.dsn)
			if ctx.Err() != nil {
				return
			}
			select {
			case errc <- err:
			default:
			}
			m.Log.Error("sync hub stopped; restarting", "error", fmt.Sprint(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	select {
	case <-h.Ready():
	case err := <-errc:
		return fmt.Errorf("sync hub: %w", err)
	case <-time.After(15 * time.Second):
		return fmt.Errorf("sync hub: not listening after 15 s")
	}
	srv := syncserver.New(m.Store, m.Store, h, m.Log)
	srv.Routes(mux)
	m.closers = append(m.closers, srv.Shutdown)
	return nil
}
