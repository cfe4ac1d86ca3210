package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/jiaoliu/jiaoliu/graph"
	"github.com/jiaoliu/jiaoliu/sync/hub"
	syncserver "github.com/jiaoliu/jiaoliu/sync/server"
)

// syncRoutes mounts the sync protocol's endpoints, starts the hub that pokes devices
// after commits on any replica and fans sync activity out to GraphQL subscribers
// (LISTEN/NOTIFY), and the publisher of this replica's sync activity.
func (m *Main) syncRoutes(ctx context.Context, mux *http.ServeMux) error {
	h := hub.New(m.Log)
	m.Hub = h
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
	pub := hub.NewPublisher(m.Store, m.node, m.Log)
	go pub.Run(ctx)
	m.Activity = pub
	srv := syncserver.New(m.Store, m.Store, h, m.Log)
	srv.Observer = pub
	srv.CheckOrigin = graph.CheckOrigin(m.origins())
	srv.Routes(mux)
	// The sessions close first (their disconnects are published), then the publisher
	// sends what it still holds.
	m.closers = append(m.closers, srv.Shutdown, pub.Close)
	return nil
}

var _ syncserver.Observer = (*hub.Publisher)(nil)
