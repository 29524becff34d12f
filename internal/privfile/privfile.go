// Package privfile writes files and makes directories that only their
// owner may read: the data directory's credentials, keys and certificates.
package privfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Dir makes dir and its missing parents, and makes dir 0700 (also when it
// existed with a wider mode). It refuses a dir that is owned by another
// user than this process's (effective) one, and a dir that is a symbolic
// link owned by neither root nor this process's user: that user could
// read what is put in it, or point it elsewhere. A local user could
// otherwise pre-create the data directory (/tmp/ap) and read every
// credential, key and event written there. The same holds for every
// directory above dir (checkAncestors): a user who owns one, or may write
// in one that is not sticky, could move dir away and put a directory of
// theirs in its place.
func Dir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := checkOwner(dir); err != nil {
		return err
	}
	if err := checkAncestors(dir); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// checkAncestors returns an error when a directory above dir, on the path
// as given or on the path its links lead to, could let another user
// replace dir: a symbolic link or a directory that neither root nor this
// process's user owns, or a directory that its group or others may write
// without the sticky bit (in /tmp, 1777, only dir's owner may rename it).
func checkAncestors(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("private directory %s: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("private directory %s: %w", dir, err)
	}
	euid := uint32(os.Geteuid())
	trusted := func(fi os.FileInfo) bool {
		uid, ok := ownerOf(fi)
		return !ok || uid == 0 || uid == euid
	}
	// The links on the path as given: their owner could point them elsewhere.
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		li, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("private directory %s: %w", dir, err)
		}
		if li.Mode()&os.ModeSymlink != 0 && !trusted(li) {
			uid, _ := ownerOf(li)
			return fmt.Errorf("private directory %s: %s above it is a symbolic link owned by uid %d, not root or this process's user (uid %d): refusing it, since its owner could point it elsewhere", dir, p, uid, euid)
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	// The directories it leads to: their owner, or anyone who may write in
	// one that is not sticky, could rename dir and put another in its place.
	for p := filepath.Dir(real); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("private directory %s: %w", dir, err)
		}
		if !trusted(fi) {
			uid, _ := ownerOf(fi)
			return fmt.Errorf("private directory %s: %s above it is owned by uid %d, not root or this process's user (uid %d): refusing it, since its owner could replace the directory (move it under a directory of ours)", dir, p, uid, euid)
		}
		if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0 {
			return fmt.Errorf("private directory %s: %s above it is writable by its group or others (mode %v) and not sticky: refusing it, since another user could replace the directory", dir, p, fi.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	return nil
}

// checkOwner returns an error when dir, or the symbolic link that dir is,
// belongs to someone Dir must not trust (see Dir).
func checkOwner(dir string) error {
	euid := uint32(os.Geteuid())
	li, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("private directory %s: %w", dir, err)
	}
	if li.Mode()&os.ModeSymlink != 0 {
		if uid, ok := ownerOf(li); ok && uid != 0 && uid != euid {
			return fmt.Errorf("private directory %s is a symbolic link owned by uid %d, not root or this process's user (uid %d): refusing it", dir, uid, euid)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("private directory %s: %w", dir, err)
	}
	if uid, ok := ownerOf(fi); ok && uid != euid {
		return fmt.Errorf("private directory %s is owned by uid %d, not this process's user (uid %d): refusing it, since its owner could read what is kept there (remove it, or chown it)", dir, uid, euid)
	}
	return nil
}

// ownerOf returns fi's owner, ok false where the system does not say.
func ownerOf(fi os.FileInfo) (uid uint32, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}

// Write writes b to path, mode 0600, atomically: a temporary file beside
// it, synced, then renamed over path, so that a reader sees the old
// content or the new, never a part; the directory is synced after the
// rename, so that once Write returns the new content survives a crash of
// the machine (a consumer's replay memory relies on it).
func Write(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// A temporary file left by a crash may be there with a wider mode.
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SyncDir makes a rename or a new file in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Create opens path for writing, mode 0600, emptied: a new file, or one of
// this process's user made 0600 again. It refuses a symbolic link at path
// (a local user who planted one would have us write over its target) and a
// file another user owns (who could read what is written there). A device
// or a pipe of root's or ours (/dev/null) is opened as it is: neither its
// mode nor its content is a file's.
func Create(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("create %s: it is a symbolic link: refusing to write through it", path)
	}
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	fi, err := f.Stat()
	regular := err == nil && fi.Mode().IsRegular()
	if err == nil {
		euid := uint32(os.Geteuid())
		if uid, ok := ownerOf(fi); ok && uid != euid && (regular || uid != 0) {
			err = fmt.Errorf("it is owned by uid %d, not this process's user (uid %d): refusing to write to it", uid, euid)
		}
	}
	if err == nil && regular {
		err = f.Chmod(0o600) // an older file may have a wider mode
	}
	if err == nil && regular {
		err = f.Truncate(0)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return f, nil
}
