package sign

import (
	"errors"
	"os"
	"testing"
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
