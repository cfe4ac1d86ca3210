package graph

import (
	"bytes"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
)

// TestQuotedIsGqlgensString: directWriter.quoted writes what gqlgen's String and ID
// marshallers write, for every ASCII byte and for UTF-8 beyond it.
func TestQuotedIsGqlgensString(t *testing.T) {
	inputs := []string{"", "王芳", "双河五小 (曹河教学点)", `say "hi" \ bye`, "a\u2028b", "bad \xff byte", "<&>", strings.Repeat("长", 100)}
	for c := 0; c < 0x80; c++ {
		inputs = append(inputs, string(rune(c)), "x"+string(rune(c))+"y")
	}
	for _, s := range inputs {
		for _, m := range []graphql.Marshaler{graphql.MarshalString(s), graphql.MarshalID(s)} {
			var want bytes.Buffer
			m.MarshalGQL(&want)
			d := &directWriter{}
			d.quoted(s)
			if string(d.buf) != want.String() {
				t.Errorf("%q: quoted %s, gqlgen %s", s, d.buf, want.String())
			}
		}
	}
}
