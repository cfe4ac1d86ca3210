// Package pgcluster runs a private PostgreSQL server from the machine's
// binaries, for tests and for an embedded development database.
//
// A cluster lives in a directory of its own: the data in Dir/pgdata, the
// server log in Dir/postgres.log and the Unix socket in Dir/run (or in a
// short directory under /tmp when that path would be too long for a socket).
// The server listens on that socket only, with trust authentication for the
// superuser "postgres". When the process runs as root, the server programs
// run as the unprivileged "postgres" OS user, since initdb refuses root.
//
// The package works on Unix systems; it reads /proc on Linux to tell a
// crashed server from a live one.
package pgcluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SuperUser is the name of the database superuser that initdb creates and
// that DSN connects as, whichever OS user runs the server.
const SuperUser = "postgres"

// port numbers the socket file (.s.PGSQL.5432). The server listens on no TCP
// port and the socket directory is private, so a fixed number cannot clash.
const port = 5432

// maxSocketPath is the longest socket file path the kernel accepts
// (sizeof(sun_path) minus the terminating NUL on Linux).
const maxSocketPath = 107

// Timeouts for the server programs; pg_ctl gets the same number of seconds.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 60 * time.Second
	// exitTimeout bounds the wait for a postmaster that removed its
	// postmaster.pid, the last thing it does before it exits.
	exitTimeout = 5 * time.Second
)

// confFile is written into the data directory on every start and included
// from postgresql.conf, so the settings follow Options and never need shell
// quoting on a pg_ctl -o command line.
const confFile = "pgcluster.conf"

// includeLine is appended once to postgresql.conf after initdb.
const includeLine = "include_if_exists = '" + confFile + "'"

// Log attribute keys.
const (
	logKeyDir       = "dir"
	logKeyBinDir    = "bin_dir"
	logKeySocketDir = "socket_dir"
	logKeyPID       = "pid"
	logKeyDuration  = "duration"
	logKeyPaths     = "paths"
)

// Options configures a cluster.
type Options struct {
	// Dir is the root of the cluster's files: the data directory Dir/pgdata,
	// the server log Dir/postgres.log and, when the path is short enough, the
	// socket directory Dir/run. It is created if missing.
	Dir string

	// Fsync makes the server flush its writes to disk. Tests leave it false,
	// which also turns off synchronous_commit and full_page_writes and makes
	// initdb skip its final sync: a crash of the machine may then corrupt
	// the cluster, which a throwaway cluster does not mind.
	Fsync bool

	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
}

// Cluster is a PostgreSQL server running on a private data directory. Its
// methods are safe for concurrent use.
type Cluster struct {
	opts      Options
	log       *slog.Logger
	binDir    string
	dir       string // absolute Options.Dir
	dataDir   string
	logFile   string
	sockDir   string
	sockInTmp bool    // sockDir is the short fallback under /tmp, removed by Stop
	runAs     *osUser // nil: run as this process's user

	mu sync.Mutex // serializes Start, Stop, Restart and Kill
}

// Start starts a server on opts.Dir and waits until it accepts connections.
//
// It runs initdb first when Dir/pgdata holds no cluster yet (clearing what a
// failed initdb may have left there). If a previous run left its server
// running on the same data directory, Start stops that server and starts
// anew, so that the settings are the ones given here; if a previous server
// crashed and left a stale postmaster.pid, Start removes it. When the server
// fails to start, the error includes the tail of Dir/postgres.log.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("start postgres: Options.Dir is empty")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	binDir, err := FindBinaries()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	runAs, err := lookupServerUser()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c := &Cluster{
		opts:    opts,
		log:     opts.Logger,
		binDir:  binDir,
		dir:     dir,
		dataDir: filepath.Join(dir, "pgdata"),
		logFile: filepath.Join(dir, "postgres.log"),
		sockDir: filepath.Join(dir, "run"),
		runAs:   runAs,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if len(c.socketPath()) > maxSocketPath {
		sum := sha256.Sum256([]byte(dir))
		c.sockDir = "/tmp/pgsock-" + hex.EncodeToString(sum[:6])
		c.sockInTmp = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// DSN returns a lib/pq key=value connection string for database dbname,
// connecting as SuperUser over the cluster's Unix socket without TLS.
func (c *Cluster) DSN(dbname string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable connect_timeout=5",
		quoteDSN(c.sockDir), port, quoteDSN(SuperUser), quoteDSN(dbname))
}

// Stop shuts the server down with pg_ctl stop -m fast, which ends the open
// sessions, and waits until it has exited. Stopping a cluster that is not
// running, including one that Kill crashed, does nothing and returns nil.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout+10*time.Second)
	defer cancel()
	return c.stop(ctx)
}

// Restart stops the server, if it runs, and starts it again on the same
// data, with the recovery that Start performs after a crash.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stop(ctx); err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	if err := c.start(ctx); err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	return nil
}

// Kill crashes the server for fault-injection tests: it sends SIGKILL to the
// postmaster named on the first line of postmaster.pid and waits until the
// postmaster and its children are gone, leaving the stale postmaster.pid
// behind as a real crash would. Start or Restart then recovers the cluster.
// Kill returns an error if the server is not running.
func (c *Cluster) Kill() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	pf, err := readPIDFile(c.dataDir)
	if err != nil {
		return fmt.Errorf("kill postgres: %w", err)
	}
	if !processAlive(pf.pid) {
		return fmt.Errorf("kill postgres: server (pid %d) is not running", pf.pid)
	}
	children := childPIDs(pf.pid)
	if err := syscall.Kill(pf.pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill postgres: pid %d: %w", pf.pid, err)
	}
	if left := waitDead([]int{pf.pid}, 10*time.Second); len(left) > 0 {
		return fmt.Errorf("kill postgres: pid %d still alive after SIGKILL", pf.pid)
	}
	// The children notice the postmaster's death and exit by themselves; wait
	// for them, since a new postmaster refuses to start while they still hold
	// the old shared memory.
	if left := waitDead(children, 5*time.Second); len(left) > 0 {
		for _, p := range left {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if left := waitDead(left, 5*time.Second); len(left) > 0 {
			return fmt.Errorf("kill postgres: server processes %v still alive", left)
		}
	}
	c.log.Info("postgres killed", logKeyPID, pf.pid)
	return nil
}

// start brings the server up; c.mu must be held.
func (c *Cluster) start(ctx context.Context) error {
	begin := time.Now()
	if err := c.prepareDirs(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		if err := c.initdb(ctx); err != nil {
			return fmt.Errorf("start postgres: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	if err := c.writeConfig(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	if err := c.recoverPrevious(ctx); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	out, err := c.run(ctx, "pg_ctl", "start", "-D", c.dataDir, "-l", c.logFile,
		"-w", "-t", strconv.Itoa(int(startTimeout/time.Second)), "-s")
	if err != nil {
		// pg_ctl gave up or was cancelled; do not leave a half-started server behind.
		if pf, perr := readPIDFile(c.dataDir); perr == nil && processAlive(pf.pid) {
			_ = syscall.Kill(pf.pid, syscall.SIGQUIT)
		}
		return fmt.Errorf("start postgres: pg_ctl start: %w: %s\n--- tail of %s ---\n%s",
			err, bytes.TrimSpace(out), c.logFile, tailFile(c.logFile, 30))
	}
	pf, _ := readPIDFile(c.dataDir)
	c.log.Info("postgres started", logKeyDir, c.dir, logKeyBinDir, c.binDir, logKeySocketDir, c.sockDir,
		logKeyPID, pf.pid, logKeyDuration, time.Since(begin))
	return nil
}

// stop shuts the server down if it runs; c.mu must be held.
func (c *Cluster) stop(ctx context.Context) error {
	pf, err := readPIDFile(c.dataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c.removeTmpSocketDir()
	case err != nil:
		return fmt.Errorf("stop postgres: %w", err)
	}
	if !processAlive(pf.pid) {
		// Crashed: leave the stale postmaster.pid for start to clear. Asking
		// pg_ctl would fail, or wait forever on a zombie postmaster.
		return c.removeTmpSocketDir()
	}
	begin := time.Now()
	if err := c.pgCtlStop(ctx, pf.pid); err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	c.log.Info("postgres stopped", logKeyDir, c.dir, logKeyPID, pf.pid, logKeyDuration, time.Since(begin))
	return c.removeTmpSocketDir()
}

// pgCtlStop asks pg_ctl for a fast shutdown of the server whose postmaster is
// pid and waits for it. A server already shutting down (a previous run stopped
// it and was killed before it finished) can remove its postmaster.pid between
// the caller's reading it and pg_ctl's, and pg_ctl then fails with "PID file
// does not exist": that server counts as stopped once its postmaster is gone.
func (c *Cluster) pgCtlStop(ctx context.Context, pid int) error {
	out, err := c.run(ctx, "pg_ctl", "stop", "-D", c.dataDir, "-m", "fast",
		"-w", "-t", strconv.Itoa(int(stopTimeout/time.Second)), "-s")
	if err == nil {
		return nil
	}
	if _, perr := readPIDFile(c.dataDir); errors.Is(perr, fs.ErrNotExist) {
		if alive := waitDead([]int{pid}, exitTimeout); len(alive) == 0 {
			c.log.Info("postgres: the server stopped by itself before pg_ctl could stop it", logKeyPID, pid)
			return nil
		}
	}
	return fmt.Errorf("pg_ctl stop: %w: %s", err, bytes.TrimSpace(out))
}

// prepareDirs creates the cluster's directories and log file, owned by the
// server user, and lets that user reach them.
func (c *Cluster) prepareDirs() error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", c.dir, err)
	}
	if err := makePrivateDir(c.dataDir, c.runAs); err != nil {
		return err
	}
	if err := makePrivateDir(c.sockDir, c.runAs); err != nil {
		return err
	}
	if c.runAs == nil {
		return nil
	}
	changed, err := makeTraversable(c.dir, c.runAs)
	if len(changed) > 0 {
		c.log.Info("postgres: made directories traversable for the server user", logKeyPaths, changed)
	}
	if err != nil {
		return err
	}
	// pg_ctl opens the log as the server user, which cannot create files in
	// the root-owned Dir.
	f, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", c.logFile, err)
	}
	f.Close()
	if err := os.Lchown(c.logFile, int(c.runAs.uid), int(c.runAs.gid)); err != nil {
		return fmt.Errorf("chown %s to %s: %w", c.logFile, c.runAs.name, err)
	}
	return nil
}

// initdb creates the cluster in c.dataDir, trying the C.UTF-8 locale first
// and plain C where that is not installed. Either way it collates with C: PostgreSQL
// 15 compares text under C by memcmp, and under any other collation, C.UTF-8 included,
// through strcoll on copies of both strings — at every step of every btree descent on
// a text column (the change log's (entity, id) key), every GIN entry of a scope token
// and every sort. C.UTF-8 orders UTF-8 text by code point, which is C's byte order,
// so no answer changes; a page of 51 records each probed in the change log by (entity,
// id) ran 12–38 % faster. Character classes (upper, lower, regular expressions) keep
// C.UTF-8's.
func (c *Cluster) initdb(ctx context.Context) error {
	begin := time.Now()
	var outs []string
	for _, locale := range []string{"C.UTF-8", "C"} {
		if err := clearDir(c.dataDir); err != nil {
			return fmt.Errorf("initdb: %w", err)
		}
		args := []string{"-D", c.dataDir, "-U", SuperUser, "--auth=trust", "--encoding=UTF8", "--locale=" + locale, "--lc-collate=C"}
		if !c.opts.Fsync {
			args = append(args, "--no-sync")
		}
		out, err := c.run(ctx, "initdb", args...)
		if err == nil {
			conf := filepath.Join(c.dataDir, "postgresql.conf")
			f, err := os.OpenFile(conf, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return fmt.Errorf("initdb: %w", err)
			}
			_, werr := fmt.Fprintf(f, "\n# Settings managed by the pgcluster Go package.\n%s\n", includeLine)
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				return fmt.Errorf("initdb: append to %s: %w", conf, werr)
			}
			c.log.Info("postgres cluster initialized", logKeyDir, c.dir, "locale", locale, logKeyDuration, time.Since(begin))
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("initdb: %w", ctx.Err())
		}
		outs = append(outs, fmt.Sprintf("--locale=%s: %v: %s", locale, err, bytes.TrimSpace(out)))
	}
	return fmt.Errorf("initdb failed:\n%s", strings.Join(outs, "\n"))
}

// writeConfig writes the settings that follow Options into the data directory.
func (c *Cluster) writeConfig() error {
	onOff := "off"
	if c.opts.Fsync {
		onOff = "on"
	}
	settings := []struct{ name, value string }{
		{"listen_addresses", quoteConf("")},
		{"port", strconv.Itoa(port)},
		{"unix_socket_directories", quoteConf(c.sockDir)},
		{"max_connections", "200"},
		{"shared_buffers", quoteConf("128MB")},
		{"fsync", onOff},
		{"synchronous_commit", onOff},
		{"full_page_writes", onOff},
	}
	var b strings.Builder
	b.WriteString("# Written by the pgcluster Go package on every start; edits are lost.\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "%s = %s\n", s.name, s.value)
	}
	return writeOwnedFile(filepath.Join(c.dataDir, confFile), []byte(b.String()), c.runAs)
}

// recoverPrevious deals with a server a previous run left behind: a live one
// on this data directory is stopped (so that it restarts with the current
// settings), and a stale postmaster.pid of a crashed one is removed together
// with its socket lock file, which postgres would otherwise trust as long as
// the dead postmaster lingers as a zombie.
func (c *Cluster) recoverPrevious(ctx context.Context) error {
	pf, err := readPIDFile(c.dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if processAlive(pf.pid) && isPostgres(pf.pid) && filepath.Clean(pf.dataDir) == c.dataDir {
		c.log.Info("postgres: stopping the server a previous run left running", logKeyPID, pf.pid)
		if err := c.pgCtlStop(ctx, pf.pid); err != nil {
			return fmt.Errorf("stop previous server (pid %d): %w", pf.pid, err)
		}
		return nil
	}
	c.log.Info("postgres: removing stale postmaster.pid", logKeyPID, pf.pid)
	stale := []string{
		filepath.Join(c.dataDir, "postmaster.pid"),
		c.socketPath(),
		c.socketPath() + ".lock",
	}
	for _, p := range stale {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", p, err)
		}
	}
	return nil
}

// run runs one of the server programs as the server user, in the data
// directory, and returns its combined output.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dataDir
	cmd.Env = c.env()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// The postmaster that pg_ctl leaves running must not hold our pipe open;
	// pg_ctl redirects it to the log, and WaitDelay guards against surprises.
	cmd.WaitDelay = 5 * time.Second
	if c.runAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.runAs.credential()}
	}
	err := cmd.Run()
	return out.Bytes(), err
}

// env returns the environment for the server programs: this process's, less
// the PG* variables that would redirect them, with HOME set to a directory
// the server user can read.
func (c *Cluster) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || (c.runAs != nil && strings.HasPrefix(kv, "HOME=")) {
			continue
		}
		env = append(env, kv)
	}
	if c.runAs != nil {
		env = append(env, "HOME="+c.dataDir)
	}
	return env
}

// socketPath is the path of the server's socket file.
func (c *Cluster) socketPath() string {
	return filepath.Join(c.sockDir, ".s.PGSQL."+strconv.Itoa(port))
}

// removeTmpSocketDir removes the socket directory if it is the fallback
// under /tmp, which nothing else would clean up.
func (c *Cluster) removeTmpSocketDir() error {
	if !c.sockInTmp {
		return nil
	}
	if err := os.RemoveAll(c.sockDir); err != nil {
		return fmt.Errorf("remove socket directory: %w", err)
	}
	return nil
}

// clearDir removes everything inside dir, keeping dir itself.
func clearDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("clear %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("clear %s: %w", dir, err)
		}
	}
	return nil
}

// quoteDSN quotes a value for a lib/pq key=value connection string.
func quoteDSN(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\v\f'\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

// quoteConf quotes a string value for postgresql.conf.
func quoteConf(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `''`)
	return "'" + r.Replace(v) + "'"
}
