package main

import (
	"context"
	"net/http"
)

// syncRoutes mounts the sync protocol's endpoints.
func (m *Main) syncRoutes(ctx context.Context, mux *http.ServeMux) error {
	return nil
}
