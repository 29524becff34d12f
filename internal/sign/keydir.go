package sign

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/auditpipe/auditpipe/internal/ident"
)

// ErrNotEnrolled: a KeyDir holds no key for the name asked.
var ErrNotEnrolled = errors.New("not enrolled")

// KeyDir is a directory of enrolled public keys, one file per name:
// DIR/<name>.pub (PEM or base64, as LoadPublicKey reads). It is how the
// control plane knows each host agent's key: an administrator enrolls a
// host by putting its public key there (Enroll, `auditpipe agent enroll`)
// and revokes it by removing the file, as a Salt master accepts its
// minions' keys into a directory named by minion id. Lookups read the
// file as it is now (its parsed key is cached while its bytes stay the
// same), so an enrollment, a replacement or a removal takes effect at the
// next message, without a restart. It is safe for concurrent use.
type KeyDir struct {
	dir string

	mu    sync.Mutex
	cache map[string]keyDirEntry
}

type keyDirEntry struct {
	raw []byte
	pub ed25519.PublicKey
}

// maxKeyFileBytes bounds what a lookup reads of a key file: a PEM public
// key is 113 bytes.
const maxKeyFileBytes = 4 << 10

// NewKeyDir returns the key directory at dir (which need not exist yet:
// then every name is not enrolled).
func NewKeyDir(dir string) *KeyDir {
	return &KeyDir{dir: dir, cache: map[string]keyDirEntry{}}
}

// Dir returns the directory.
func (d *KeyDir) Dir() string { return d.dir }

// KeyPath returns the file of name's key in dir, or an error when name
// cannot be a key's name.
func KeyPath(dir, name string) (string, error) {
	if !ident.IsHost(name) {
		return "", fmt.Errorf("sign: %q is not a host name (letters, digits and ._-, at most 253)", name)
	}
	return filepath.Join(dir, name+".pub"), nil
}

// Key returns the key enrolled for name. The error wraps ErrNotEnrolled
// when there is none (or name cannot be one).
//
// The file is read at every lookup, not trusted by its size and
// modification time: a replaced key of the same size (every PEM Ed25519
// key is) with the old file's mtime (cp -p, rsync -a, a filesystem of
// one-second times) would otherwise stay trusted.
func (d *KeyDir) Key(name string) (ed25519.PublicKey, error) {
	if d == nil || d.dir == "" {
		return nil, fmt.Errorf("host %q: no directory of enrolled host keys configured: %w", name, ErrNotEnrolled)
	}
	path, err := KeyPath(d.dir, name)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrNotEnrolled)
	}
	raw, err := readKeyFile(d.dir, path)
	if errors.Is(err, fs.ErrNotExist) {
		d.mu.Lock()
		delete(d.cache, name)
		d.mu.Unlock()
		return nil, fmt.Errorf("host %q: no key in %s: %w", name, d.dir, ErrNotEnrolled)
	}
	var distrust *untrustedError
	if errors.As(err, &distrust) {
		return nil, fmt.Errorf("host %q: %w: %w", name, err, ErrNotEnrolled)
	}
	if err != nil {
		return nil, fmt.Errorf("sign: enrolled key of %s: %w", name, err)
	}
	d.mu.Lock()
	e, ok := d.cache[name]
	d.mu.Unlock()
	if ok && bytes.Equal(e.raw, raw) {
		return e.pub, nil
	}
	pub, err := ParsePublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("sign: public key %s: %w", path, err)
	}
	d.mu.Lock()
	d.cache[name] = keyDirEntry{raw: raw, pub: pub}
	d.mu.Unlock()
	return pub, nil
}

// readKeyFile reads an enrolled key file, at most maxKeyFileBytes, and
// checks that neither it nor its directory may be changed by others than
// root or this process's user (an *untrustedError).
func readKeyFile(dir, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The file opened (a symlink followed: a Kubernetes Secret's files
	// are), not the name, so that what is checked is what is read.
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if why := untrusted(fi, uint32(os.Geteuid())); why != "" {
		return nil, &untrustedError{path: path, why: why}
	}
	if err := checkKeyDir(dir); err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxKeyFileBytes {
		return nil, fmt.Errorf("%s: more than %d bytes: not a public key", path, maxKeyFileBytes)
	}
	return raw, nil
}

// untrustedError: a key file or directory others may change.
type untrustedError struct{ path, why string }

func (e *untrustedError) Error() string {
	return fmt.Sprintf("%s is %s: its keys are not trusted (chmod go-w it; chown it to root)", e.path, e.why)
}

// checkKeyDir checks that others than root or this process's user cannot
// add, replace or remove keys in dir: its mode and owner, unless it is on
// a read-only mount (a Kubernetes Secret volume's directory is 1777).
func checkKeyDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	why := untrusted(fi, uint32(os.Geteuid()))
	if why == "" {
		return nil
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(dir, &sfs); err == nil && sfs.Flags&stRDOnly != 0 {
		return nil
	}
	return &untrustedError{path: dir, why: why}
}

// stRDOnly is statfs(2)'s ST_RDONLY: a read-only mount.
const stRDOnly = 0x1

// untrusted says why fi (a key file or its directory) may be changed by
// others than its owner, root or the user euid, or "" when it may not:
// it is writable by its group or others (a sticky directory too: another
// user can still add a key of a host not enrolled yet), or owned by
// another user.
func untrusted(fi fs.FileInfo, euid uint32) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && st.Uid != euid {
		return fmt.Sprintf("owned by uid %d, not root or this process's user", st.Uid)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Sprintf("mode %v: writable by its group or others", perm)
	}
	return ""
}

// Enroll writes pub as name's key in dir (created 0755 when missing; the
// file 0644: a public key, which the policy, scheduler and indexer
// services read as their own user while an administrator enrolls it as
// root). It refuses a directory that KeyDir would not trust. Enrolling the key already enrolled changes nothing; another
// key for an enrolled name is refused: remove the file first (that is
// revoking the old key).
func Enroll(dir, name string, pub ed25519.PublicKey) (path string, err error) {
	path, err = KeyPath(dir, name)
	if err != nil {
		return "", err
	}
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("sign: enroll %s: a public key of %d bytes", name, len(pub))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("sign: enroll %s: %w", name, err)
	}
	if err := checkKeyDir(dir); err != nil {
		return "", fmt.Errorf("sign: enroll %s: %w", name, err)
	}
	if old, err := LoadPublicKey(path); err == nil {
		if bytes.Equal(old, pub) {
			return path, nil
		}
		return "", fmt.Errorf("sign: %s is enrolled with another key (%s, not %s): remove %s first to replace it", name, KeyID(old), KeyID(pub), path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	b, err := encodePublicKey(pub)
	if err != nil {
		return "", err
	}
	return path, writeNew(path, b, 0o644)
}
