package tail

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// fingerprintBytes is how many leading bytes of a file identify its content,
// beyond device and inode, so that a reused inode is not mistaken for the
// file that held it before.
const fingerprintBytes = 64

// Position is a place in a followed file. It is what the caller checkpoints
// (see Line.End) and hands back to Open after a restart. It is plain data and
// encodes to JSON.
type Position struct {
	// Path is the file's name when the position was taken. It is
	// informational: the file is found again by Dev, Inode and Fingerprint.
	Path string `json:"path"`
	// Dev and Inode identify the file on its filesystem.
	Dev   uint64 `json:"dev"`
	Inode uint64 `json:"inode"`
	// Fingerprint is "N:HEX", a hash of the file's first N bytes
	// (N at most 64), or empty while the file was empty.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Offset is a byte offset in the file.
	Offset int64 `json:"offset"`
}

// IsZero reports whether p is the zero Position, which means "the start of
// the file currently at the path".
func (p Position) IsZero() bool {
	return p.Dev == 0 && p.Inode == 0 && p.Offset == 0 && p.Fingerprint == ""
}

func (p Position) String() string {
	return fmt.Sprintf("%s@%d (dev %d inode %d)", p.Path, p.Offset, p.Dev, p.Inode)
}

// fileID is the identity of an open file.
type fileID struct {
	dev, ino uint64
}

func statID(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	// Conversions: Dev and Ino are not uint64 on every platform.
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, true
}

func fileIdentity(f *os.File) (fileID, int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, 0, err
	}
	id, ok := statID(fi)
	if !ok {
		return fileID{}, 0, fmt.Errorf("%s: no device and inode on this platform", f.Name())
	}
	return id, fi.Size(), nil
}

// fingerprint hashes the first min(size, 64) bytes of f. It returns the
// number of bytes hashed and the fingerprint string ("" when 0 bytes).
func fingerprint(f *os.File) (int, string, error) {
	buf := make([]byte, fingerprintBytes)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, "", fmt.Errorf("reading fingerprint of %s: %w", f.Name(), err)
	}
	return n, formatFingerprint(buf[:n]), nil
}

func formatFingerprint(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	sum := sha256.Sum256(b)
	return strconv.Itoa(len(b)) + ":" + hex.EncodeToString(sum[:16])
}

// matchFingerprint reports whether the first bytes of f hash to fp. An empty
// fp matches any file.
func matchFingerprint(f *os.File, fp string) (bool, error) {
	if fp == "" {
		return true, nil
	}
	ns, _, ok := strings.Cut(fp, ":")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n <= 0 || n > fingerprintBytes {
		return false, fmt.Errorf("malformed fingerprint %q", fp)
	}
	buf := make([]byte, n)
	got, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("reading fingerprint of %s: %w", f.Name(), err)
	}
	if got < n {
		return false, nil
	}
	return formatFingerprint(buf) == fp, nil
}
