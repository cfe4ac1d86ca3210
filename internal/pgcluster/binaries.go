package pgcluster

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// binaryNames are the server programs a cluster needs, all from one installation.
var binaryNames = []string{"initdb", "pg_ctl", "postgres"}

// systemBinGlob matches the per-version binary directories of the Debian and
// Ubuntu packages, which do not put the server programs on PATH.
var systemBinGlob = "/usr/lib/postgresql/*/bin"

// errNoBinaries is returned by FindBinaries; its text tells the reader what to install.
var errNoBinaries = errors.New("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in " +
	"/usr/lib/postgresql/*/bin: install them with `apt-get install postgresql` (Debian/Ubuntu) " +
	"or set DATABASE_URL to use an existing server")

// FindBinaries returns the directory that holds initdb, pg_ctl and postgres.
// It looks first at the programs on PATH (following symbolic links, so that
// /usr/local/bin/pg_ctl -> /usr/lib/postgresql/15/bin/pg_ctl yields the real
// directory), then in /usr/lib/postgresql/*/bin, highest version first. The
// three programs must be in the same directory. If none is found, the error
// says what to install.
func FindBinaries() (binDir string, err error) {
	var candidates []string
	add := func(dir string) {
		if dir != "" && !slices.Contains(candidates, dir) {
			candidates = append(candidates, dir)
		}
	}
	for _, name := range binaryNames {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			add(filepath.Dir(real))
		}
		add(filepath.Dir(p))
	}
	dirs, _ := filepath.Glob(systemBinGlob)
	slices.SortFunc(dirs, func(a, b string) int {
		return -compareVersions(filepath.Base(filepath.Dir(a)), filepath.Base(filepath.Dir(b)))
	})
	for _, d := range dirs {
		add(d)
	}
	for _, dir := range candidates {
		if hasBinaries(dir) {
			return dir, nil
		}
	}
	return "", errNoBinaries
}

// hasBinaries reports whether dir holds all of binaryNames as executable files.
func hasBinaries(dir string) bool {
	for _, name := range binaryNames {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// compareVersions orders PostgreSQL version directory names such as "9.6",
// "15" and "16" numerically; names that are not versions sort first.
func compareVersions(a, b string) int {
	pa, pb := versionParts(a), versionParts(b)
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return strings.Compare(a, b)
}

// versionParts splits "9.6" into [9 6]; a part that is not a number counts as -1.
func versionParts(v string) []int {
	var parts []int
	for _, s := range strings.Split(v, ".") {
		n, err := strconv.Atoi(s)
		if err != nil {
			n = -1
		}
		parts = append(parts, n)
	}
	return parts
}
