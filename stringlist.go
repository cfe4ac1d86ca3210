package jiaoliu

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
)

// StringList is a list of short strings (a teacher's subjects, honors), stored as a
// JSON array so that the domain needs no driver-specific array type.
type StringList []string

// Scan implements sql.Scanner.
func (l *StringList) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*l = StringList{}
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("string list: cannot scan %T", src)
	}
	out := StringList{}
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("string list: %w", err)
	}
	*l = out
	return nil
}

// Value implements driver.Valuer.
func (l StringList) Value() (driver.Value, error) {
	if l == nil {
		return "[]", nil
	}
	b, err := json.Marshal([]string(l))
	return string(b), err
}
