package hub_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/hub"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, postgres.Migrate, postgres.CheckScopeCopies)) }

func poked(s *hub.Subscription) bool {
	select {
	case <-s.Pokes():
		return true
	default:
		return false
	}
}

func waitPoke(tb testing.TB, s *hub.Subscription) {
	tb.Helper()
	select {
	case <-s.Pokes():
	case <-time.After(5 * time.Second):
		tb.Fatal("no poke")
	}
}

func TestChangedPokesByToken(t *testing.T) {
	h := hub.New(nil)
	teacher := h.Subscribe("u1", "d1", []string{"t:1", "ps:a"})
	admin := h.Subscribe("u2", "d2", []string{"s:a"})
	other := h.Subscribe("u3", "d3", []string{"s:b"})
	root := h.Subscribe("u4", "d4", []string{hub.AllTokens})
	defer root.Close()
	defer teacher.Close()
	defer admin.Close()
	defer other.Close()

	h.Changed("d:x s:a t:1")
	if !poked(teacher) || !poked(admin) || poked(other) || !poked(root) {
		t.Fatal("wrong subscriptions poked")
	}
	h.Changed("*")
	if !poked(teacher) || !poked(admin) || !poked(other) {
		t.Fatal(`"*" does not poke everyone`)
	}
}

func TestPokesCoalesce(t *testing.T) {
	h := hub.New(nil)
	s := h.Subscribe("u", "d", []string{"t:1"})
	defer s.Close()
	for i := 0; i < 100; i++ {
		h.Changed("t:1")
	}
	if !poked(s) {
		t.Fatal("no poke")
	}
	if poked(s) {
		t.Fatal("more than one pending poke")
	}
}

func TestSetTokensAndClose(t *testing.T) {
	h := hub.New(nil)
	s := h.Subscribe("u", "d", []string{"t:1"})
	s.SetTokens([]string{"t:1", "ps:new"})
	h.Changed("ps:new")
	if !poked(s) {
		t.Fatal("not poked for a new token")
	}
	s.SetTokens([]string{"t:1"})
	h.Changed("ps:new")
	if poked(s) {
		t.Fatal("poked for a dropped token")
	}
	s.Close()
	s.Close()
	h.Changed("t:1")
	if poked(s) || h.Len() != 0 {
		t.Fatal("a closed subscription is still poked")
	}
}

func TestRevokedAndLost(t *testing.T) {
	h := hub.New(nil)
	a := h.Subscribe("u1", "AAAA-1", []string{"t:1"})
	b := h.Subscribe("u1", "bbbb-2", []string{"t:1"})
	c := h.Subscribe("u2", "cccc-3", []string{"s:x"})
	h.Revoked("aaaa-1")
	select {
	case <-a.Checks():
	default:
		t.Fatal("revoked device not asked to re-authenticate")
	}
	if !a.TakeRecheck() || a.TakeRecheck() {
		t.Fatal("recheck flag not set once")
	}
	h.Revoked("user:u1")
	if !b.TakeRecheck() || c.TakeRecheck() {
		t.Fatal("user revocation reached the wrong devices")
	}
	h.Lost()
	for _, s := range []*hub.Subscription{a, b, c} {
		if !poked(s) || !s.TakeRecheck() {
			t.Fatal("Lost does not poke and recheck everyone")
		}
	}
}

// TestSubscribeFunc: a subscription with a function is told of pokes and revocations
// by calls, as a channel subscription is through its channels, also when its sets of
// keys grow past a slice and shrink again; after Close it is not called again.
func TestSubscribeFunc(t *testing.T) {
	h := hub.New(nil)
	type calls struct{ pokes, checks int }
	got := map[int]*calls{}
	var subs []*hub.Subscription
	for i := range 20 { // more than a small set holds, on one user and one token
		got[i] = &calls{}
		c := got[i]
		tokens := []string{"d:1", "t:" + string(rune('a'+i))}
		subs = append(subs, h.SubscribeFunc("u1", "dev-"+string(rune('a'+i)), tokens, func(check bool) {
			if check {
				c.checks++
			} else {
				c.pokes++
			}
		}))
	}
	other := h.Subscribe("u2", "dev-z", []string{"s:9"})
	defer other.Close()
	if subs[0].Pokes() != nil || subs[0].Checks() != nil {
		t.Fatal("a function subscription has channels")
	}
	h.Changed("t:c s:9")
	if got[2].pokes != 1 || got[3].pokes != 0 || !poked(other) {
		t.Fatalf("poke by token: %+v %+v", *got[2], *got[3])
	}
	h.Changed("d:1")
	for i, c := range got {
		if c.pokes != 1+b2i(i == 2) {
			t.Fatalf("sub %d: %d pokes after a district change", i, c.pokes)
		}
	}
	h.Revoked("device:DEV-E")
	if got[4].checks != 1 || !subs[4].TakeRecheck() || got[5].checks != 0 {
		t.Fatal("device revocation not delivered to its subscription alone")
	}
	for _, s := range subs[:15] {
		s.Close()
	}
	h.Revoked("user:u1")
	for i, c := range got {
		if want := b2i(i >= 15) + b2i(i == 4); c.checks != want {
			t.Fatalf("sub %d: %d checks, want %d", i, c.checks, want)
		}
	}
	before := *got[16]
	h.Lost()
	if got[16].pokes != before.pokes+1 || !subs[16].TakeRecheck() || got[0].pokes != 1 {
		t.Fatal("Lost does not poke the open function subscriptions alone")
	}
	for _, s := range subs[15:] {
		s.Close()
	}
	if h.Len() != 1 {
		t.Fatalf("%d subscriptions left, want 1", h.Len())
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestListen(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	db := pgtestDB(t, dsn)
	h := hub.New(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Listen(ctx, dsn) }()
	select {
	case <-h.Ready():
	case err := <-done:
		t.Fatalf("listen: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not listening")
	}
	s := h.Subscribe("u", "dev-1", []string{"t:1"})
	other := h.Subscribe("u2", "dev-2", []string{"t:2"})
	poked(s)
	poked(other)

	if _, err := db.Exec(`BEGIN; SELECT pg_notify('sync_changes', 't:1 s:9'); COMMIT`); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, s)
	if poked(other) {
		t.Fatal("another user poked")
	}
	if _, err := db.Exec(`SELECT pg_notify('device_revoked', 'device:dev-2')`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-other.Checks():
	case <-time.After(5 * time.Second):
		t.Fatal("no re-authentication request")
	}
	// Kill the listener's connection: after reconnecting, everyone is poked.
	if _, err := db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'`); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, s)
	waitPoke(t, other)
	if !other.TakeRecheck() {
		t.Fatal("no recheck after lost notifications")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("listen returned %v", err)
	}
}

func pgtestDB(tb testing.TB, dsn string) *sqlx.DB {
	tb.Helper()
	db, err := sqlx.Connect("postgres", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
