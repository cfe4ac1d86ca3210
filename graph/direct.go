package graph

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/jiaoliu/jiaoliu"
)

// Direct lists.
//
// gqlgen marshals every field of every element of a list through the same machinery: a
// field context, a resolver closure, a marshaller value and a field set, then writes
// them out. For a page of 50 lessons with their exchange's teacher that is some 400
// fields and a quarter of the server's CPU for the request. The nodes of a page whose
// references were primed (prime.go) are instead written straight into one buffer by
// direct marshallers that the generator writes for each object type
// (internal/gen/gqlgen, directObjects): a plain field through the marshal function the
// generated code would call, a reference through the resolver it would call, reading
// the loader the list primed.
//
// A direct marshaller knows only what it can write byte for byte as gqlgen would; on
// anything else (a field it does not know, a null in a non-null field, a resolver's
// error, a panic) the list falls back to gqlgen's code, which does the work again and
// reports what went wrong in its usual way. TestDirectListsAreGqlgensLists compares
// both on every field of every list.

// directLists turns the direct path on (tests turn it off to compare); directListed
// counts the lists it wrote.
var (
	directLists  = true
	directListed atomic.Int64
)

// directList writes the list v of objects with one, when the selection sel is that of
// the nodes of a page whose references were primed; ok is false when it does not.
func directList[T any](ctx context.Context, sel ast.SelectionSet,
	v []*T, one func(context.Context, *directWriter, ast.SelectionSet, *T) bool) (m graphql.Marshaler, ok bool) {
	if !directLists || len(v) == 0 || len(sel) == 0 || !graphql.HasOperationContext(ctx) || !loadersFrom(ctx).wasPrimed(sel) {
		return nil, false
	}
	defer func() {
		if r := recover(); r != nil {
			// gqlgen's code runs the list again and reports a resolver's panic in its
			// usual way; one of the direct marshaller's own would show only here.
			slog.WarnContext(ctx, "direct list fell back after a panic", "panic", fmt.Sprint(r))
			m, ok = nil, false
		}
	}()
	d := &directWriter{buf: make([]byte, 0, 128*len(v))}
	d.buf = append(d.buf, '[')
	for i, x := range v {
		if x == nil {
			return nil, false
		}
		if i > 0 {
			d.buf = append(d.buf, ',')
		}
		if !one(ctx, d, sel, x) {
			return nil, false
		}
	}
	d.buf = append(d.buf, ']')
	directListed.Add(1)
	buf := d.buf
	return graphql.WriterFunc(func(w io.Writer) { _, _ = w.Write(buf) }), true
}

// directWriter is the buffer a direct list is written into, with what its elements
// share: the fields each selection collects and the field contexts of the resolvers.
type directWriter struct {
	buf     []byte
	first   bool // no field written yet in the current object
	sels    []collected
	fieldCx map[*graphql.CollectedField]context.Context
}

type collected struct {
	first  *ast.Selection
	n      int
	object string
	fields []graphql.CollectedField
}

// Write appends p (marshallers write into the directWriter).
func (d *directWriter) Write(p []byte) (int, error) {
	d.buf = append(d.buf, p...)
	return len(p), nil
}

// WriteString appends s: gqlgen's string marshaller writes through io.WriteString,
// which would otherwise copy each piece of a string into a new []byte for Write.
func (d *directWriter) WriteString(s string) (int, error) {
	d.buf = append(d.buf, s...)
	return len(s), nil
}

// quoted writes s as a JSON string, as gqlgen's String and ID marshallers do, without
// the closure each of them makes (TestQuotedIsGqlgensString).
func (d *directWriter) quoted(s string) {
	const hex = "0123456789ABCDEF"
	d.buf = append(d.buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		d.buf = append(d.buf, s[start:i]...)
		switch c {
		case '"', '\\':
			d.buf = append(d.buf, '\\', c)
		case '\t':
			d.buf = append(d.buf, '\\', 't')
		case '\n':
			d.buf = append(d.buf, '\\', 'n')
		case '\r':
			d.buf = append(d.buf, '\\', 'r')
		default:
			d.buf = append(d.buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	d.buf = append(d.buf, s[start:]...)
	d.buf = append(d.buf, '"')
}

// fields collects the fields of sel on an object of the implementors' type, once per
// selection for the whole list.
func (d *directWriter) fields(op *graphql.OperationContext, sel ast.SelectionSet, implementors []string) []graphql.CollectedField {
	if len(sel) == 0 {
		return nil
	}
	for _, c := range d.sels {
		if c.first == &sel[0] && c.n == len(sel) && c.object == implementors[0] {
			return c.fields
		}
	}
	fs := graphql.CollectFields(op, sel, implementors)
	d.sels = append(d.sels, collected{&sel[0], len(sel), implementors[0], fs})
	return fs
}

func (d *directWriter) open() {
	d.buf = append(d.buf, '{')
	d.first = true
}

// key writes the key of the next field (an alias is a GraphQL name: nothing to escape).
func (d *directWriter) key(alias string) {
	if !d.first {
		d.buf = append(d.buf, ',')
	}
	d.first = false
	d.buf = append(d.buf, '"')
	d.buf = append(d.buf, alias...)
	d.buf = append(d.buf, '"', ':')
}

// close ends an object; the object it was a field of has written a field.
func (d *directWriter) close() {
	d.buf = append(d.buf, '}')
	d.first = false
}

func (d *directWriter) null() { d.buf = append(d.buf, "null"...) }

func (d *directWriter) typename(name string) {
	d.buf = append(d.buf, '"')
	d.buf = append(d.buf, name...)
	d.buf = append(d.buf, '"')
}

// fieldContext returns ctx with the field context a resolver of field f of object reads
// (its selections), one per field for the whole list. f is an element of a slice that
// fields keeps for the list: the same field of another object (one syntax node spread
// by a fragment into places where it merges with different selections) is another.
func (d *directWriter) fieldContext(ctx context.Context, object string, f *graphql.CollectedField) context.Context {
	if c, ok := d.fieldCx[f]; ok {
		return c
	}
	if d.fieldCx == nil {
		d.fieldCx = map[*graphql.CollectedField]context.Context{}
	}
	c := graphql.WithFieldContext(ctx, &graphql.FieldContext{
		Parent: graphql.GetFieldContext(ctx), Object: object, Field: *f, IsMethod: true, IsResolver: true})
	d.fieldCx[f] = c
	return c
}

// directRefs are the fields a direct marshaller may resolve: the references that prime
// reads ahead (an entity's field "school" for its reference "schoolId" to an entity
// with a primer), so that their resolvers find the records in the request's loaders.
var directRefs = func() map[[2]string]bool {
	m := map[[2]string]bool{}
	for _, def := range jiaoliu.Entities {
		for _, f := range def.Fields {
			name, ok := strings.CutSuffix(f.Name, "Id")
			if ok && f.Ref != "" && readAhead(f.Ref) {
				m[[2]string{def.Type, name}] = true
			}
		}
	}
	return m
}()

func directRef(object, field string) bool { return directRefs[[2]string{object, field}] }
