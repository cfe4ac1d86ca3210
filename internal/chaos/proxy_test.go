package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// linkProxy is a toxiproxy (used as a library, on loopback) between the devices and
// the server: it cuts, delays, slices, blackholes and resets their connections.
type linkProxy struct {
	p *toxiproxy.Proxy
}

func newLinkProxy(tb testing.TB, upstream string) *linkProxy {
	tb.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "sync", "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		tb.Fatalf("proxy: %v", err)
	}
	tb.Cleanup(p.Stop)
	return &linkProxy{p: p}
}

// URL is the base URL devices use to reach the server through the proxy.
func (l *linkProxy) URL() string { return "http://" + l.p.Listen }

// Toxic adds a toxic of type typ on stream ("upstream": device to server,
// "downstream": server to device) to every link, open or new.
func (l *linkProxy) Toxic(name, typ, stream string, attrs map[string]any) error {
	body, _ := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs})
	_, err := l.p.Toxics.AddToxicJson(bytes.NewReader(body))
	return err
}

// Clear removes every toxic.
func (l *linkProxy) Clear() { l.p.Toxics.ResetToxics(context.Background()) }

// Down closes every link and stops accepting new ones.
func (l *linkProxy) Down() { l.p.Stop() }

// Up accepts links again (on the same port).
func (l *linkProxy) Up() error {
	if err := l.p.Start(); err != nil && !errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
		return err
	}
	return nil
}
