package chaos_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// adminPassword is the password of the admin user of every test server.
const adminPassword = "chaos-admin-secret"

// serverProc is the server program running as a child process, on a fixed loopback
// port, so that it can be killed and started again on the same data and address.
type serverProc struct {
	tb      testing.TB
	dataDir string   // DATA_DIR: embedded PostgreSQL in dataDir/postgres
	dsn     string   // DATABASE_URL (instead of dataDir)
	addr    string   // 127.0.0.1:port, chosen at the first start
	logPath string   // the child's stderr, appended over restarts
	env     []string // more environment
	// waitReady bounds a start (PostgreSQL crash recovery included).
	waitReady time.Duration

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	starts  int
}

var (
	procsMu sync.Mutex
	procs   []*serverProc
)

// newServer starts a server on a fresh database of the pgtest cluster.
func newServer(tb testing.TB, env ...string) *serverProc {
	tb.Helper()
	p := &serverProc{tb: tb, dsn: pgtestDSN(tb), env: env}
	p.logPath = filepath.Join(tb.TempDir(), "server.log")
	if err := p.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Cleanup() })
	return p
}

// newEmbeddedServer starts a server with its embedded PostgreSQL on a copy of the
// template data directory.
func newEmbeddedServer(tb testing.TB, env ...string) *serverProc {
	tb.Helper()
	p := &serverProc{tb: tb, dataDir: newDataDir(tb), env: env}
	p.logPath = filepath.Join(tb.TempDir(), "server.log")
	if err := p.Start(); err != nil {
		tb.Fatal(err)
	}
	// Registered after newDataDir's cleanup, so it runs first.
	tb.Cleanup(func() { p.Cleanup() })
	return p
}

// URL returns the server's base URL.
func (p *serverProc) URL() string { return "http://" + p.addr }

// Start starts the program and waits until /readyz answers.
func (p *serverProc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return errors.New("server already running")
	}
	if p.addr == "" {
		addr, err := freePort()
		if err != nil {
			return err
		}
		p.addr = addr
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.starts++
	fmt.Fprintf(logf, "\n===== chaos: start %d at %s =====\n", p.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(serverBin)
	cmd.Env = append(cleanEnv(), "ADDR="+p.addr, "DEMO=false", "ADMIN_PASSWORD="+adminPassword,
		"LOG_LEVEL=info", "NODE_ID=server-chaos")
	if p.dsn != "" {
		cmd.Env = append(cmd.Env, "DATABASE_URL="+p.dsn)
	} else {
		cmd.Env = append(cmd.Env, "DATA_DIR="+p.dataDir)
	}
	cmd.Env = append(cmd.Env, p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start server: %w", err)
	}
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(exited)
	}()
	limit := p.waitReady
	if limit == 0 {
		limit = 90 * time.Second
	}
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			p.cmd = nil
			return fmt.Errorf("server exited during start: %v\n%s", p.exitErr, tail(p.logPath, 40))
		default:
		}
		resp, err := client.Get("http://" + p.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("server not ready after %v\n%s", limit, tail(p.logPath, 40))
}

// Pid returns the process id of the running server, or 0.
func (p *serverProc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends SIGKILL and waits for the process to end.
func (p *serverProc) Kill() {
	p.signal(syscall.SIGKILL, 30*time.Second)
}

// Term sends SIGTERM and waits up to timeout for a clean exit; it returns an error
// for a non-zero exit status or a timeout (then the process is killed).
func (p *serverProc) Term(timeout time.Duration) error {
	return p.signal(syscall.SIGTERM, timeout)
}

// Signal sends sig without waiting.
func (p *serverProc) Signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

// Wait waits up to timeout for the process to end and returns its exit error.
func (p *serverProc) Wait(timeout time.Duration) error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		p.mu.Lock()
		p.cmd = nil
		p.mu.Unlock()
		return fmt.Errorf("server did not exit within %v", timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cmd = nil
	return p.exitErr
}

func (p *serverProc) signal(sig syscall.Signal, timeout time.Duration) error {
	p.Signal(sig)
	return p.Wait(timeout)
}

// Cleanup stops the server and the embedded PostgreSQL, and prints the tail of the
// server's log if the test failed.
func (p *serverProc) Cleanup() {
	if p.Pid() != 0 {
		if err := p.Term(30 * time.Second); err != nil {
			p.tb.Logf("server exit: %v", err)
		}
	}
	if p.dataDir != "" {
		stopPostmaster(p.dataDir)
	}
	if p.LogContains("WARNING: DATA RACE") {
		p.tb.Errorf("the server reported a data race (see %s)", p.logPath)
	}
	if p.tb.Failed() {
		p.tb.Logf("tail of the server log %s:\n%s", p.logPath, tail(p.logPath, 60))
	}
}

// LogContains reports whether the server's log contains s.
func (p *serverProc) LogContains(s string) bool {
	b, _ := os.ReadFile(p.logPath)
	return strings.Contains(string(b), s)
}

// pgDataDir is the data directory of the embedded PostgreSQL of a server's DATA_DIR.
func pgDataDir(dataDir string) string { return filepath.Join(dataDir, "postgres", "pgdata") }

// postmasterPID returns the pid in postmaster.pid, or 0.
func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(pgDataDir(dataDir), "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

// isPostgres reports whether pid is a live postgres process.
func isPostgres(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || !strings.Contains(s[:i], "(postgres") {
		return false
	}
	fields := strings.Fields(s[i+1:])
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// stopPostmaster stops a PostgreSQL a killed server left running in dataDir.
func stopPostmaster(dataDir string) {
	pid := postmasterPID(dataDir)
	if !isPostgres(pid) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	for i := 0; i < 200 && isPostgres(pid); i++ {
		time.Sleep(25 * time.Millisecond)
	}
	if isPostgres(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// stopLeftovers kills the servers and PostgreSQL servers that tests left running.
func stopLeftovers() {
	procsMu.Lock()
	defer procsMu.Unlock()
	for _, p := range procs {
		if pid := p.Pid(); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if p.dataDir != "" {
			stopPostmaster(p.dataDir)
		}
	}
}

// cleanEnv is this process's environment without the server's settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "ADDR", "DATABASE_URL", "DATA_DIR", "DEMO", "ADMIN_PASSWORD", "LOG_LEVEL", "NODE_ID":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// tail returns the last n lines of a file, each cut to 2,000 bytes.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	r := bufio.NewReaderSize(f, 1<<16)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			if len(line) > 2000 {
				line = line[:2000] + "…"
			}
			lines = append(lines, strings.TrimRight(line, "\n"))
			if len(lines) > n {
				lines = lines[1:]
			}
		}
		if err != nil {
			break
		}
	}
	return strings.Join(lines, "\n")
}

// withTimeout is a context bounded by d.
func withTimeout(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}
