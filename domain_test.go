package jiaoliu_test

import (
	"encoding/json"
	"testing"

	"github.com/jiaoliu/jiaoliu"
)

func TestMergeLastWriterWinsPerField(t *testing.T) {
	cur := jiaoliu.Record{"topic": "a", "notes": "x", "period": int64(3)}
	clock := map[string]string{"topic": "0000000000002-0000-b", "notes": "0000000000001-0000-a", "period": "0000000000001-0000-a"}
	in := jiaoliu.Record{"topic": "mine", "notes": "mine", "period": int64(3)}
	set, lost := jiaoliu.Merge(cur, clock, in, "0000000000001-ffff-a")
	// topic: the op is older → lost; notes and period: the op is newer → set (period
	// equal, so set but no conflict either way).
	if _, ok := set["topic"]; ok || len(lost) != 1 || lost[0] != "topic" {
		t.Fatalf("set=%v lost=%v", set, lost)
	}
	if set["notes"] != "mine" || clock["notes"] != "0000000000001-ffff-a" || clock["topic"] != "0000000000002-0000-b" {
		t.Fatalf("set=%v clock=%v", set, clock)
	}
	// An equal HLC is the same write again: it changes nothing and loses nothing.
	set, lost = jiaoliu.Merge(jiaoliu.Record{"topic": "a"}, map[string]string{"topic": "0000000000005-0000-a"}, jiaoliu.Record{"topic": "a"}, "0000000000005-0000-a")
	if len(set) != 0 || len(lost) != 0 {
		t.Fatalf("replay of the same write: set=%v lost=%v", set, lost)
	}
	// Node ids break ties between equal wall times and counters.
	clock = map[string]string{"topic": "0000000000005-0000-a"}
	set, _ = jiaoliu.Merge(jiaoliu.Record{"topic": "a"}, clock, jiaoliu.Record{"topic": "b"}, "0000000000005-0000-b")
	if set["topic"] != "b" {
		t.Fatalf("tie-break by node: set=%v", set)
	}
}

func TestMergeIsOrderIndependent(t *testing.T) {
	ops := []struct {
		hlc    string
		fields jiaoliu.Record
	}{
		{"0000000000003-0000-a", jiaoliu.Record{"topic": "t3", "notes": "n3"}},
		{"0000000000001-0000-b", jiaoliu.Record{"topic": "t1", "minutes": int64(40)}},
		{"0000000000002-0000-c", jiaoliu.Record{"notes": "n2", "minutes": int64(45)}},
	}
	final := func(order []int) jiaoliu.Record {
		rec, clock := jiaoliu.Record{}, map[string]string{}
		for _, i := range order {
			set, _ := jiaoliu.Merge(rec, clock, ops[i].fields, ops[i].hlc)
			for k, v := range set {
				rec[k] = v
			}
		}
		return rec
	}
	want := final([]int{0, 1, 2})
	for _, order := range [][]int{{0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}} {
		got := final(order)
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("order %v: %s=%v, want %v", order, k, got[k], v)
			}
		}
	}
	if want["topic"] != "t3" || want["notes"] != "n3" || want["minutes"] != int64(45) {
		t.Fatalf("final=%v", want)
	}
}

func TestParseFields(t *testing.T) {
	def := jiaoliu.LessonEntity
	rec, err := def.Parse(map[string]any{"period": json.Number("3"), "date": "2026-10-12", "kind": "OPEN", "subject": " 数学 ", "version": "ignored"})
	if err != nil {
		t.Fatal(err)
	}
	if rec["period"] != int64(3) || rec.Date("date").String() != "2026-10-12" || rec["subject"] != "数学" {
		t.Fatalf("rec=%v", rec)
	}
	if _, ok := rec["version"]; ok {
		t.Fatal("server-owned field parsed")
	}
	_, err = def.Parse(map[string]any{"period": 2.5, "date": "12/10/2026", "kind": "NAP", "exchangeId": "x", "colour": "red"})
	fields := jiaoliu.ErrorFields(err)
	for _, f := range []string{"period", "date", "kind", "exchangeId", "colour"} {
		if fields[f] == "" {
			t.Fatalf("no error for %s: %v", f, fields)
		}
	}
	if jiaoliu.ErrorCode(err) != jiaoliu.EINVALID {
		t.Fatalf("code=%s", jiaoliu.ErrorCode(err))
	}
}

func TestExchangeTransitions(t *testing.T) {
	for _, tc := range []struct {
		from, to jiaoliu.ExchangeStatus
		ok       bool
	}{
		{jiaoliu.StatusProposed, jiaoliu.StatusApproved, true},
		{jiaoliu.StatusApproved, jiaoliu.StatusPublished, true},
		{jiaoliu.StatusPublished, jiaoliu.StatusActive, true},
		{jiaoliu.StatusActive, jiaoliu.StatusCompleted, true},
		{jiaoliu.StatusProposed, jiaoliu.StatusActive, false},
		{jiaoliu.StatusCompleted, jiaoliu.StatusActive, false},
		{jiaoliu.StatusCancelled, jiaoliu.StatusProposed, false},
		{jiaoliu.StatusDeferred, jiaoliu.StatusProposed, true},
		{jiaoliu.StatusActive, jiaoliu.StatusActive, true},
	} {
		if got := jiaoliu.CanTransition(tc.from, tc.to); got != tc.ok {
			t.Errorf("%s → %s: %v, want %v", tc.from, tc.to, got, tc.ok)
		}
	}
}

func TestDatesAndAcademicYears(t *testing.T) {
	ref := jiaoliu.AcademicYear("2026-2027").ReferenceDate()
	if ref.String() != "2026-09-01" {
		t.Fatalf("reference=%s", ref)
	}
	for birth, age := range map[string]int{"1976-09-01": 50, "1976-09-02": 49, "1980-02-29": 46} {
		if got := ref.FullYearsSince(jiaoliu.MustDate(birth)); got != age {
			t.Errorf("age of %s on %s = %d, want %d", birth, ref, got, age)
		}
	}
	if got := jiaoliu.AcademicYearOf(jiaoliu.MustDate("2027-08-31")); got != "2026-2027" {
		t.Fatalf("year of 2027-08-31 = %s", got)
	}
	if got := jiaoliu.AcademicYearOf(jiaoliu.MustDate("2027-09-01")); got != "2027-2028" {
		t.Fatalf("year of 2027-09-01 = %s", got)
	}
	if got := jiaoliu.AcademicYear("2026-2027").Next(); got != "2027-2028" {
		t.Fatalf("the year after 2026-2027 = %s", got)
	}
	if got := jiaoliu.AcademicYear("1999-2000").Next(); got != "2000-2001" {
		t.Fatalf("the year after 1999-2000 = %s", got)
	}
	for _, bad := range []string{"2026-2028", "2026/2027", "26-27", ""} {
		if _, err := jiaoliu.ParseAcademicYear(bad); err == nil {
			t.Errorf("ParseAcademicYear(%q) accepted", bad)
		}
	}
	var d jiaoliu.Date
	if err := d.UnmarshalGQL("2026-02-30"); jiaoliu.ErrorCode(err) != jiaoliu.EINVALID {
		t.Fatalf("bad date: %v", err)
	}
}

func TestEntityDefinitionsAreConsistent(t *testing.T) {
	for _, name := range jiaoliu.EntityOrder {
		def := jiaoliu.Entities[name]
		if def.Table == "" || def.Type == "" || def.Validate == nil {
			t.Errorf("%s: incomplete definition", name)
		}
		for _, k := range def.NaturalKey {
			if f, ok := def.Field(k); !ok || !f.Required {
				t.Errorf("%s: natural key field %s must be a required field", name, k)
			}
		}
		for _, f := range def.Fields {
			if f.Kind == jiaoliu.KindID && f.Ref != "" && jiaoliu.Entities[f.Ref] == nil {
				t.Errorf("%s.%s refers to unknown entity %s", name, f.Name, f.Ref)
			}
			if f.Kind == jiaoliu.KindEnum && len(jiaoliu.Enums[f.Enum]) == 0 {
				t.Errorf("%s.%s: unknown enum %s", name, f.Name, f.Enum)
			}
		}
	}
}
