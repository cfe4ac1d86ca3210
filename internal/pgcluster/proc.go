package pgcluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pidFile is the content of the postmaster.pid lock file that matters here:
// its first line is the postmaster's process id, its second the data directory.
type pidFile struct {
	pid     int
	dataDir string
}

// readPIDFile parses dataDir/postmaster.pid. It returns an error wrapping
// fs.ErrNotExist when the file does not exist.
func readPIDFile(dataDir string) (pidFile, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return pidFile{}, fmt.Errorf("read postmaster.pid: %w", err)
	}
	lines := strings.SplitN(string(b), "\n", 3)
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		// A postmaster that crashed while writing the file leaves it truncated.
		return pidFile{}, nil
	}
	pf := pidFile{pid: pid}
	if len(lines) > 1 {
		pf.dataDir = strings.TrimSpace(lines[1])
	}
	return pf, nil
}

// procMounted reports whether /proc describes this system's processes.
func procMounted() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// procStat returns the state letter and parent pid of pid from /proc/<pid>/stat.
func procStat(pid int) (state byte, ppid int, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name in parentheses may itself contain spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 2 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: too few fields", pid)
	}
	ppid, err = strconv.Atoi(fields[1])
	if err != nil {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return fields[0][0], ppid, nil
}

// processAlive reports whether pid is a running process. A zombie counts as
// dead: a killed postmaster is reparented to init, which need not reap it, and
// the signal probe alone would call it alive forever.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	state, _, err := procStat(pid)
	if err != nil {
		// Without /proc the signal probe is all there is to go on.
		return !errors.Is(err, fs.ErrNotExist) || !procMounted()
	}
	return state != 'Z' && state != 'X'
}

// isPostgres reports whether pid runs the postgres program, to tell a live
// postmaster from an unrelated process that reused its pid. Without /proc it
// assumes so.
func isPostgres(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return true
	}
	return strings.TrimSpace(string(b)) == "postgres"
}

// childPIDs returns the live children of pid, found through /proc; it returns
// nil where /proc is not available.
func childPIDs(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var children []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		state, ppid, err := procStat(n)
		if err != nil || ppid != pid || state == 'Z' || state == 'X' {
			continue
		}
		children = append(children, n)
	}
	return children
}

// waitDead polls until none of pids is alive or the timeout passes; it
// returns the pids still alive.
func waitDead(pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		var alive []int
		for _, p := range pids {
			if processAlive(p) {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		pids = alive
		time.Sleep(20 * time.Millisecond)
	}
}

// tailFile returns up to the last n lines of the file at path, for error
// messages; it returns a note instead when the file cannot be read.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	const maxBytes = 16 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxBytes {
		if _, err := f.Seek(fi.Size()-maxBytes, 0); err != nil {
			return fmt.Sprintf("(cannot read %s: %v)", path, err)
		}
	}
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
