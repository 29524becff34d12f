package builder

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// Names resolves numeric user and group ids to names, from passwd(5) and
// group(5) files. A file is read at start and read again when an id is
// not found in it and the file changed since (its inode, size or
// modification time): the host agent creates an operator's user after the
// collector started, and that user's records must resolve (their auid
// names the login, which finds the grant). It is safe for concurrent use.
type Names struct {
	users, groups idFile
}

// idFile is one id file's names and what the file was when read.
type idFile struct {
	path string
	cur  atomic.Pointer[idMap]
}

type idMap struct {
	ids   map[uint64]string
	ino   uint64
	size  int64
	mtime time.Time
}

// LoadNames reads a passwd and a group file; an empty path skips that file.
func LoadNames(passwdPath, groupPath string) (*Names, error) {
	n := &Names{users: idFile{path: passwdPath}, groups: idFile{path: groupPath}}
	if err := n.users.load(); err != nil {
		return nil, fmt.Errorf("builder: passwd: %w", err)
	}
	if err := n.groups.load(); err != nil {
		return nil, fmt.Errorf("builder: group: %w", err)
	}
	return n, nil
}

// NewNames builds a resolver from maps (tests, and hosts without files).
func NewNames(users, groups map[uint64]string) *Names {
	n := &Names{}
	n.users.cur.Store(&idMap{ids: users})
	n.groups.cur.Store(&idMap{ids: groups})
	return n
}

// User returns the name of uid.
func (n *Names) User(uid uint64) (string, bool) {
	if n == nil {
		return "", false
	}
	return n.users.lookup(uid)
}

// Group returns the name of gid.
func (n *Names) Group(gid uint64) (string, bool) {
	if n == nil {
		return "", false
	}
	return n.groups.lookup(gid)
}

// Refresh reads the files again that changed since they were read (their
// inode, size or modification time), and reports whether it read any. A
// lookup reads a file again only for an id it does not hold, so without
// Refresh a user deleted from the file keeps its name, and a user given
// its uid afterwards would be found under that name. The collector calls
// it at each tick (once a second).
func (n *Names) Refresh() bool {
	if n == nil {
		return false
	}
	u := n.users.refresh()
	g := n.groups.refresh()
	return u || g
}

// refresh reads the file again if it changed; a file that became
// unreadable keeps the names last read.
func (f *idFile) refresh() bool {
	m := f.cur.Load()
	if m == nil || f.path == "" {
		return false
	}
	fi, err := os.Stat(f.path)
	if err != nil || sameFile(m, fi) {
		return false
	}
	return f.load() == nil
}

// lookup finds id; not found, it reads the file again if it changed. A
// file that became unreadable keeps the names last read.
func (f *idFile) lookup(id uint64) (string, bool) {
	m := f.cur.Load()
	if m == nil {
		return "", false
	}
	if s, ok := m.ids[id]; ok || f.path == "" {
		return s, ok
	}
	fi, err := os.Stat(f.path)
	if err != nil || sameFile(m, fi) {
		return "", false
	}
	if err := f.load(); err != nil {
		return "", false
	}
	s, ok := f.cur.Load().ids[id]
	return s, ok
}

func sameFile(m *idMap, fi os.FileInfo) bool {
	return fileIno(fi) == m.ino && fi.Size() == m.size && fi.ModTime().Equal(m.mtime)
}

// load reads the file (none: no names) and publishes what it holds.
func (f *idFile) load() error {
	if f.path == "" {
		f.cur.Store(&idMap{ids: map[uint64]string{}})
		return nil
	}
	fi, err := os.Stat(f.path)
	if err != nil {
		return err
	}
	ids, err := loadIDFile(f.path)
	if err != nil {
		return err
	}
	f.cur.Store(&idMap{ids: ids, ino: fileIno(fi), size: fi.Size(), mtime: fi.ModTime()})
	return nil
}

// loadIDFile reads name:x:id:… lines; the first name of an id wins.
func loadIDFile(path string) (map[uint64]string, error) {
	m := map[uint64]string{}
	if path == "" {
		return m, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		parts := bytes.SplitN(line, []byte(":"), 4)
		if len(parts) < 3 {
			continue
		}
		id, err := strconv.ParseUint(string(parts[2]), 10, 32)
		if err != nil {
			continue
		}
		if _, dup := m[id]; !dup {
			m[id] = string(parts[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return m, nil
}

// fileIno is the file's inode number (0 where the platform has none).
func fileIno(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
