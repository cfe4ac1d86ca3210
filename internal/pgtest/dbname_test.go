package pgtest

import (
	"strings"
	"testing"
)

func TestDBName(t *testing.T) {
	for _, tt := range []struct {
		test string
		n    int64
		want string
	}{
		{"TestFoo", 1, "t_testfoo_1"},
		{"TestFoo/Sub_Case", 12, "t_testfoo_sub_case_12"},
		{"TestÄ//--x", 3, "t_test_x_3"},
		{strings.Repeat("TestLong", 20), 123, "t_" + strings.Repeat("testlong", 20)[:57] + "_123"},
	} {
		got := dbName(tt.test, tt.n)
		if got != tt.want {
			t.Errorf("dbName(%q, %d)=%q, want %q", tt.test, tt.n, got, tt.want)
		}
		if len(got) > maxIdentifier {
			t.Errorf("dbName(%q, %d) is %d bytes long", tt.test, tt.n, len(got))
		}
	}
}
