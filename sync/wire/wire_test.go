package wire_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/sync/wire"
)

var examples = []string{
	`{"type":"hello","protocol":1,"deviceId":"d-1","token":"t","schemaVersion":3,"cursor":"c"}`,
	`{"type":"welcome","serverTime":1767225600000,"schemaVersion":4,"minSchemaVersion":2,"maxBatch":500,"maxMessageBytes":1048576}`,
	`{"type":"push","batchId":"b-17","ops":[{"opId":"o1","kind":"upsert","entity":"lesson","id":"i","hlc":"1767225600000-0000-tab-7","fields":{"period":3,"date":"2026-10-12"}},{"opId":"o2","kind":"delete","entity":"attendance","id":"j","hlc":"h"}]}`,
	`{"type":"ack","batchId":"b-17","results":[{"opId":"o1","status":"applied","version":"12"},{"opId":"o2","status":"merged","canonicalId":"c"},{"opId":"o3","status":"rejected","code":"validation_failed","message":"m","fields":{"period":"must be 1..12"}}]}`,
	`{"type":"pull","cursor":"c","limit":500}`,
	`{"type":"pull"}`,
	`{"type":"changes","records":[{"entity":"lesson","id":"i","version":"3","deleted":false,"fields":{"period":3}}],"cursor":"c","more":false}`,
	`{"type":"verify"}`,
	`{"type":"checksum","cursor":"c","count":1234,"checksum":"0123456789abcdef"}`,
	`{"type":"ping"}`,
	`{"type":"pong"}`,
	`{"type":"poke","cursor":"c"}`,
	`{"type":"reset","reason":"scope_changed"}`,
	`{"type":"error","code":"bad_message","message":"m"}`,
}

func TestDecodeExamples(t *testing.T) {
	for _, ex := range examples {
		m, err := wire.Decode([]byte(ex))
		if err != nil {
			t.Fatalf("%s: %v", ex, err)
		}
		var typ struct{ Type string }
		_ = json.Unmarshal([]byte(ex), &typ)
		if got, want := m.MessageType(), typ.Type; got != want {
			t.Fatalf("type=%q, want %q", got, want)
		}
		// What Encode writes decodes to the same message.
		b, err := wire.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		again, err := wire.Decode(b)
		if err != nil {
			t.Fatalf("re-decode %s: %v", b, err)
		}
		b2, _ := wire.Encode(again)
		if string(b) != string(b2) {
			t.Fatalf("round trip:\n%s\n%s", b, b2)
		}
	}
}

func TestDecodePush(t *testing.T) {
	m, err := wire.Decode([]byte(examples[2]))
	if err != nil {
		t.Fatal(err)
	}
	p := m.(*wire.Push)
	if got, want := len(p.Ops), 2; got != want {
		t.Fatalf("ops=%d, want %d", got, want)
	}
	if got, want := p.Ops[0].Fields["period"], any(json.Number("3")); got != want {
		t.Fatalf("period=%#v, want %#v", got, want)
	}
	if p.Ops[1].Kind != jiaoliu.OpDelete {
		t.Fatalf("op 1=%+v", p.Ops[1])
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"invalid JSON", `{"type":`, "invalid JSON"},
		{"not an object", `[1,2]`, "invalid JSON"},
		{"null", `null`, "JSON object"},
		{"trailing data", `{"type":"ping"} x`, "invalid JSON"},
		{"no type", `{"protocol":1}`, `"type"`},
		{"type not a string", `{"type":1}`, `"type" must be a string`},
		{"unknown type", `{"type":"dance"}`, "unknown message type"},
		{"missing field", `{"type":"hello","protocol":1,"schemaVersion":1}`, `"deviceId"`},
		{"null field", `{"type":"hello","protocol":1,"deviceId":null,"schemaVersion":1}`, `"deviceId"`},
		{"wrong type", `{"type":"hello","protocol":"1","deviceId":"d","schemaVersion":1}`, `"protocol" must be an integer`},
		{"ops not an array", `{"type":"push","batchId":"b","ops":{}}`, "ops"},
		{"op not an object", `{"type":"push","batchId":"b","ops":[null]}`, "ops[0] must be an object"},
		{"op field type", `{"type":"push","batchId":"b","ops":[{"opId":5}]}`, "must be a string"},
		{"limit type", `{"type":"pull","limit":"x"}`, "must be an integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := wire.Decode([]byte(tc.in))
			var we *wire.Error
			if !errors.As(err, &we) || we.Code != wire.CodeBadMessage {
				t.Fatalf("err=%v, want bad_message", err)
			}
			if !strings.Contains(we.Message, tc.want) {
				t.Fatalf("message=%q, want it to contain %q", we.Message, tc.want)
			}
		})
	}
}

func TestUnknownFieldsAreIgnored(t *testing.T) {
	m, err := wire.Decode([]byte(`{"type":"pull","cursor":"c","futureField":{"x":[1,2]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.(*wire.Pull).Cursor; got != "c" {
		t.Fatalf("cursor=%q", got)
	}
}

func TestEncode(t *testing.T) {
	if got, want := string(wire.MustEncode(&wire.Ping{})), `{"type":"ping"}`; got != want {
		t.Fatalf("ping=%s, want %s", got, want)
	}
	if got, want := string(wire.MustEncode(&wire.Reset{Reason: wire.ReasonScopeChanged})), `{"type":"reset","reason":"scope_changed"}`; got != want {
		t.Fatalf("reset=%s, want %s", got, want)
	}
}

func FuzzDecode(f *testing.F) {
	for _, ex := range examples {
		f.Add([]byte(ex))
	}
	for _, s := range []string{``, `{}`, `null`, `{"type":null}`, `{"type":"push","batchId":"b","ops":[{"fields":{"a":1e999}}]}`,
		`{"type":"push","batchId":"b","ops":[{"fields":[]}]}`, `{"type":"changes","records":[{}],"cursor":"","more":true}`, "\xff\xfe"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := wire.Decode(data)
		if err != nil {
			var we *wire.Error
			if !errors.As(err, &we) || we.Code != wire.CodeBadMessage {
				t.Fatalf("error %v is not bad_message", err)
			}
			if m != nil {
				t.Fatal("a message and an error")
			}
			return
		}
		b, err := wire.Encode(m)
		if err != nil {
			// Only op field values can fail to encode (json.Number is validated on decode).
			t.Fatalf("encode %T: %v", m, err)
		}
		again, err := wire.Decode(b)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", b, err)
		}
		if again.MessageType() != m.MessageType() {
			t.Fatalf("type %s became %s", m.MessageType(), again.MessageType())
		}
	})
}

// appendedChanges writes its body itself (wire.BodyAppender).
type appendedChanges struct{ wire.Changes }

func (c *appendedChanges) AppendBody(b []byte) []byte {
	return append(b, `"records":[{"entity":"lesson","id":"x","version":"1","deleted":false,"fields":{"period":3}}],"cursor":"c","more":true`...)
}
func (c *appendedChanges) BodySize() int { return 100 }

func TestEncodeBodyAppender(t *testing.T) {
	data, err := wire.Encode(&appendedChanges{wire.Changes{}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.Decode(data)
	if err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	c, ok := m.(*wire.Changes)
	if !ok || len(c.Records) != 1 || c.Records[0].Entity != "lesson" || c.Cursor != "c" || !c.More {
		t.Fatalf("decoded %#v from %s", m, data)
	}
}
