package builder

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Names resolves numeric user and group ids to names, from passwd(5) and
// group(5) files read once at start.
type Names struct {
	users  map[uint64]string
	groups map[uint64]string
}

// LoadNames reads a passwd and a group file; an empty path skips that file.
func LoadNames(passwdPath, groupPath string) (*Names, error) {
	n := &Names{}
	var err error
	if n.users, err = loadIDFile(passwdPath); err != nil {
		return nil, fmt.Errorf("builder: passwd: %w", err)
	}
	if n.groups, err = loadIDFile(groupPath); err != nil {
		return nil, fmt.Errorf("builder: group: %w", err)
	}
	return n, nil
}

// NewNames builds a resolver from maps (tests, and hosts without files).
func NewNames(users, groups map[uint64]string) *Names {
	return &Names{users: users, groups: groups}
}

// User returns the name of uid.
func (n *Names) User(uid uint64) (string, bool) {
	if n == nil {
		return "", false
	}
	s, ok := n.users[uid]
	return s, ok
}

// Group returns the name of gid.
func (n *Names) Group(gid uint64) (string, bool) {
	if n == nil {
		return "", false
	}
	s, ok := n.groups[gid]
	return s, ok
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
