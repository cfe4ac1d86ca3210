package syncserver

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

// pageStore serves pages of one record each, cursors "p1", "p2" … up to pages, and
// tells reads of every Pull ("<teacher> <cursor>").
type pageStore struct {
	*fakeStore
	pages   int
	reads   chan string
	panicAt string // a cursor whose page panics
}

func (p *pageStore) Pull(ctx context.Context, cursor string, limit int) ([]postgres.PulledRecord, string, bool, error) {
	p.reads <- jiaoliu.ActorFromContext(ctx).TeacherID + " " + cursor
	if cursor != "" && cursor == p.panicAt {
		panic("page " + cursor + " exploded")
	}
	n := 0
	if cursor != "" {
		n, _ = strconv.Atoi(strings.TrimPrefix(cursor, "p"))
	}
	next := fmt.Sprintf("p%d", n+1)
	id := fmt.Sprintf("r%d", n)
	rec := postgres.PulledRecord{Entity: "lesson", ID: id, Version: "1", Cursor: next,
		JSON: []byte(`{"entity":"lesson","id":"` + id + `","version":"1","deleted":false,"fields":{}}`)}
	return []postgres.PulledRecord{rec}, next, n+1 < p.pages, nil
}

// TestReadAhead checks when a session reads the next page before the device asks
// for it, and that a page read ahead answers only the pull it was read for.
func TestReadAhead(t *testing.T) {
	setup := func(t *testing.T, configure func(*Server)) (*Server, *pageStore, string) {
		st := &pageStore{fakeStore: &fakeStore{}, pages: 4, reads: make(chan string, 100)}
		s, url := faultServer(t, nil, func(s *Server) {
			s.store, s.auth, s.RateLimit = st, teachers(4), 0
			if configure != nil {
				configure(s)
			}
		})
		return s, st, url
	}
	// read waits for the store's next read, which must be want.
	read := func(t *testing.T, st *pageStore, want string) {
		t.Helper()
		select {
		case got := <-st.reads:
			if got != want {
				t.Fatalf("read %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no read of %q", want)
		}
	}
	noRead := func(t *testing.T, st *pageStore) {
		t.Helper()
		select {
		case got := <-st.reads:
			t.Fatalf("read %q, want none", got)
		case <-time.After(200 * time.Millisecond):
		}
	}
	pull := func(t *testing.T, d *device, cursor string) *wire.Changes {
		t.Helper()
		if err := d.ws.WriteJSON(map[string]any{"type": "pull", "cursor": cursor, "limit": 100}); err != nil {
			t.Fatal(err)
		}
		return next[*wire.Changes](t, d)
	}

	// begin pulls the first page on a new device and waits for the second to be read ahead.
	begin := func(t *testing.T, configure func(*Server)) (*Server, *pageStore, *device) {
		s, st, url := setup(t, configure)
		d := dialDevice(t, url, 0)
		pull(t, d, "")
		read(t, st, "t0 ")
		read(t, st, "t0 p1")
		return s, st, d
	}

	t.Run("each page after the one sent is read ahead and answers its pull", func(t *testing.T) {
		_, st, url := setup(t, nil)
		d := dialDevice(t, url, 0)
		for i, cursor := range []string{"", "p1", "p2", "p3"} {
			ch := pull(t, d, cursor)
			if i == 0 {
				read(t, st, "t0 ") // asked for
			}
			if want := fmt.Sprintf("p%d", i+1); ch.Cursor != want || ch.More != (i < 3) {
				t.Fatalf("page %d: cursor %q more %v", i, ch.Cursor, ch.More)
			}
			if ch.More {
				read(t, st, "t0 "+ch.Cursor) // before the device asks
			}
		}
		noRead(t, st) // none after the last page, and none twice
	})
	t.Run("any other message drops it", func(t *testing.T) {
		_, st, d := begin(t, nil)
		if err := d.ws.WriteJSON(map[string]any{"type": "ping"}); err != nil {
			t.Fatal(err)
		}
		next[*wire.Pong](t, d)
		pull(t, d, "p1")
		read(t, st, "t0 p1") // read again
	})
	t.Run("a pull of another page drops it", func(t *testing.T) {
		_, st, d := begin(t, nil)
		if ch := pull(t, d, ""); ch.Cursor != "p1" {
			t.Fatalf("cursor %q", ch.Cursor)
		}
		read(t, st, "t0 ")
	})
	t.Run("a changed scope drops it", func(t *testing.T) {
		s, st, d := begin(t, nil)
		st.mu.Lock()
		st.extra = map[string][]string{"t0": {"ps:s7"}}
		st.mu.Unlock()
		s.hub.Changed("t:t0")
		next[*wire.Reset](t, d)
		pull(t, d, "p1")
		read(t, st, "t0 p1") // read again, in the new scope
	})
	t.Run("a page not asked for in time is dropped", func(t *testing.T) {
		_, st, d := begin(t, func(s *Server) { s.ReadAheadWait = 50 * time.Millisecond })
		time.Sleep(300 * time.Millisecond)
		pull(t, d, "p1")
		read(t, st, "t0 p1")
	})
	t.Run("a store that panics reading ahead leaves the pull to be read again", func(t *testing.T) {
		_, st, url := setup(t, nil)
		st.panicAt = "p1"
		d := dialDevice(t, url, 0)
		pull(t, d, "")
		read(t, st, "t0 ")
		read(t, st, "t0 p1") // read ahead: panics, the server goes on
		if err := d.ws.WriteJSON(map[string]any{"type": "pull", "cursor": "p1", "limit": 100}); err != nil {
			t.Fatal(err)
		}
		read(t, st, "t0 p1") // read again, as without reading ahead
		if e := next[*wire.Error](t, d); e.Code != wire.CodeInternal {
			t.Fatalf("got %+v, want internal", e)
		}
		if err := d.ws.WriteJSON(map[string]any{"type": "ping"}); err != nil {
			t.Fatal(err)
		}
		next[*wire.Pong](t, d)
	})
	t.Run("off", func(t *testing.T) {
		_, st, url := setup(t, func(s *Server) { s.ReadAheadPages = 0 })
		d := dialDevice(t, url, 0)
		pull(t, d, "")
		read(t, st, "t0 ")
		noRead(t, st)
	})
	t.Run("at most ReadAheadPages at once", func(t *testing.T) {
		_, st, url := setup(t, func(s *Server) { s.ReadAheadPages = 1 })
		a, b := dialDevice(t, url, 0), dialDevice(t, url, 2)
		pull(t, a, "")
		read(t, st, "t0 ")
		read(t, st, "t0 p1") // a holds the only slot until it asks
		pull(t, b, "")
		read(t, st, "t1 ")
		noRead(t, st)
		pull(t, a, "p1") // the slot is given back, and taken again for a's page 2
		read(t, st, "t0 p2")
		pull(t, a, "p2")
		pull(t, a, "p3") // the last page: the slot is free
		read(t, st, "t0 p3")
		pull(t, b, "p1")
		read(t, st, "t1 p1")
		read(t, st, "t1 p2")
	})
}

// next waits for the device's next message other than a poke, which must be an M.
func next[M wire.Message](t *testing.T, d *device) M {
	t.Helper()
	var want M
	m := d.recv(t, fmt.Sprintf("%T", want), func(m wire.Message) bool { return m.MessageType() != wire.TypePoke })
	got, ok := m.(M)
	if !ok {
		t.Fatalf("got %+v, want %T", m, want)
	}
	return got
}
