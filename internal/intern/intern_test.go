package intern

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

func TestStringSharesOneCopy(t *testing.T) {
	a := strings.Repeat("pd:", 1) + "0196f0c2-0000-7000-8000-000000000001"
	b := strings.Clone(a)
	if unsafe.StringData(a) == unsafe.StringData(b) {
		t.Fatal("the test's strings share their bytes already")
	}
	ia, ib := String(a), String(b)
	if ia != a || ib != b {
		t.Fatalf("String changed the value: %q %q", ia, ib)
	}
	if unsafe.StringData(ia) != unsafe.StringData(ib) {
		t.Error("equal strings interned to different copies")
	}
	ss := Strings([]string{strings.Clone(a), "other"})
	if unsafe.StringData(ss[0]) != unsafe.StringData(ia) || ss[1] != "other" {
		t.Errorf("Strings: %q", ss)
	}
	if String("") != "" {
		t.Error("empty string")
	}
}

func TestTableStartsOverWhenFull(t *testing.T) {
	table.Lock()
	clear(table.m)
	table.Unlock()
	for i := 0; i < maxStrings+10; i++ {
		String("x" + strconv.Itoa(i))
	}
	table.RLock()
	n := len(table.m)
	table.RUnlock()
	if n > maxStrings {
		t.Errorf("table holds %d strings, more than %d", n, maxStrings)
	}
	if n != 10 {
		t.Errorf("after starting over the table holds %d strings, want the 10 added since", n)
	}
}

func BenchmarkStringHit(b *testing.B) {
	s := String("t:0196f0c2-0000-7000-8000-000000000001")
	c := strings.Clone(s)
	b.ReportAllocs()
	for b.Loop() {
		if String(c) != s {
			b.Fatal("miss")
		}
	}
}

// TestStringConcurrently: sessions connect at once; every caller of a value gets the
// same copy (run with -race, as .ci/run does).
func TestStringConcurrently(t *testing.T) {
	const workers, values = 8, 200
	got := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range values {
				got[w] = append(got[w], String(strings.Clone("pd:"+strconv.Itoa(i))))
			}
		})
	}
	wg.Wait()
	for w := 1; w < workers; w++ {
		for i := range values {
			if got[w][i] != got[0][i] || unsafe.StringData(got[w][i]) != unsafe.StringData(got[0][i]) {
				t.Fatalf("value %d: worker %d got another copy", i, w)
			}
		}
	}
}
