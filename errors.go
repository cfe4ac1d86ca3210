// Package jiaoliu holds the domain of the teacher exchange programme (教师交流轮岗):
// the entities, their fields and rules, the operations that change them, and the
// error codes every adapter maps to its transport. It imports no adapter.
package jiaoliu

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error codes shared by every adapter. GraphQL exposes them as extensions.code; the
// sync protocol maps them to its rejection codes.
const (
	EINVALID         = "INVALID"
	ENOTFOUND        = "NOT_FOUND"
	EFORBIDDEN       = "FORBIDDEN"
	EUNAUTHENTICATED = "UNAUTHENTICATED"
	ECONFLICT        = "CONFLICT"
	ELOCKED          = "LOCKED"
	EMISSINGREF      = "MISSING_REFERENCE"
	EUNKNOWNENTITY   = "UNKNOWN_ENTITY"
	ERATELIMITED     = "RATE_LIMITED"
	EINTERNAL        = "INTERNAL"
)

// Error is a domain error: a stable code, a message safe to show a user, and for
// INVALID errors the message of each offending field (keyed by the GraphQL field name).
type Error struct {
	Code    string
	Message string
	Fields  map[string]string
}

// Error implements the error interface.
func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return fmt.Sprintf("%s: %s", strings.ToLower(e.Code), e.Message)
	}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e.Fields[k]
	}
	return fmt.Sprintf("%s: %s (%s)", strings.ToLower(e.Code), e.Message, strings.Join(parts, "; "))
}

// Errorf returns an Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrors collects per-field validation messages.
type FieldErrors map[string]string

// Add records msg for field unless the field already has a message.
func (fe FieldErrors) Add(field, msg string) {
	if _, ok := fe[field]; !ok {
		fe[field] = msg
	}
}

// Err returns an INVALID error carrying the messages, or nil if there are none.
func (fe FieldErrors) Err() error {
	if len(fe) == 0 {
		return nil
	}
	return &Error{Code: EINVALID, Message: "invalid input", Fields: fe}
}

// ErrorCode returns the code of the first *Error in err's chain, or EINTERNAL for any
// other non-nil error, or "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err: the message of a domain error,
// or a generic text for internal errors, which must never reach a client verbatim.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorFields returns the per-field messages of a domain error, if any.
func ErrorFields(err error) map[string]string {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
