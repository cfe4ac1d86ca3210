package jiaoliu_test

import (
	"bytes"
	"encoding/json"
	"sort"
	"testing"

	"github.com/jiaoliu/jiaoliu"
)

// FuzzParseFields feeds arbitrary JSON objects, decoded as the sync server decodes an
// op's fields (numbers kept as json.Number), to every entity's field parser: the
// decoder of everything a device or a form writes. It must never panic, must refuse
// bad values with per-field messages only (an op is rejected and stored, never lost
// to an error of another kind), and must give every accepted field a canonical value
// that parses to itself again. Run longer with
//
//	go test . -run '^$' -fuzz FuzzParseFields -fuzztime 30s
func FuzzParseFields(f *testing.F) {
	for _, s := range []string{
		`{"exchangeId":"9b2f1c3e-0000-4000-8000-000000000001","date":"2026-10-12","period":3,"subject":"数学","kind":"DEMONSTRATION"}`,
		`{"period":1e300,"minutes":-1,"date":"2026-02-30","kind":"OPEN","openLevel":null}`,
		`{"period":3.5,"date":"12/10/2026","subject":"","notes":null,"topic":[1,2]}`,
		`{"status":"PRESENT","note":"\u0000","exchangeId":"not-a-uuid","id":"x","version":"7"}`,
		`{"subjects":["数学",3,null],"rating":"5","critique":"yes","ruralAllowance":1e999}`,
		`{"birthDate":"1985-03-02T00:00:00Z","gender":"OTHER","unknownField":{"a":{"b":[]}}}`,
		`{}`,
	} {
		for _, e := range entityNames() {
			f.Add(e, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, entity string, data []byte) {
		def := jiaoliu.Entities[entity]
		if def == nil {
			return
		}
		var raw map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil || raw == nil {
			return
		}
		rec, err := def.Parse(raw)
		if err != nil {
			if jiaoliu.ErrorCode(err) != jiaoliu.EINVALID || len(jiaoliu.ErrorFields(err)) == 0 {
				t.Fatalf("%s.Parse(%s): error %v is not a field error", entity, data, err)
			}
			return
		}
		// Canonical values parse to themselves.
		again, err := def.Parse(map[string]any(rec))
		if err != nil {
			t.Fatalf("%s: canonical %v does not parse again: %v", entity, rec, err)
		}
		for name, v := range rec {
			if !jiaoliu.FieldValueEqual(v, again[name]) {
				t.Fatalf("%s.%s: %#v parses again as %#v", entity, name, v, again[name])
			}
		}
	})
}

func entityNames() []string {
	var names []string
	for name := range jiaoliu.Entities {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
