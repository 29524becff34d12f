package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// readPasswd parses a passwd file.
func readPasswd(path string) ([]User, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	var users []User
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) != 7 || strings.HasPrefix(f[0], "#") {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		users = append(users, User{Name: f[0], UID: uid, GID: gid, Gecos: f[4], Home: f[5], Shell: f[6]})
	}
	return users, sc.Err()
}

func lookupIn(users []User, name string) (User, bool) {
	i := slices.IndexFunc(users, func(u User) bool { return u.Name == name })
	if i < 0 {
		return User{}, false
	}
	return users[i], true
}

// writeAtomic writes data to path through a temporary file in the same
// directory (its name has a dot: sudo and PAM never read it) and a
// rename, so readers see the old file or the new one.
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// sudoersDir is a sudoers.d directory; both hosts install fragments the
// same way, checked by visudo when one is given.
type sudoersDir struct {
	dir    string
	visudo string // "": not checked (the rendering host without sudo installed)
	run    func(name string, args ...string) error
}

func (d sudoersDir) list(prefix string) ([]string, error) {
	ents, err := os.ReadDir(d.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sudoers: %w", err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) && !strings.Contains(e.Name(), ".") && e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func (d sudoersDir) read(name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sudoers: %w", err)
	}
	return b, nil
}

// install writes content to a temporary file of the directory (a name
// with a dot, which sudo skips), checks it with visudo -cf, and renames
// it into place: a fragment that does not check is never read by sudo.
func (d sudoersDir) install(name string, content []byte) error {
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return fmt.Errorf("sudoers: %w", err)
	}
	tmp, err := os.CreateTemp(d.dir, "."+name+".*.tmp")
	if err != nil {
		return fmt.Errorf("sudoers: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(content)
	if err == nil {
		err = tmp.Chmod(0o440)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sudoers: %w", err)
	}
	if d.visudo != "" {
		if err := d.run(d.visudo, "-c", "-f", tmp.Name()); err != nil {
			return fmt.Errorf("sudoers: the fragment does not check (visudo -cf): %w", err)
		}
	}
	if err := os.Rename(tmp.Name(), filepath.Join(d.dir, name)); err != nil {
		return fmt.Errorf("sudoers: %w", err)
	}
	return nil
}

func (d sudoersDir) remove(name string) error {
	if err := os.Remove(filepath.Join(d.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sudoers: %w", err)
	}
	return nil
}

// pamFile is the agent's PAM file.
type pamFile string

func (p pamFile) users() ([]string, error) {
	b, err := os.ReadFile(string(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tty audit: %w", err)
	}
	return parseTTYPAM(b), nil
}

func (p pamFile) set(users []string) error {
	if err := os.MkdirAll(filepath.Dir(string(p)), 0o755); err != nil {
		return fmt.Errorf("tty audit: %w", err)
	}
	if err := writeAtomic(string(p), ttyPAM(users), 0o644); err != nil {
		return fmt.Errorf("tty audit: %w", err)
	}
	return nil
}

// writeKeys replaces home/.ssh/authorized_keys through an os.Root on the
// home directory, so that a symlink the user planted there cannot send
// the write elsewhere; chown (uid, gid) unless uid < 0.
func writeKeys(home string, uid, gid int, keys []string) error {
	root, err := os.OpenRoot(home)
	if err != nil {
		return fmt.Errorf("ssh keys: %w", err)
	}
	defer root.Close()
	if err := root.Mkdir(".ssh", 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("ssh keys: %w", err)
	}
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('\n')
	}
	tmp := ".ssh/.authorized_keys.tmp"
	_ = root.Remove(tmp)
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("ssh keys: %w", err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && uid >= 0 {
		err = root.Lchown(".ssh", uid, gid)
		if err == nil {
			err = root.Lchown(tmp, uid, gid)
		}
	}
	if err == nil {
		err = root.Rename(tmp, ".ssh/authorized_keys")
	}
	if err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("ssh keys: %w", err)
	}
	return nil
}
