package hub

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestEncodeFitsANotification checks that an event too large for pg_notify is cut to
// fit, dropping names and lists first and scopes last (which only narrows who sees it).
func TestEncodeFitsANotification(t *testing.T) {
	p := NewPublisher(nil, "n", nil)
	ev := Event{ID: uuid.NewString(), Kind: KindConflict, DeviceName: strings.Repeat("长", 100), Fields: []string{"topic"}}
	if b := p.encode(&ev); !strings.Contains(b, "topic") {
		t.Fatalf("a small event was shortened: %s", b)
	}
	for i := 0; i < 400; i++ {
		ev.Scopes = append(ev.Scopes, "s:"+uuid.NewString())
	}
	b := p.encode(&ev)
	if len(b) > MaxPayloadBytes {
		t.Fatalf("payload of %d bytes", len(b))
	}
	var got Event
	if err := json.Unmarshal([]byte(b), &got); err != nil {
		t.Fatal(err)
	}
	if got.DeviceName != "" || got.Fields != nil || len(got.Scopes) == 0 || len(got.Scopes) >= 400 || got.Scopes[0] != ev.Scopes[0] {
		t.Fatalf("shortened event: name %q, fields %v, %d scopes", got.DeviceName, got.Fields, len(got.Scopes))
	}
}
