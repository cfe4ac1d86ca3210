package main

import (
	"bytes"
	"fmt"
	"go/format"
	"go/types"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/templates"
	"github.com/vektah/gqlparser/v2/ast"
)

// directObjects writes, for each object type, a direct marshaller: a function that
// writes an object's JSON straight into a buffer (graph/direct.go) instead of through
// gqlgen's per-field machinery (a field context, a resolver closure, a marshaller and a
// field set per field of every element).
//
// It knows only what it can write exactly as the generated code would:
//   - a field bound to a struct field, without arguments or directives, of a scalar or
//     enum type, written by the very marshal function the generated code calls;
//   - a field resolved by a resolver without arguments whose type is an object with a
//     direct marshaller of its own, which the package allows for that field (a
//     reference whose record the list primed, directRef), called as the generated code
//     calls it.
//
// Anything else — another field, a null in a non-null field, an error — makes it report
// false, and the list is marshalled by gqlgen's code as before; so a direct list is
// either the same bytes or not used.
type directObjects struct {
	src   bytes.Buffer
	names map[string]bool // objects given a direct marshaller
}

func (*directObjects) Name() string { return "directobjects" }

func (d *directObjects) GenerateCode(data *codegen.Data) error {
	d.names = map[string]bool{}
	var objs []*codegen.Object
	for _, o := range data.Objects {
		if o.Root || o.Stream {
			continue
		}
		if _, ok := types.Unalias(o.Type).(*types.Named); !ok {
			continue
		}
		objs = append(objs, o)
		d.names[o.Name] = true
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Name < objs[j].Name })
	qual := func(p *types.Package) string { return p.Name() }
	w := &d.src
	fmt.Fprintf(w, "\n// Direct marshallers, written by internal/gen/gqlgen (directObjects).\n")
	for _, o := range objs {
		fmt.Fprintf(w, "\nfunc (ec *executionContext) direct_%s(ctx context.Context, d *directWriter, sel ast.SelectionSet, obj *%s) bool {\n",
			o.Name, types.TypeString(o.Type, qual))
		fmt.Fprintf(w, "\tfields := d.fields(ec.OperationContext, sel, %sImplementors)\n", templates.LcFirst(o.Name))
		fmt.Fprintf(w, "\td.open()\n\tfor i := range fields {\n\t\tf := &fields[i]\n\t\td.key(f.Alias)\n\t\tswitch f.Name {\n")
		fmt.Fprintf(w, "\t\tcase \"__typename\":\n\t\t\td.typename(%q)\n", o.Name)
		for _, f := range o.Fields {
			if c := directCase(o, f, d.names); c != "" {
				fmt.Fprintf(w, "\t\tcase %q:\n%s", f.Name, c)
			}
		}
		fmt.Fprintf(w, "\t\tdefault:\n\t\t\treturn false\n\t\t}\n\t}\n\td.close()\n\treturn true\n}\n")
	}
	return nil
}

// directCase is the body of the case of field f in o's direct marshaller, or "" when
// the field is left to gqlgen's code.
func directCase(o *codegen.Object, f *codegen.Field, direct map[string]bool) string {
	ref := f.TypeReference
	if ref == nil || ref.Definition == nil || ref.GQL.Elem != nil || len(f.Args) > 0 || f.HasDirectives() || f.Stream || f.Batch {
		return ""
	}
	nonNull := ref.GQL.NonNull
	switch {
	case !f.IsResolver && f.IsVariable() && (ref.Definition.Kind == ast.Scalar || ref.Definition.Kind == ast.Enum):
		t := types.Unalias(ref.GO)
		if p, ok := t.(*types.Pointer); ok {
			t = types.Unalias(p.Elem())
		}
		var b strings.Builder
		switch {
		case nonNull && ref.IsNilable():
			fmt.Fprintf(&b, "\t\t\tif obj.%s == nil {\n\t\t\t\treturn false\n\t\t\t}\n", f.GoFieldName)
		case nonNull && isTime(t):
			// gqlgen's non-null Time reports a zero time as an error of the field.
			fmt.Fprintf(&b, "\t\t\tif obj.%s.IsZero() {\n\t\t\t\treturn false\n\t\t\t}\n", f.GoFieldName)
		}
		if !plainScalar(t) {
			return ""
		}
		switch ref.MarshalFunc() {
		case "marshalNString2string", "marshalNID2string":
			// A Go string as a String or an ID: written as gqlgen writes it, without the
			// closure its marshaller returns (graph/direct.go, directWriter.quoted).
			fmt.Fprintf(&b, "\t\t\td.quoted(obj.%s)\n", f.GoFieldName)
		default:
			fmt.Fprintf(&b, "\t\t\tec.%s(ctx, f.Selections, obj.%s).MarshalGQL(d)\n", ref.MarshalFunc(), f.GoFieldName)
		}
		return b.String()
	case f.IsResolver && ref.Definition.Kind == ast.Object && direct[ref.Definition.Name] && ref.IsPtr():
		var b strings.Builder
		fmt.Fprintf(&b, "\t\t\tif !directRef(%q, %q) {\n\t\t\t\treturn false\n\t\t\t}\n", o.Name, f.Name)
		fmt.Fprintf(&b, "\t\t\tv, err := ec.Resolvers.%s\n", strings.Replace(f.ShortInvocation(), "(ctx, ", "(d.fieldContext(ctx, "+fmt.Sprintf("%q", o.Name)+", f), ", 1))
		fmt.Fprintf(&b, "\t\t\tif err != nil {\n\t\t\t\treturn false\n\t\t\t}\n")
		if nonNull {
			fmt.Fprintf(&b, "\t\t\tif v == nil {\n\t\t\t\treturn false\n\t\t\t}\n")
		} else {
			fmt.Fprintf(&b, "\t\t\tif v == nil {\n\t\t\t\td.null()\n\t\t\t\tcontinue\n\t\t\t}\n")
		}
		fmt.Fprintf(&b, "\t\t\tif !ec.direct_%s(ctx, d, f.Selections, v) {\n\t\t\t\treturn false\n\t\t\t}\n", ref.Definition.Name)
		return b.String()
	}
	return ""
}

// listMarshaller matches the generated marshaller of a non-null list of non-null
// objects (the nodes of a connection, an object's children).
var listMarshaller = regexp.MustCompile(`(?m)^func \(ec \*executionContext\) marshalN(\w+?)2ᚕᚖ\S*ᚄ\(ctx context\.Context, sel ast\.SelectionSet, v \[\]\*\S+\) graphql\.Marshaler \{\n`)

// useDirectLists appends the direct marshallers to the generated code and makes each
// list marshaller of an object with one try it first (directList, graph/direct.go).
func (d *directObjects) useDirectLists(b []byte) ([]byte, error) {
	n := 0
	b = listMarshaller.ReplaceAllFunc(b, func(m []byte) []byte {
		name := string(listMarshaller.FindSubmatch(m)[1])
		if !d.names[name] {
			return m
		}
		n++
		return append(slices.Clip(m), fmt.Sprintf("\tif m, ok := directList(ctx, sel, v, ec.direct_%s); ok {\n\t\treturn m\n\t}\n", name)...)
	})
	if n == 0 {
		return nil, fmt.Errorf("no list marshaller to give a direct path")
	}
	out, err := format.Source(append(b, d.src.Bytes()...))
	if err != nil {
		return nil, fmt.Errorf("format the direct marshallers: %w", err)
	}
	return out, nil
}

// plainScalar reports whether values of t are written by a marshaller that cannot
// fail or report an error: strings, integers, booleans, times and types that marshal
// themselves (enums, Date). Floats (written with the request's context, failing on
// NaN) and JSON values (any) are left to gqlgen's code.
func plainScalar(t types.Type) bool {
	if isTime(t) {
		return true
	}
	if b, ok := t.Underlying().(*types.Basic); ok {
		switch b.Kind() {
		case types.String, types.Int, types.Int64, types.Int32, types.Bool:
			if _, named := t.(*types.Named); !named || hasMethod(t, "MarshalGQL") {
				return true
			}
		}
		return false
	}
	return hasMethod(t, "MarshalGQL")
}

func isTime(t types.Type) bool {
	n, ok := t.(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == "time" && n.Obj().Name() == "Time"
}

func hasMethod(t types.Type, name string) bool {
	obj, _, _ := types.LookupFieldOrMethod(t, true, nil, name)
	_, ok := obj.(*types.Func)
	return ok
}
