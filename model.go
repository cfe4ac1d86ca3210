package jiaoliu

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Kind is the type of an entity field as the write path sees it.
type Kind int

// Field kinds.
const (
	KindString  Kind = iota // a short string (≤ 200 characters)
	KindText                // a long text (≤ 20,000 characters)
	KindInt                 // an integer
	KindFloat               // a number
	KindBool                // true or false
	KindDate                // a calendar day, "2006-01-02"
	KindID                  // a UUID referring to another record
	KindEnum                // one of Enums[Field.Enum]
	KindStrings             // a list of short strings
)

// FieldDef describes one writable field of an entity.
type FieldDef struct {
	Name     string // GraphQL and sync name, e.g. "exchangeId"
	Kind     Kind
	Required bool   // must be present (and non-empty) when the record is created
	Nullable bool   // may be null; otherwise a missing value takes the kind's zero value
	Ref      string // for KindID: the entity it refers to
	Enum     string // for KindEnum: the key into Enums
	Min, Max *float64

	column string // Column, worked out when the entity is registered
}

// Column returns the database column of the field: its name in snake case.
func (f FieldDef) Column() string {
	if f.column != "" {
		return f.column
	}
	return SnakeCase(f.Name)
}

// Entity describes a kind of record that the write path (GraphQL mutations and sync
// pushes alike) creates and changes.
type Entity struct {
	Name       string     // sync name, e.g. "lesson"
	Type       string     // GraphQL type name, e.g. "Lesson"
	Table      string     // database table
	Fields     []FieldDef // writable fields
	NaturalKey []string   // fields that identify a live record besides its id
	// DeviceWritable says whether a device may push ops for this entity at all; which
	// records a user may write is decided by the store's scope rules.
	DeviceWritable bool
	// Validate checks a record as it would be after the op. old is nil on create.
	Validate func(old, rec Record, fe FieldErrors) error

	refs []FieldDef // Refs, worked out when the entity is registered
}

// Refs returns the fields that refer to a record of another entity (KindID with a Ref):
// an exchange's teacherId, an observation's lessonId.
func (e *Entity) Refs() []FieldDef { return e.refs }

// Field returns the field named name.
func (e *Entity) Field(name string) (FieldDef, bool) {
	for _, f := range e.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return FieldDef{}, false
}

// Record is a record's fields by name, with values of canonical Go types: string,
// int64, float64, bool, Date, StringList, or nil.
type Record map[string]any

// String returns the string value of a field ("" when missing or null).
func (r Record) String(name string) string { s, _ := r[name].(string); return s }

// Int returns the integer value of a field and whether it is set.
func (r Record) Int(name string) (int64, bool) { n, ok := r[name].(int64); return n, ok }

// Float returns the numeric value of a field (0 when missing).
func (r Record) Float(name string) float64 {
	switch v := r[name].(type) {
	case float64:
		return v
	case int64:
		return float64(v)
	}
	return 0
}

// Bool returns the boolean value of a field.
func (r Record) Bool(name string) bool { b, _ := r[name].(bool); return b }

// Date returns the date value of a field (the zero Date when missing or null).
func (r Record) Date(name string) Date { d, _ := r[name].(Date); return d }

// Clone returns a shallow copy of r.
func (r Record) Clone() Record {
	out := make(Record, len(r))
	for k, v := range r {
		out[k] = v
	}
	return out
}

// reserved names may appear in a pushed record's fields (a client echoing what it
// pulled) and are ignored: the server owns them.
var reserved = map[string]bool{"id": true, "version": true, "deleted": true, "createdAt": true, "updatedAt": true}

// Parse converts raw field values (decoded from JSON or GraphQL input) to a Record of
// canonical values. Unknown fields are errors rather than silently dropped, so that
// nothing a user typed disappears: the op is rejected and stored for an admin.
func (e *Entity) Parse(raw map[string]any) (Record, error) {
	rec := make(Record, len(raw))
	var fe FieldErrors // made on the first error
	add := func(name, msg string) {
		if fe == nil {
			fe = FieldErrors{}
		}
		fe.Add(name, msg)
	}
	for name, v := range raw {
		if reserved[name] {
			continue
		}
		f, ok := e.Field(name)
		if !ok {
			add(name, fmt.Sprintf("unknown field of %s", e.Name))
			continue
		}
		val, err := f.Parse(v)
		if err != nil {
			add(name, err.Error())
			continue
		}
		rec[name] = val
	}
	return rec, fe.Err()
}

// CheckRequired reports the required fields missing from a record being created.
func (e *Entity) CheckRequired(rec Record, fe FieldErrors) {
	for _, f := range e.Fields {
		if !f.Required {
			continue
		}
		v, ok := rec[f.Name]
		if !ok || v == nil || v == "" {
			fe.Add(f.Name, "is required")
		}
	}
}

// Defaults returns the zero value of every non-nullable field missing from rec, so a
// created record has a value for every column.
func (e *Entity) Defaults(rec Record) {
	for _, f := range e.Fields {
		if _, ok := rec[f.Name]; ok {
			continue
		}
		rec[f.Name] = f.zero()
	}
}

func (f FieldDef) zero() any {
	if f.Nullable {
		return nil
	}
	switch f.Kind {
	case KindInt:
		return int64(0)
	case KindFloat:
		return float64(0)
	case KindBool:
		return false
	case KindStrings:
		return StringList{}
	case KindDate, KindID:
		return nil
	case KindEnum:
		return Enums[f.Enum][0]
	}
	return ""
}

// Parse converts one raw value to the field's canonical value.
func (f FieldDef) Parse(v any) (any, error) {
	switch v.(type) {
	case nil, string, float64, bool, json.Number, int64, Date, []any:
		// As JSON decodes them (the sync path): no pointer to look through.
	default:
		// GraphQL inputs may carry optional values as pointers to named types.
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer {
			if rv.IsNil() {
				v = nil
			} else {
				v = rv.Elem().Interface()
			}
		}
	}
	if v == nil {
		if f.Nullable || f.Kind == KindString || f.Kind == KindText {
			if f.Nullable {
				return nil, nil
			}
			return "", nil
		}
		return nil, fmt.Errorf("must not be null")
	}
	switch f.Kind {
	case KindString, KindText:
		s, ok := stringOf(v)
		if !ok {
			return nil, fmt.Errorf("must be a string")
		}
		limit := 200
		if f.Kind == KindText {
			limit = 20000
		}
		if n := utf8.RuneCountInString(s); n > limit {
			return nil, fmt.Errorf("must be at most %d characters", limit)
		}
		return keep(v, s, strings.TrimSpace(s)), nil
	case KindInt:
		n, ok := numberOf(v)
		if !ok || n != math.Trunc(n) || math.Abs(n) > 1<<40 {
			return nil, fmt.Errorf("must be an integer")
		}
		if err := f.checkRange(n); err != nil {
			return nil, err
		}
		return int64(n), nil
	case KindFloat:
		n, ok := numberOf(v)
		if !ok || math.IsNaN(n) || math.IsInf(n, 0) {
			return nil, fmt.Errorf("must be a number")
		}
		if err := f.checkRange(n); err != nil {
			return nil, err
		}
		return n, nil
	case KindBool:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("must be true or false")
		}
		return b, nil
	case KindDate:
		if d, ok := v.(Date); ok {
			return d, nil
		}
		s, ok := stringOf(v)
		if !ok {
			return nil, fmt.Errorf("must be a date YYYY-MM-DD")
		}
		d, err := ParseDate(s)
		if err != nil {
			return nil, fmt.Errorf("must be a date YYYY-MM-DD")
		}
		if d.Year() < 1900 || d.Year() > 2200 {
			return nil, fmt.Errorf("must be a date between 1900 and 2200")
		}
		return d, nil
	case KindID:
		s, ok := stringOf(v)
		if !ok {
			return nil, fmt.Errorf("must be an id (UUID)")
		}
		if canonicalUUID(s) {
			return keep(v, s, s), nil
		}
		id, err := uuid.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("must be an id (UUID)")
		}
		return id.String(), nil
	case KindEnum:
		s, ok := stringOf(v)
		if !ok || !slices.Contains(Enums[f.Enum], s) {
			return nil, fmt.Errorf("must be one of %s", strings.Join(Enums[f.Enum], ", "))
		}
		return keep(v, s, s), nil
	case KindStrings:
		var list []any
		switch l := v.(type) {
		case []any:
			list = l
		case []string:
			for _, s := range l {
				list = append(list, s)
			}
		case StringList:
			for _, s := range l {
				list = append(list, s)
			}
		default:
			return nil, fmt.Errorf("must be a list of strings")
		}
		if len(list) > 50 {
			return nil, fmt.Errorf("must have at most 50 entries")
		}
		out := make(StringList, 0, len(list))
		for _, x := range list {
			s, ok := stringOf(x)
			if !ok || utf8.RuneCountInString(s) > 100 {
				return nil, fmt.Errorf("must be a list of strings of at most 100 characters")
			}
			out = append(out, strings.TrimSpace(s))
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported field kind")
}

func (f FieldDef) checkRange(n float64) error {
	switch {
	case f.Min != nil && f.Max != nil && (n < *f.Min || n > *f.Max):
		return fmt.Errorf("must be %s..%s", fmtNum(*f.Min), fmtNum(*f.Max))
	case f.Min != nil && n < *f.Min:
		return fmt.Errorf("must be at least %s", fmtNum(*f.Min))
	case f.Max != nil && n > *f.Max:
		return fmt.Errorf("must be at most %s", fmtNum(*f.Max))
	}
	return nil
}

func fmtNum(f float64) string { return fmt.Sprintf("%g", f) }

// keep returns a parsed string value, out, which is s or a part of it (s trimmed): v
// itself when v is the plain string s and out is all of it, else out. The values of a
// decoded op stay as they were boxed, instead of each being boxed again.
func keep(v any, s, out string) any {
	if len(out) == len(s) {
		if _, plain := v.(string); plain {
			return v
		}
	}
	return out
}

// canonicalUUID reports whether s is a UUID as uuid.UUID's String writes it (lower-case
// hex digits in groups of 8-4-4-4-12), which parsing and writing again would return
// unchanged.
func canonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

func stringOf(v any) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case json.Number:
		return "", false
	case Date:
		return s.String(), true
	}
	// Enum values arrive from GraphQL inputs as the domain's named string types.
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
		return rv.String(), true
	}
	return "", false
}

func numberOf(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// SnakeCase converts a GraphQL field name to its column name: exchangeId → exchange_id.
func SnakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// FieldValueEqual reports whether two canonical field values are equal.
func FieldValueEqual(a, b any) bool {
	if la, ok := a.(StringList); ok {
		lb, ok := b.(StringList)
		return ok && slices.Equal(la, lb)
	}
	return a == b
}
