package pgcluster

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestFindBinariesMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	old := systemBinGlob
	systemBinGlob = filepath.Join(t.TempDir(), "*", "bin")
	t.Cleanup(func() { systemBinGlob = old })

	_, err := FindBinaries()
	if err == nil {
		t.Fatal("FindBinaries()=nil error, want one")
	}
	if got, want := err.Error(), "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in "+
		"/usr/lib/postgresql/*/bin: install them with `apt-get install postgresql` (Debian/Ubuntu) "+
		"or set DATABASE_URL to use an existing server"; got != want {
		t.Fatalf("error=%q, want %q", got, want)
	}
}

func TestFindBinariesHighestVersion(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	root := t.TempDir()
	old := systemBinGlob
	systemBinGlob = filepath.Join(root, "*", "bin")
	t.Cleanup(func() { systemBinGlob = old })

	for _, v := range []string{"9.6", "15", "10", "16"} {
		dir := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		names := binaryNames
		if v == "16" {
			names = names[:2] // incomplete installation: must be skipped
		}
		for _, name := range names {
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "15", "bin"); got != want {
		t.Fatalf("FindBinaries()=%s, want %s", got, want)
	}
}

func TestCompareVersions(t *testing.T) {
	got := []string{"10", "9.6", "16", "x", "15"}
	slices.SortFunc(got, compareVersions)
	if want := []string{"x", "9.6", "10", "15", "16"}; !slices.Equal(got, want) {
		t.Fatalf("sorted=%v, want %v", got, want)
	}
}

func TestQuoteDSN(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/tmp/x", "/tmp/x"},
		{"", "''"},
		{"a b", "'a b'"},
		{`it's`, `'it\'s'`},
		{`back\slash`, `'back\\slash'`},
	} {
		if got := quoteDSN(tt.in); got != tt.want {
			t.Errorf("quoteDSN(%q)=%s, want %s", tt.in, got, tt.want)
		}
	}
}
