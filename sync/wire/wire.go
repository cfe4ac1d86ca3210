// Package wire defines the messages of the sync protocol v1 (docs/sync-protocol.md)
// and their strict decoding: one JSON object per message, with a "type". Unknown fields
// are ignored; an unknown type, invalid JSON, a field of the wrong JSON type or a
// missing required field is a bad_message error. The package has no dependencies on
// the server and is shared by the server and the Go client.
package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jiaoliu/jiaoliu"
)

// ProtocolVersion is the version of the protocol this package implements.
const ProtocolVersion = 1

// Message types.
const (
	TypeHello    = "hello"
	TypeWelcome  = "welcome"
	TypePush     = "push"
	TypeAck      = "ack"
	TypePull     = "pull"
	TypeChanges  = "changes"
	TypeVerify   = "verify"
	TypeChecksum = "checksum"
	TypePing     = "ping"
	TypePong     = "pong"
	TypePoke     = "poke"
	TypeReset    = "reset"
	TypeError    = "error"
)

// Error codes of the error message.
const (
	CodeBadMessage      = "bad_message"
	CodeUnauthorized    = "unauthorized"
	CodeProtocolVersion = "protocol_version"
	CodeSchemaTooOld    = "schema_too_old"
	CodeTooLarge        = "too_large"
	CodeBatchTooLarge   = "batch_too_large"
	CodeRateLimited     = "rate_limited"
	CodeInternal        = "internal"
)

// Reset reasons.
const (
	// ReasonScopeChanged: what the user may read changed; pull from the start.
	ReasonScopeChanged = "scope_changed"
	// ReasonInvalidCursor: the cursor is not one this server can continue from (it is
	// malformed, or from before a database restore); pull from the start.
	ReasonInvalidCursor = "invalid_cursor"
)

// Message is one message of the protocol.
type Message interface {
	// MessageType returns the message's "type".
	MessageType() string
}

// Hello opens a session (client → server).
type Hello struct {
	Protocol      int    `json:"protocol"`
	DeviceID      string `json:"deviceId"`
	Token         string `json:"token,omitempty"`
	SchemaVersion int    `json:"schemaVersion"`
	Cursor        string `json:"cursor,omitempty"`
}

// Welcome accepts a session (server → client).
type Welcome struct {
	ServerTime       int64 `json:"serverTime"`
	SchemaVersion    int   `json:"schemaVersion"`
	MinSchemaVersion int   `json:"minSchemaVersion"`
	MaxBatch         int   `json:"maxBatch"`
	MaxMessageBytes  int   `json:"maxMessageBytes"`
	// FollowsMerges says that an op on a record that an earlier op of the same push
	// merged into a twin (or referring to such a record) is applied to the twin (or
	// refers to it): a device may then send a create and the ops depending on it in one
	// push. Servers without it reject such an edit (the id is new) or its reference.
	FollowsMerges bool `json:"followsMerges,omitempty"`
}

// Push carries a batch of ops (client → server).
type Push struct {
	BatchID string       `json:"batchId"`
	Ops     []jiaoliu.Op `json:"ops"`
	// SchemaVersion optionally overrides the session's schema version for this batch
	// (over HTTP there is no hello; the default there is the server's current version).
	SchemaVersion int `json:"schemaVersion,omitempty"`
}

// Ack answers a push after its batch is committed (server → client).
type Ack struct {
	BatchID string             `json:"batchId"`
	Results []jiaoliu.OpResult `json:"results"`
}

// Pull asks for the changes after a cursor (client → server).
type Pull struct {
	Cursor string `json:"cursor,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

// Record is one record of a changes message: its whole current state.
type Record struct {
	Entity  string         `json:"entity"`
	ID      string         `json:"id"`
	Version string         `json:"version"`
	Deleted bool           `json:"deleted"`
	Fields  map[string]any `json:"fields"`
}

// Changes answers a pull (server → client).
type Changes struct {
	Records []Record `json:"records"`
	Cursor  string   `json:"cursor"`
	More    bool     `json:"more"`
}

// Verify asks for the count and checksum of the records the user may read (client →
// server). Cursor, Count and Checksum are optional extensions: the device's cursor and
// its own figures over its replica, which let the server answer as of that cursor and
// record whether the device matched.
type Verify struct {
	Cursor   string `json:"cursor,omitempty"`
	Count    *int   `json:"count,omitempty"`
	Checksum string `json:"checksum,omitempty"`
}

// Checksum answers a verify (server → client).
type Checksum struct {
	Cursor   string `json:"cursor"`
	Count    int    `json:"count"`
	Checksum string `json:"checksum"`
}

// Ping asks for a pong (client → server).
type Ping struct{}

// Pong answers a ping (server → client), with the server's clock.
type Pong struct {
	ServerTime int64 `json:"serverTime,omitempty"`
}

// Poke tells the device that changes it may read were committed (server → client).
type Poke struct {
	Cursor string `json:"cursor"`
}

// Reset tells the device to pull again from the start, keeping its unacknowledged
// operations (server → client).
type Reset struct {
	Reason string `json:"reason"`
}

// Error reports a failed message or session (server → client).
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// BatchID names the push that failed, for batch_too_large and internal errors.
	BatchID string `json:"batchId,omitempty"`
}

// Error implements the error interface.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// MessageType implements Message.
func (*Hello) MessageType() string { return TypeHello }

// MessageType implements Message.
func (*Welcome) MessageType() string { return TypeWelcome }

// MessageType implements Message.
func (*Push) MessageType() string { return TypePush }

// MessageType implements Message.
func (*Ack) MessageType() string { return TypeAck }

// MessageType implements Message.
func (*Pull) MessageType() string { return TypePull }

// MessageType implements Message.
func (*Changes) MessageType() string { return TypeChanges }

// MessageType implements Message.
func (*Verify) MessageType() string { return TypeVerify }

// MessageType implements Message.
func (*Checksum) MessageType() string { return TypeChecksum }

// MessageType implements Message.
func (*Ping) MessageType() string { return TypePing }

// MessageType implements Message.
func (*Pong) MessageType() string { return TypePong }

// MessageType implements Message.
func (*Poke) MessageType() string { return TypePoke }

// MessageType implements Message.
func (*Reset) MessageType() string { return TypeReset }

// MessageType implements Message.
func (*Error) MessageType() string { return TypeError }

// kinds lists each type with a constructor and its required fields.
var kinds = map[string]struct {
	new      func() Message
	required []string
}{
	TypeHello:    {func() Message { return new(Hello) }, []string{"protocol", "deviceId", "schemaVersion"}},
	TypeWelcome:  {func() Message { return new(Welcome) }, []string{"serverTime", "schemaVersion", "minSchemaVersion", "maxBatch", "maxMessageBytes"}},
	TypePush:     {func() Message { return new(Push) }, []string{"batchId", "ops"}},
	TypeAck:      {func() Message { return new(Ack) }, []string{"batchId", "results"}},
	TypePull:     {func() Message { return new(Pull) }, nil},
	TypeChanges:  {func() Message { return new(Changes) }, []string{"records", "cursor", "more"}},
	TypeVerify:   {func() Message { return new(Verify) }, nil},
	TypeChecksum: {func() Message { return new(Checksum) }, []string{"cursor", "count", "checksum"}},
	TypePing:     {func() Message { return new(Ping) }, nil},
	TypePong:     {func() Message { return new(Pong) }, nil},
	TypePoke:     {func() Message { return new(Poke) }, nil},
	TypeReset:    {func() Message { return new(Reset) }, []string{"reason"}},
	TypeError:    {func() Message { return new(Error) }, []string{"code"}},
}

// BadMessage returns a bad_message error with a formatted message.
func BadMessage(format string, args ...any) *Error {
	return &Error{Code: CodeBadMessage, Message: fmt.Sprintf(format, args...)}
}

// Decode parses one message. Any error it returns is an *Error with code bad_message.
//
// A message is read in one pass when it is well formed: its top level is walked for
// "type" and the type's required fields, then decoded into its type (a push or a
// changes message by fast.go, the others by encoding/json). Anything else (a malformed
// message, a required field missing, an op that is not an object) is decoded again by
// decodeStrict, whose checks say what is wrong: both give the same message or the same
// error for every input (FuzzDecodeAgreesWithStrict).
func Decode(data []byte) (Message, error) {
	typ, members, ok := topLevel(data)
	if !ok {
		return decodeStrict(data)
	}
	kind, ok := kinds[string(typ)]
	if !ok || !members.hasAll(data, kind.required) {
		return decodeStrict(data)
	}
	if t := string(typ); t == TypePush || t == TypeChanges || t == TypeAck {
		// Records and results by the hundred: read without reflection (fast.go).
		if !json.Valid(data) {
			return decodeStrict(data)
		}
		var m Message
		var ok bool
		switch t {
		case TypePush:
			m, ok = decodePush(data, &members)
		case TypeChanges:
			m, ok = decodeChanges(data, &members)
		default:
			m, ok = decodeAck(data, &members)
		}
		if !ok {
			return decodeStrict(data)
		}
		if err := validate(m, nil); err != nil {
			return nil, err
		}
		return m, nil
	}
	m := kind.new()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // op field values keep their exact text: 3 stays an integer
	if err := dec.Decode(m); err != nil || !onlySpace(data[dec.InputOffset():]) {
		return decodeStrict(data)
	}
	if err := validate(m, nil); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeStrict parses one message step by step, each step with its own error: the JSON,
// its "type", the type's required fields, the fields' JSON types, what validate checks.
func decodeStrict(data []byte) (Message, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, BadMessage("invalid JSON: %s", jsonError(err))
	}
	if raw == nil {
		return nil, BadMessage("a message must be a JSON object")
	}
	typRaw, ok := raw["type"]
	if !ok || isNull(typRaw) {
		return nil, BadMessage(`missing required field "type"`)
	}
	var typ string
	if err := json.Unmarshal(typRaw, &typ); err != nil {
		return nil, BadMessage(`"type" must be a string`)
	}
	kind, ok := kinds[typ]
	if !ok {
		return nil, BadMessage("unknown message type %q", truncate(typ, 40))
	}
	for _, name := range kind.required {
		if v, ok := raw[name]; !ok || isNull(v) {
			return nil, BadMessage("%s: missing required field %q", typ, name)
		}
	}
	m := kind.new()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // op field values keep their exact text: 3 stays an integer
	if err := dec.Decode(m); err != nil {
		return nil, BadMessage("%s: %s", typ, jsonError(err))
	}
	if err := validate(m, raw); err != nil {
		return nil, err
	}
	return m, nil
}

// validate checks what the JSON types alone do not.
func validate(m Message, raw map[string]json.RawMessage) error {
	switch m := m.(type) {
	case *Push:
		if raw != nil { // decodeStrict: Decode checked its ops as it decoded them
			var ops []json.RawMessage
			if err := json.Unmarshal(raw["ops"], &ops); err != nil {
				return BadMessage("push: ops must be an array")
			}
			for i, op := range ops {
				if t := bytes.TrimLeft(op, " \t\r\n"); len(t) == 0 || t[0] != '{' {
					return BadMessage("push: ops[%d] must be an object", i)
				}
			}
		}
		if m.Ops == nil {
			m.Ops = []jiaoliu.Op{}
		}
	case *Changes:
		for i, r := range m.Records {
			if r.Entity == "" || r.ID == "" {
				return BadMessage("changes: records[%d] needs entity and id", i)
			}
		}
	}
	return nil
}

func isNull(v json.RawMessage) bool {
	return string(bytes.TrimSpace(v)) == "null"
}

// jsonError describes a decoding error without echoing the input.
func jsonError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q must be %s, not %s", truncate(te.Field, 60), jsonType(te.Type.String()), te.Value)
		}
		return fmt.Sprintf("must be %s, not %s", jsonType(te.Type.String()), te.Value)
	}
	return truncate(err.Error(), 120)
}

func jsonType(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "int", "int64", "uint64":
		return "an integer"
	case "bool":
		return "true or false"
	}
	if len(goType) > 2 && goType[:2] == "[]" {
		return "an array"
	}
	return "an object"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Encode returns the JSON form of a message, with its "type" first.
func Encode(m Message) ([]byte, error) {
	if a, ok := m.(BodyAppender); ok {
		b := make([]byte, 0, 64+a.BodySize())
		b = append(b, `{"type":`...)
		typ, _ := json.Marshal(m.MessageType())
		b = append(b, typ...)
		b = append(b, ',')
		return append(a.AppendBody(b), '}'), nil
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.MessageType(), err)
	}
	var b bytes.Buffer
	b.Grow(len(body) + 24)
	b.WriteString(`{"type":`)
	typ, _ := json.Marshal(m.MessageType())
	b.Write(typ)
	if len(body) > 2 {
		b.WriteByte(',')
		b.Write(body[1:])
	} else {
		b.WriteByte('}')
	}
	return b.Bytes(), nil
}

// BodyAppender is a message that writes its own members (everything after "type",
// without braces) as valid, compact JSON, which Encode copies as it is: a changes
// message of 500 records already encoded one by one is not parsed and compacted again.
type BodyAppender interface {
	Message
	AppendBody(b []byte) []byte
	BodySize() int // an estimate of the members' size, to allocate once
}

// MustEncode is Encode for messages that cannot fail to encode (those without op
// field values); it panics otherwise.
func MustEncode(m Message) []byte {
	b, err := Encode(m)
	if err != nil {
		panic(err)
	}
	return b
}

// RecordHash returns the first 8 bytes of SHA-256 of entity + "/" + id + "/" + version,
// as a big-endian number: one record's share of the verify checksum.
func RecordHash(entity, id, version string) uint64 {
	sum := sha256.Sum256([]byte(entity + "/" + id + "/" + version))
	return binary.BigEndian.Uint64(sum[:8])
}

// ChecksumOf returns the count and the verify checksum of the live records among
// records (tombstones are skipped): the XOR of their RecordHash as 16 lowercase hex
// digits. A device computes it over its replica and compares with a checksum message.
func ChecksumOf(records []Record) (count int, checksum string) {
	var x uint64
	for _, r := range records {
		if r.Deleted {
			continue
		}
		count++
		x ^= RecordHash(r.Entity, r.ID, r.Version)
	}
	return count, fmt.Sprintf("%016x", x)
}
