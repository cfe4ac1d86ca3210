package postgres

import (
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu"
)

func TestPutSizedBoundsTheItemsKept(t *testing.T) {
	entry := func(n int) *pairsEntry { return &pairsEntry{list: make([]*jiaoliu.PairProgress, n)} }
	total := func(m map[string]*pairsEntry) int {
		n := 0
		for _, e := range m {
			n += 1 + e.size()
		}
		return n
	}
	var c viewCache
	var m map[string]*pairsEntry
	// Days of a district (2,000 items each): at most maxDayItems kept, the newest always.
	for day := range 20 {
		k := string(rune('a' + day))
		putSized(&c, &m, k, entry(2000))
		if m[k] == nil || total(m) > maxDayItems {
			t.Fatalf("after day %d: %d entries, %d items, newest kept %v", day, len(m), total(m), m[k] != nil)
		}
	}
	if len(m) != maxDayItems/2001 {
		t.Fatalf("%d district days kept, want %d", len(m), maxDayItems/2001)
	}
	// Small views (every school's of a county) fit by the hundred.
	m = nil
	for i := range 300 {
		putSized(&c, &m, "school"+string(rune(i)), entry(7))
	}
	if len(m) != 300 {
		t.Fatalf("%d school views kept of 300", len(m))
	}
	// The entries served longest ago go first: today's, served again while other days
	// were asked, stays.
	m = nil
	putSized(&c, &m, "today", entry(2000))
	for day := range 10 {
		putSized(&c, &m, string(rune('a'+day)), entry(2000))
		if m["today"] == nil {
			t.Fatalf("today's entry pushed out by day %d", day)
		}
		c.touch(m["today"])
	}
	for _, k := range []string{"today", "h", "i", "j"} {
		if m[k] == nil || len(m) != 4 {
			t.Fatalf("kept %d entries, not today's and the latest days (%s missing)", len(m), k)
		}
	}
	// Replacing an entry does not count it twice; one larger than the bound is kept alone.
	putSized(&c, &m, "j", entry(2000))
	if len(m) != maxDayItems/2001 {
		t.Fatalf("%d entries after replacing one, want %d", len(m), maxDayItems/2001)
	}
	putSized(&c, &m, "county", entry(3*maxDayItems))
	if len(m) != 1 || m["county"] == nil {
		t.Fatalf("%d entries after one larger than the bound", len(m))
	}
}

func TestInChunksCoversEveryItemOnce(t *testing.T) {
	for _, n := range []int{0, 1, chunkSize - 1, 2*chunkSize - 1, 2 * chunkSize, 2000, 2001} {
		seen := make([]int32, n)
		var mu sync.Mutex
		chunks := 0
		if err := inChunks(n, func(lo, hi int) error {
			mu.Lock()
			chunks++
			mu.Unlock()
			for i := lo; i < hi; i++ {
				seen[i]++ // each chunk writes only its own items
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("n=%d: item %d computed %d times", n, i, c)
			}
		}
		if want := max(1, min(runtime.GOMAXPROCS(0), n/chunkSize)); chunks != want {
			t.Fatalf("n=%d: %d chunks, want %d", n, chunks, want)
		}
	}
	// The first failing chunk's error, whichever finishes first.
	first, second := errors.New("first"), errors.New("second")
	err := inChunks(4*chunkSize, func(lo, hi int) error {
		if lo == 0 {
			time.Sleep(10 * time.Millisecond)
			return first
		}
		return second
	})
	if err != first {
		t.Fatalf("error %v, want the first chunk's", err)
	}
}
