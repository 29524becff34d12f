package testenv

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

// MountTmpfs mounts a tmpfs of size bytes at dir (made 0700 when missing;
// "" is a new temporary directory of the test) and returns dir: a file
// system the test can fill. It is unmounted when the test ends, before the
// temporary directory is removed and after the cleanups registered later
// (closing a store on it, say). The mount is global state of the machine,
// kept under the test's own directory. It skips, or fails under
// AUDITPIPE_REQUIRE (root), when the test is not root or the kernel
// refuses the mount.
func MountTmpfs(t testing.TB, dir string, size int) string {
	t.Helper()
	RequireRoot(t, "mounting a tmpfs (a file system that can be filled)")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		SkipOrFail(t, Root, "cannot mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting the test's tmpfs %s: %v", dir, err)
		}
	})
	return dir
}

// FillDisk writes to path (created, or appended to) until its file system
// is full; any error but ENOSPC fails the test.
func FillDisk(t testing.TB, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", path, err)
			}
			return
		}
	}
}
