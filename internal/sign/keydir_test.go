package sign

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestKeyDirReplacedKey: a host's key replaced by another (a rotation
// after the old key leaked) takes effect at the next lookup, also when
// the new file has the old one's size and modification time, as every
// PEM Ed25519 public key has the same size and `cp -p`, `rsync -a`, `tar
// x` or a filesystem of one-second times keep or repeat the mtime. The
// old key is refused from then on.
func TestKeyDirReplacedKey(t *testing.T) {
	dir := t.TempDir()
	old, rotated := mustSigner(t, 1), mustSigner(t, 2)
	path, err := Enroll(dir, "db01", old.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	kd := NewKeyDir(dir)
	if got, err := kd.Key("db01"); err != nil || !got.Equal(old.PublicKey()) {
		t.Fatalf("enrolled key: %v, %v", got, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Enroll(dir, "db01", rotated.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	got, err := kd.Key("db01")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(rotated.PublicKey()) {
		t.Fatalf("after the rotation the key is %s, want the new %s (the old key is still trusted)", KeyID(got), rotated.KeyID())
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := kd.Key("db01"); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("after removal: %v, want not enrolled", err)
	}
}

// TestKeyDirRefusesWritableKeys: a key in a directory or a file that
// others than its owner may write is not trusted, as sshd's StrictModes
// refuses such an authorized_keys: any local user who can write
// host_keys.dir (a directory made by hand with a wide mode, or under a
// umask of 0) would otherwise enroll a key of their own for any host and
// speak for it on opctl.agent.v1. So is a file owned by another user than
// root or the process's. A directory on a read-only mount (a Kubernetes
// Secret volume is 1777 there) is not writable whatever its mode.
func TestKeyDirRefusesWritableKeys(t *testing.T) {
	tests := []struct {
		name    string
		dirMode os.FileMode
		keyMode os.FileMode
		trusted bool
	}{
		{"as enroll leaves it", 0, 0, true},
		{"a directory others can write", 0o777, 0, false},
		{"a sticky directory others can write", 0o1777, 0, false},
		{"a directory its group can write", 0o775, 0, false},
		{"a key file others can write", 0, 0o646, false},
		{"a key file its group can write", 0, 0o664, false},
		{"readable by all", 0o755, 0o644, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "host-keys")
			s := mustSigner(t, 1)
			path, err := Enroll(dir, "db01", s.PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			if tt.dirMode != 0 {
				if err := os.Chmod(dir, tt.dirMode); err != nil {
					t.Fatal(err)
				}
			}
			if tt.keyMode != 0 {
				if err := os.Chmod(path, tt.keyMode); err != nil {
					t.Fatal(err)
				}
			}
			got, err := NewKeyDir(dir).Key("db01")
			if tt.trusted {
				if err != nil || !got.Equal(s.PublicKey()) {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("trusted the key: %s", tt.name)
			}
			if !errors.Is(err, ErrNotEnrolled) {
				t.Errorf("error %v does not wrap ErrNotEnrolled", err)
			}
			// Enroll refuses to enroll there too, rather than leave a
			// key that every lookup refuses.
			if tt.dirMode != 0 {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				if _, err := Enroll(dir, "db01", s.PublicKey()); err == nil {
					t.Error("Enroll wrote into a directory others can write")
				}
			}
		})
	}
}

// TestKeyFileOwner: a key file (or directory) owned by another user than
// root or the process's is not trusted, whatever its mode.
func TestKeyFileOwner(t *testing.T) {
	euid := uint32(os.Geteuid())
	tests := []struct {
		uid     uint32
		mode    os.FileMode
		trusted bool
	}{
		{0, 0o644, true},
		{euid, 0o600, true},
		{euid + 1000, 0o644, false},
		{0, 0o666, false},
	}
	for _, tt := range tests {
		why := untrusted(fakeInfo{mode: tt.mode, uid: tt.uid}, euid)
		if (why == "") != tt.trusted {
			t.Errorf("uid %d mode %v: %q, want trusted %v", tt.uid, tt.mode, why, tt.trusted)
		}
	}
}

type fakeInfo struct {
	mode os.FileMode
	uid  uint32
}

func (f fakeInfo) Name() string       { return "db01.pub" }
func (f fakeInfo) Size() int64        { return 113 }
func (f fakeInfo) Mode() os.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return false }
func (f fakeInfo) Sys() any           { return &syscall.Stat_t{Uid: f.uid} }
