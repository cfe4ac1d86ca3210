package pgcluster

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// serverUserName is the OS account the server runs as when this process is
// root, because initdb and postgres refuse to run as root.
const serverUserName = "postgres"

// osUser is an unprivileged OS account to run the server programs as.
type osUser struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32
}

// lookupServerUser returns the account to run the server as: nil (this
// process's own user) unless the process is root, then the postgres account.
func lookupServerUser() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(serverUserName)
	if err != nil {
		return nil, fmt.Errorf("running as root needs the unprivileged %q OS user to run PostgreSQL "+
			"(initdb refuses root); install the postgresql package or create the user: %w", serverUserName, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse uid of %q: %w", serverUserName, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse gid of %q: %w", serverUserName, err)
	}
	su := &osUser{name: u.Username, uid: uint32(uid), gid: uint32(gid), groups: []uint32{uint32(gid)}}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil && !slices.Contains(su.groups, uint32(g)) {
				su.groups = append(su.groups, uint32(g))
			}
		}
	}
	return su, nil
}

// credential returns the process credential for running as u.
func (u *osUser) credential() *syscall.Credential {
	return &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: u.groups}
}

// makePrivateDir creates dir with mode 0700 if it is missing and, when u is
// not nil, gives it to u. It refuses a symbolic link, so that a planted link
// in a shared directory such as /tmp cannot redirect the chown.
func makePrivateDir(dir string, u *osUser) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if u != nil {
		if err := os.Lchown(dir, int(u.uid), int(u.gid)); err != nil {
			return fmt.Errorf("chown %s to %s: %w", dir, u.name, err)
		}
	}
	return nil
}

// makeTraversable makes sure u can search dir and each of its parents,
// adding only the one execute (search) bit that applies to u where it is
// missing: t.TempDir and os.MkdirTemp create 0700 directories that the
// server user could not otherwise pass through. It returns the directories it
// changed.
func makeTraversable(dir string, u *osUser) ([]string, error) {
	var changed []string
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return changed, fmt.Errorf("stat %s: %w", p, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return changed, fmt.Errorf("stat %s: no owner information", p)
		}
		var bit os.FileMode
		switch {
		case st.Uid == u.uid:
			bit = 0o100
		case slices.Contains(u.groups, st.Gid):
			bit = 0o010
		default:
			bit = 0o001
		}
		if fi.Mode().Perm()&bit == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|bit); err != nil {
				return changed, fmt.Errorf("let %s traverse %s: %w", u.name, p, err)
			}
			changed = append(changed, p)
		}
		if parent := filepath.Dir(p); parent == p {
			return changed, nil
		}
	}
}

// writeOwnedFile writes data to path with mode 0600 and, when u is not nil,
// gives the file to u.
func writeOwnedFile(path string, data []byte, u *osUser) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if u != nil {
		if err := os.Lchown(path, int(u.uid), int(u.gid)); err != nil {
			return fmt.Errorf("chown %s to %s: %w", path, u.name, err)
		}
	}
	return nil
}
