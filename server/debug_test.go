package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jiaoliu/jiaoliu/internal/pgtest"
)

// TestDebugAddr: DEBUG_ADDR serves the profiles on a listener of its own; the public
// address never does.
func TestDebugAddr(t *testing.T) {
	m := NewMain()
	env := map[string]string{"DATABASE_URL": pgtest.NewDSN(t), "ADDR": "127.0.0.1:0", "DEMO": "false",
		"ADMIN_PASSWORD": adminPassword, "LOG_LEVEL": "error", "DEBUG_ADDR": "127.0.0.1:0"}
	if err := m.ParseFlags(nil, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if m.debugAddr == "" {
		t.Fatal("DEBUG_ADDR set but no debug listener")
	}
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + m.debugAddr + "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("debug listener: %d %.200s", code, body)
	}
	if code, _ := get("http://" + m.Addr() + "/debug/pprof/goroutine?debug=1"); code == 200 {
		t.Fatal("the public address serves profiles")
	}
}

func TestGCFloorSetting(t *testing.T) {
	for _, c := range []struct {
		env, flag string
		want      int
		bad       bool
	}{
		{"", "", 64, false},
		{"0", "", 0, false},
		{"256", "", 256, false},
		{"256", "-gc-floor-mib=32", 32, false},
		{"-1", "", 0, true},
		{"lots", "", 0, true},
		{"", "-gc-floor-mib=-5", 0, true},
	} {
		m := NewMain()
		var args []string
		if c.flag != "" {
			args = []string{c.flag}
		}
		err := m.ParseFlags(args, func(k string) string {
			if k == "GC_FLOOR_MIB" {
				return c.env
			}
			return ""
		})
		if c.bad {
			if err == nil {
				t.Errorf("GC_FLOOR_MIB=%q %s: accepted", c.env, c.flag)
			}
			continue
		}
		if err != nil || m.Config.GCFloorMiB != c.want {
			t.Errorf("GC_FLOOR_MIB=%q %s: %d, %v; want %d", c.env, c.flag, m.Config.GCFloorMiB, err, c.want)
		}
	}
}
