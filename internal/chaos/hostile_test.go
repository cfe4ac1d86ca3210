package chaos_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/jiaoliu/jiaoliu/sync/hlc"
)

// TestHostileClients runs broken and hostile clients against the real server:
// authentication failures, a token revoked mid-session, message and connection rate
// limits per device, size limits of both transports and of GraphQL, GraphQL depth and
// complexity limits, and a stream of malformed messages. Each must be refused with its
// code and leave the server and every other client unaffected.
func TestHostileClients(t *testing.T) {
	srv := newServer(t)
	w := newWorld(t, srv.URL())
	url := srv.URL()

	t.Run("authentication failures", func(t *testing.T) {
		dev := registerDevice(t, w.admin, w.userA, "auth-tablet")
		other := registerDevice(t, w.admin, w.userB, "auth-other")
		web := login(t, url, w.usernameA, userPassword)
		for _, tc := range []struct{ name, device, token string }{
			{"no token", dev.DeviceID, ""},
			{"unknown token", dev.DeviceID, "not-a-token"},
			{"a web session token", dev.DeviceID, web.token},
			{"another device's token", dev.DeviceID, other.Token},
		} {
			c := dialRaw(t, url, "")
			if m := c.hello(tc.device, tc.token); m["type"] != "error" || m["code"] != "unauthorized" {
				t.Errorf("%s: hello answered %v, want error unauthorized", tc.name, m)
				continue
			}
			if ce := c.expectClose(websocket.ClosePolicyViolation); ce.Text != "unauthorized" {
				t.Errorf("%s: close reason %q", tc.name, ce.Text)
			}
		}
		for _, token := range []string{"", "not-a-token", web.token} {
			status, m := post(t, url, "/sync/pull", token, []byte(`{"type":"pull"}`))
			if status != http.StatusUnauthorized || m["code"] != "unauthorized" {
				t.Errorf("HTTP pull with token %.10q: %d %v, want 401 unauthorized", token, status, m)
			}
		}
		bad := &gql{tb: t, url: url, token: "not-a-token"}
		if r, err := bad.Do(`{ me { id } }`, nil); err != nil || r.Status != http.StatusUnauthorized {
			t.Errorf("GraphQL with a bad token: %d %v", r.Status, err)
		}
	})

	t.Run("token revoked mid-session", func(t *testing.T) {
		dev := registerDevice(t, w.admin, w.userA, "revoked-tablet")
		c := dialRaw(t, url, "")
		if m := c.hello(dev.DeviceID, dev.Token); m["type"] != "welcome" {
			t.Fatalf("hello: %v", m)
		}
		c.send(map[string]any{"type": "ping"})
		c.expect("pong")
		begin := time.Now()
		w.admin.Must(`mutation($id: ID!) { revokeDevice(id: $id) { id } }`, map[string]any{"id": dev.DeviceID}, nil)
		// The idle socket is told at once (NOTIFY device_revoked), without a message of its own.
		c.expectError("unauthorized")
		c.expectClose(websocket.ClosePolicyViolation)
		t.Logf("revoked socket closed %v after revokeDevice", time.Since(begin).Round(time.Millisecond))
		if status, _ := post(t, url, "/sync/push", dev.Token, []byte(`{"type":"push","batchId":"b","ops":[]}`)); status != http.StatusUnauthorized {
			t.Errorf("HTTP push after revocation: %d, want 401", status)
		}
		again := dialRaw(t, url, "")
		if m := again.hello(dev.DeviceID, dev.Token); m["code"] != "unauthorized" {
			t.Errorf("hello after revocation: %v", m)
		}
	})

	t.Run("message rate limit per device", func(t *testing.T) {
		dev := registerDevice(t, w.admin, w.userA, "chatty-tablet")
		c := dialRaw(t, url, "")
		if m := c.hello(dev.DeviceID, dev.Token); m["type"] != "welcome" {
			t.Fatalf("hello: %v", m)
		}
		// As fast as it can, one message at a time (a client that sends without reading
		// is a slow reader, and disconnected as one).
		begin := time.Now()
		const n = 250
		pongs, limited := 0, 0
		for range n {
			c.send(map[string]any{"type": "ping"})
			m, err := c.next(10 * time.Second)
			if err != nil {
				t.Fatalf("after %d pongs and %d refusals: %v", pongs, limited, err)
			}
			switch {
			case m["type"] == "pong":
				pongs++
			case m["type"] == "error" && m["code"] == "rate_limited":
				limited++
			default:
				t.Fatalf("ping answered %v", m)
			}
		}
		elapsed := time.Since(begin).Seconds()
		// Burst 100, then 20 a second.
		if max := 100 + int(20*elapsed) + 5; pongs > max || limited == 0 {
			t.Errorf("%d pongs and %d refusals in %.2fs, want at most %d pongs", pongs, limited, elapsed, max)
		}
		// The HTTP fallback draws on the same bucket: right after, its requests pass only
		// at the refill rate (a bucket of its own would let a burst of 100 through). One
		// may pass: the bucket refills a token every 50 ms.
		hb := time.Now()
		passed, refused := 0, 0
		for range 10 {
			status, m := post(t, url, "/sync/pull", dev.Token, []byte(`{"type":"pull","limit":1}`))
			switch {
			case status == http.StatusTooManyRequests && m["code"] == "rate_limited":
				refused++
			case status == http.StatusOK:
				passed++
			default:
				t.Errorf("HTTP pull while over the limit: %d %v", status, m)
			}
		}
		if max := 1 + int(20*time.Since(hb).Seconds()); refused == 0 || passed > max {
			t.Errorf("HTTP pulls while over the limit: %d passed, %d refused in %v, want at most %d passed",
				passed, refused, time.Since(hb).Round(time.Millisecond), max)
		}
		// Another device is not affected; the limited session recovers.
		other := registerDevice(t, w.admin, w.userB, "quiet-tablet")
		o := dialRaw(t, url, "")
		if m := o.hello(other.DeviceID, other.Token); m["type"] != "welcome" {
			t.Fatalf("hello: %v", m)
		}
		o.send(map[string]any{"type": "ping"})
		o.expect("pong")
		time.Sleep(200 * time.Millisecond)
		c.send(map[string]any{"type": "ping"})
		c.expect("pong")
		t.Logf("rate limit: %d pongs, %d rate_limited of %d pings in %.2fs", pongs, limited, n, elapsed)
	})

	t.Run("connection limits", func(t *testing.T) {
		dev := registerDevice(t, w.admin, w.userA, "hoarding-tablet")
		var conns []*rawConn
		for i := range 10 {
			c := dialRaw(t, url, loopback(10+i))
			if m := c.hello(dev.DeviceID, dev.Token); m["type"] != "welcome" {
				t.Fatalf("hello %d: %v", i, m)
			}
			conns = append(conns, c)
		}
		// The two oldest were closed to make room; the eight newest work.
		for i, c := range conns[:2] {
			c.expectError("rate_limited")
			if ce := c.expectClose(websocket.ClosePolicyViolation); ce.Text != "too many connections" {
				t.Errorf("socket %d: close reason %q", i, ce.Text)
			}
		}
		for _, c := range conns[2:] {
			c.send(map[string]any{"type": "ping"})
			c.expect("pong")
		}
		// Connection attempts are limited per device (burst 100, 20/s), from any address.
		flood := registerDevice(t, w.admin, w.userA, "flooding-tablet")
		var mu sync.Mutex
		var wg sync.WaitGroup
		welcomed, limited := 0, 0
		for worker := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 25 {
					c := dialRaw(t, url, loopback(40+worker*25+i))
					m := c.hello(flood.DeviceID, flood.Token)
					mu.Lock()
					switch {
					case m["type"] == "welcome":
						welcomed++
					case m["code"] == "rate_limited":
						limited++
					}
					mu.Unlock()
					c.ws.Close()
				}
			}()
		}
		wg.Wait()
		if limited == 0 || welcomed < 100 {
			t.Errorf("per device: %d hellos welcomed, %d rate-limited, want the burst of 100 and then refusals", welcomed, limited)
		}
		// And per client address, before any token is checked.
		hostLimited := 0
		for range 130 {
			c := dialRaw(t, url, "127.0.9.9")
			if m := c.hello(dev.DeviceID, "not-a-token"); m["code"] == "rate_limited" {
				hostLimited++
			}
			c.ws.Close()
		}
		if hostLimited == 0 {
			t.Errorf("130 hellos from one address were never rate-limited")
		}
		t.Logf("connections: 10 sockets of one device, the 2 oldest closed; per device %d welcomed / %d rate_limited of 200; per address %d of 130 rate_limited",
			welcomed, limited, hostLimited)
	})

	t.Run("size limits", func(t *testing.T) {
		dev := registerDevice(t, w.admin, w.userA, "big-tablet")
		c := dialRaw(t, url, "")
		if m := c.hello(dev.DeviceID, dev.Token); m["type"] != "welcome" {
			t.Fatalf("hello: %v", m)
		}
		// A push with more ops than maxBatch applies nothing.
		var ops []any
		ex := w.exchangeA
		clock := hlc.NewClock(dev.DeviceID)
		for i := range 501 {
			ops = append(ops, map[string]any{"opId": uuid.NewString(), "kind": "upsert", "entity": "researchActivity", "id": uuid.NewString(),
				"hlc": clock.Now(), "fields": map[string]any{"exchangeId": ex, "date": "2026-10-12", "kind": "SURVEY", "topic": fmt.Sprint(i)}})
		}
		c.send(map[string]any{"type": "push", "batchId": "too-many", "ops": ops})
		if m := c.expectError("batch_too_large"); m["batchId"] != "too-many" {
			t.Errorf("batch_too_large without its batchId: %v", m)
		}
		// A message over maxMessageBytes is refused and the socket closed with 1009.
		big := strings.Repeat("x", 1<<20+10)
		c.send(map[string]any{"type": "pull", "cursor": big})
		c.expectError("too_large")
		c.expectClose(websocket.CloseMessageTooBig)
		// The same over HTTP: 413.
		body, _ := json.Marshal(map[string]any{"type": "pull", "cursor": big})
		if status, m := post(t, url, "/sync/pull", dev.Token, body); status != http.StatusRequestEntityTooLarge || m["code"] != "too_large" {
			t.Errorf("HTTP pull over 1 MiB: %d %v", status, m)
		}
		// GraphQL bodies are bounded too.
		q, _ := json.Marshal(map[string]any{"query": "{ me { id } }" + strings.Repeat(" ", 1<<20)})
		req, _ := http.NewRequest("POST", url+"/graphql", strings.NewReader(string(q)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+w.admin.token)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var refused gqlResponse
		_ = json.NewDecoder(resp.Body).Decode(&refused)
		resp.Body.Close()
		// 413 with a GraphQL error, and nothing ran.
		if resp.StatusCode != http.StatusRequestEntityTooLarge || len(refused.Errors) == 0 || !strings.Contains(refused.Errors[0].Message, "over") || (len(refused.Data) > 0 && string(refused.Data) != "null") {
			t.Errorf("GraphQL body over 1 MiB: status %d, %+v", resp.StatusCode, refused)
		}
		t.Logf("GraphQL body over 1 MiB: status %d, error %q", resp.StatusCode, refused.Errors[0].Message)
		var none struct{ ResearchActivities struct{ TotalCount int } }
		w.admin.Must(`{ researchActivities { totalCount } }`, nil, &none)
		if none.ResearchActivities.TotalCount != 0 {
			t.Errorf("a refused batch wrote %d records", none.ResearchActivities.TotalCount)
		}
	})

	t.Run("GraphQL depth and complexity", func(t *testing.T) {
		deep := `{ lessons(first: 1) { nodes { exchange { teacher { exchanges { evaluations { exchange { teacher { history { school { district { name } } } } } } } } } } } }`
		if code := w.admin.Code(deep, nil); code != "DEPTH_LIMIT_EXCEEDED" {
			t.Errorf("deep query: %s", code)
		}
		costly := `{ lessons(first: 500) { nodes { id exchange { id teacher { id name } } notes topic subject date period kind minutes
			school { name district { name } } } } teachers(first: 500) { nodes { id name exchanges { id } history { id } } } }`
		if code := w.admin.Code(costly, nil); code != "COMPLEXITY_LIMIT_EXCEEDED" {
			t.Errorf("costly query: %s", code)
		}
		// Fragments cannot hide depth.
		frag := `fragment T on Teacher { exchanges { evaluations { exchange { teacher { history { school { district { name } } } } } } } }
			{ lessons(first: 1) { nodes { exchange { teacher { ...T } } } } }`
		if code := w.admin.Code(frag, nil); code != "DEPTH_LIMIT_EXCEEDED" {
			t.Errorf("deep query through a fragment: %s", code)
		}
		w.admin.Must(`{ me { id } }`, nil, nil)
	})

	t.Run("malformed messages", func(t *testing.T) {
		seed := seed()
		t.Logf("seed=%d", seed)
		rng := rand.New(rand.NewPCG(seed, 3))
		dev := registerDevice(t, w.admin, w.userA, "garbage-tablet")
		c := dialRaw(t, url, "")
		if m := c.hello(dev.DeviceID, dev.Token); m["type"] != "welcome" {
			t.Fatalf("hello: %v", m)
		}
		// Another device works normally meanwhile.
		honest := newDevice("honest", registerDevice(t, w.admin, w.userB, "honest-tablet"), []string{w.exchangeB}, 0, true, seed, url)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				honest.makeOps(2)
				honest.push(ctx, false)
				honest.pullAll(ctx, 100)
				sleep(ctx, 50*time.Millisecond)
			}
		}()
		answered := map[string]int{}
		for i := range 90 {
			typ, data := garbage(rng, i)
			if err := c.sendRaw(typ, data); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			m, err := c.next(10 * time.Second)
			if err != nil {
				t.Fatalf("message %d (%.80q): the socket ended: %v", i, data, err)
			}
			for m["type"] == "poke" {
				if m, err = c.next(10 * time.Second); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			key := fmt.Sprint(m["type"])
			switch m["type"] {
			case "error":
				key += " " + fmt.Sprint(m["code"])
			case "ack":
				// Ops with bad contents are rejected and stored, never dropped.
				for _, r := range m["results"].([]any) {
					if st := r.(map[string]any)["status"]; st != "rejected" {
						t.Errorf("a malformed op was %v: %v", st, r)
					}
				}
			}
			answered[key]++
		}
		c.send(map[string]any{"type": "ping"})
		c.expect("pong")
		cancel()
		wg.Wait()
		drainCtx, stop := context.WithTimeout(context.Background(), 30*time.Second)
		defer stop()
		if err := honest.drain(drainCtx); err != nil {
			t.Error(err)
		}
		if st := honest.Stats(); st.rejected > 0 || st.acked == 0 {
			t.Errorf("the honest device: %d acked, %d rejected", st.acked, st.rejected)
		}
		t.Logf("90 malformed messages answered: %v", answered)
	})

	if srv.LogContains("panic") {
		t.Errorf("the server log mentions a panic")
	}
}

// garbage returns the i-th malformed or hostile message of a seeded stream.
func garbage(rng *rand.Rand, i int) (int, []byte) {
	randomBytes := func(n int) []byte {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		return b
	}
	op := func(fields any) map[string]any {
		return map[string]any{"opId": uuid.NewString(), "kind": "upsert", "entity": "lesson", "id": uuid.NewString(),
			"hlc": hlc.NewClock("x").Now(), "fields": fields}
	}
	cases := []func() (int, []byte){
		func() (int, []byte) { return websocket.TextMessage, randomBytes(1 + rng.IntN(200)) },
		func() (int, []byte) { return websocket.BinaryMessage, randomBytes(1 + rng.IntN(200)) },
		func() (int, []byte) { return websocket.TextMessage, []byte(`[1,2,3]`) },
		func() (int, []byte) { return websocket.TextMessage, []byte(`null`) },
		func() (int, []byte) { return websocket.TextMessage, []byte(`{"type":42}`) },
		func() (int, []byte) { return websocket.TextMessage, []byte(`{"type":"launch"}`) },
		func() (int, []byte) { return websocket.TextMessage, []byte(`{"type":"push","batchId":"b"}`) },
		func() (int, []byte) {
			return websocket.TextMessage, []byte(`{"type":"push","batchId":"b","ops":"all"}`)
		},
		func() (int, []byte) {
			return websocket.TextMessage, []byte(`{"type":"push","batchId":"b","ops":[1,"x",null]}`)
		},
		func() (int, []byte) {
			return websocket.TextMessage, []byte(`{"type":"push","batchId":"b","ops":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`)
		},
		func() (int, []byte) { return websocket.TextMessage, []byte(`{"type":"pull","limit":"all"}`) },
		func() (int, []byte) {
			return websocket.TextMessage, []byte(`{"type":"pull","cursor":"` + base64.RawURLEncoding.EncodeToString(randomBytes(1+rng.IntN(300))) + `"}`)
		},
		func() (int, []byte) {
			c, _ := json.Marshal(map[string]any{"v": 1, "s": "x", "l": "1:999999999999:", "h": "5:4:3", "t": -1})
			return websocket.TextMessage, []byte(`{"type":"pull","cursor":"` + base64.RawURLEncoding.EncodeToString(c) + `"}`)
		},
		func() (int, []byte) {
			return websocket.TextMessage, []byte(`{"type":"verify","count":"many","checksum":7}`)
		},
		func() (int, []byte) {
			return websocket.TextMessage, []byte(`{"type":"hello","protocol":1,"deviceId":"x","schemaVersion":1}`)
		},
		func() (int, []byte) { return websocket.TextMessage, []byte(`{"type":"welcome","serverTime":1}`) },
		func() (int, []byte) {
			b, _ := json.Marshal(map[string]any{"type": "push", "batchId": "weird", "ops": []any{
				op(map[string]any{"period": 1e300, "date": "2026-02-30", "subject": strings.Repeat("长", 5000)}),
				op(map[string]any{"topic": map[string]any{"nested": []any{1, 2}}, "exchangeId": "'; DROP TABLE lessons; --"}),
				map[string]any{"opId": "", "kind": "explode", "entity": "nothing", "id": "../../etc/passwd", "hlc": "yesterday"},
				op(map[string]any{"unknownField": true, "period": -3}),
			}})
			return websocket.TextMessage, b
		},
		func() (int, []byte) {
			b, _ := json.Marshal(map[string]any{"type": "push", "batchId": "b", "ops": []any{op("not an object")}})
			return websocket.TextMessage, b
		},
		func() (int, []byte) { return websocket.TextMessage, []byte("{\"type\":\"ping\",\"x\":\"\x00\xff\"}") },
		func() (int, []byte) {
			// NUL characters, which PostgreSQL cannot store, everywhere in an op: they
			// must not fail the batch (it would be resent forever).
			return websocket.TextMessage, []byte(`{"type":"push","batchId":"nul","ops":[{"opId":"` + uuid.NewString() + `\u0000","kind":"upsert\u0000",` +
				`"entity":"lesson\u0000","id":"x\u0000","hlc":"1\u0000","fields":{"topic\u0000":"a\u0000b"}}]}`)
		},
	}
	if i < len(cases) {
		return cases[i]() // each kind once, then at random
	}
	return cases[rng.IntN(len(cases))]()
}
