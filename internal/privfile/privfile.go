// Package privfile writes files and makes directories that only their
// owner may read: the data directory's credentials, keys and certificates.
package privfile

import (
	"fmt"
	"os"
)

// Dir makes dir and its missing parents, and makes dir 0700 (also when it
// existed with a wider mode).
func Dir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// Write writes b to path, mode 0600, atomically: a temporary file beside
// it, synced, then renamed over path, so that a reader sees the old
// content or the new, never a part.
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
	return nil
}
