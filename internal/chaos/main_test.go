package chaos_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jiaoliu/jiaoliu/internal/pgtest"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// serverBin is the server program built once by TestMain.
var serverBin string

// workDir holds the binary and the embedded template; removed after the tests.
var workDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	workDir = dir
	defer func() {
		stopLeftovers()
		os.RemoveAll(dir)
	}()
	serverBin = filepath.Join(dir, "server")
	begin := time.Now()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"build", "-o", serverBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, gobin, append(args, "github.com/jiaoliu/jiaoliu/server")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: build the server: %v\n%s", err, out)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "chaos: built the server (race detector: %v) in %v\n", raceEnabled, time.Since(begin).Round(time.Millisecond))
	}
	return pgtest.Run(m, postgres.Migrate, postgres.CheckScopeCopies)
}

// iterations returns CHAOS_ITERATIONS, or def in short mode.
func iterations(def int) int {
	if v, err := strconv.Atoi(os.Getenv("CHAOS_ITERATIONS")); err == nil && v > 0 {
		return v
	}
	return def
}

// seed returns CHAOS_SEED, or one from the clock; tests print it so a run can be repeated.
func seed() uint64 {
	if v, err := strconv.ParseUint(os.Getenv("CHAOS_SEED"), 10, 64); err == nil {
		return v
	}
	return uint64(time.Now().UnixNano())
}

// template is a data directory of the embedded PostgreSQL, initialized, migrated and
// cleanly shut down once, that tests copy instead of running initdb again.
var (
	templateOnce sync.Once
	templateDir  string
	templateErr  error
)

// embeddedTemplate returns the template data directory, creating it on first use.
func embeddedTemplate(tb testing.TB) string {
	tb.Helper()
	templateOnce.Do(func() {
		dir := filepath.Join(workDir, "template")
		p := &serverProc{tb: tb, dataDir: dir, logPath: filepath.Join(workDir, "template.log")}
		if templateErr = p.Start(); templateErr != nil {
			return
		}
		if templateErr = p.Term(30 * time.Second); templateErr != nil {
			return
		}
		templateDir = dir
	})
	if templateErr != nil {
		tb.Fatalf("embedded template: %v", templateErr)
	}
	return templateDir
}

// newDataDir returns a fresh copy of the template in a directory of the test.
func newDataDir(tb testing.TB) string {
	tb.Helper()
	src := embeddedTemplate(tb)
	dst, err := os.MkdirTemp(workDir, "data-")
	if err != nil {
		tb.Fatal(err)
	}
	// cp -a keeps the owner (the postgres OS user when the tests run as root).
	if out, err := exec.Command("cp", "-a", src+"/.", dst).CombinedOutput(); err != nil {
		tb.Fatalf("copy the template: %v: %s", err, out)
	}
	tb.Cleanup(func() {
		stopPostmaster(dst)
		os.RemoveAll(dst)
	})
	return dst
}
