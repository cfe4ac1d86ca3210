// Command gqlgen runs gqlgen's generator (`gqlgen generate`, configured by gqlgen.yml)
// with one change to the code it writes: the fields of an object are resolved one after
// the other instead of each resolver field in a goroutine of its own.
//
// gqlgen resolves every field backed by a resolver (Exchange.teacher, School.zone, …) in
// a new goroutine, and every element of a list in another. A page of 50 exchanges with
// their teacher and two schools started 200 goroutines, each growing its stack on its
// first calls: a quarter of the server's CPU for that page went to goroutines, their
// stacks and their scheduling, not to the page. The records such fields refer to are
// loaded before the fields run (graph/prime.go) or in batches shared by the elements
// of the list, which still run concurrently, so running an object's own fields in
// order costs no round trips; it only removes the goroutines.
//
// The elements of a list are marshalled by the package's own marshalList (graph/lists.go)
// instead of gqlgen's MarshalSliceConcurrently: concurrently as before, but on goroutines
// kept from one list to the next, whose stacks have grown already; an object that
// defers nothing gets no deferred group (see noIdleDeferredGroups).
//
// Each object type also gets a direct marshaller (direct.go), which the list
// marshallers try first: the nodes of a primed page written straight into one buffer,
// or, for anything it cannot write exactly as gqlgen would, not at all.
//
// The operation types are left as gqlgen makes them: Mutation is already sequential
// (the GraphQL specification wants it), Query and Subscription run their root fields
// concurrently.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/config"
)

func main() {
	cfg, err := config.LoadConfigFromDefaultLocations()
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("gqlgen.yml not found (run from the module root): %w", err)
	}
	direct := &directObjects{}
	if err == nil {
		err = api.Generate(cfg, api.AddPlugin(sequentialFields{}), api.AddPlugin(direct))
	}
	if err == nil {
		err = rewrite(cfg.Exec.Filename, useListWorkers, noIdleDeferredGroups, direct.useDirectLists)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gqlgen:", err)
		os.Exit(1)
	}
}

// rewrite applies the rewrites to the generated code at path, each of which fails when
// it finds nothing to rewrite (gqlgen changed what it writes).
func rewrite(path string, rewrites ...func([]byte) ([]byte, error)) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, r := range rewrites {
		if b, err = r(b); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return os.WriteFile(path, b, 0o644)
}

// useListWorkers makes the generated code call marshalList, which has the signature of
// gqlgen's MarshalSliceConcurrently, in its place.
func useListWorkers(b []byte) ([]byte, error) {
	const from, to = "graphql.MarshalSliceConcurrently(", "marshalList("
	if !bytes.Contains(b, []byte(from)) {
		return nil, fmt.Errorf("no call of %s to replace with %s", from, to)
	}
	return bytes.ReplaceAll(b, []byte(from), []byte(to)), nil
}

// noIdleDeferredGroups gives an object's marshaller an empty deferred group when
// nothing can add to it (only fields resolved concurrently, given &deferred, can be
// deferred): gqlgen builds one for every object it marshals — its path, a field set and
// a map — which was 5 % of the CPU of a page of exchanges.
func noIdleDeferredGroups(b []byte) ([]byte, error) {
	const from, to = "graphql.NewDeferredGroup(ctx)", "graphql.DeferredGroup{}"
	funcs := bytes.SplitAfter(b, []byte("\nfunc "))
	n := 0
	for i, f := range funcs {
		if bytes.Contains(f, []byte(from)) && !bytes.Contains(f, []byte("&deferred")) {
			funcs[i] = bytes.ReplaceAll(f, []byte(from), []byte(to))
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("no %s to replace with %s", from, to)
	}
	return bytes.Join(funcs, nil), nil
}

// sequentialFields marks every object type but the operation types as resolving its
// fields in order (gqlgen's DisableConcurrency, which it sets for Mutation).
type sequentialFields struct{}

func (sequentialFields) Name() string { return "sequentialfields" }

func (sequentialFields) GenerateCode(data *codegen.Data) error {
	for _, o := range data.Objects {
		if o.Definition == data.Schema.Query || o.Definition == data.Schema.Subscription {
			continue
		}
		o.DisableConcurrency = true
	}
	return nil
}
