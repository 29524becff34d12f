//go:build linux

package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/auditpipe/auditpipe/internal/testenv"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory under the
// test's temporary directory and unmounts it when the test ends.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	testenv.RequireRoot(t, "mounting a tmpfs (a file system that can be filled)")
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		testenv.SkipOrFail(t, testenv.Root, "cannot mount a tmpfs on %s: %v", dir, err)
	}
	// Registered after t.TempDir's cleanup, so it runs before the removal.
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting the test's tmpfs %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		_, err := f.Write(buf)
		if errors.Is(err, syscall.ENOSPC) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Bug (issue 15, found by the surviving mutants of newSegment's error
// checks): newSegment declared a new err in `if _, err :=
// f.WriteString(magic); err == nil { err = f.Sync() }`, so a failed write
// of the segment's magic (a full disk) and a failed sync were ignored. The
// segment stayed the tail without its magic; the record's failed write was
// cut back to the magic's length, leaving zeros, and the appends after the
// disk had room again went after them. At the next Open the segment was
// "not a spool segment (bad magic)" and set aside: every batch in it lost.
func TestNewSegmentOnFullDisk(t *testing.T) {
	dir := mountTmpfs(t, 64<<10)
	spoolDir := filepath.Join(dir, "spool")
	s, _ := openSpool(t, spoolDir, Options{})
	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	if err := s.Append(entry(1)); err == nil {
		t.Fatal("Append on a full disk succeeded")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, entry(2))
	mustAppend(t, s, entry(3))
	closeSpool(t, s)

	s, ev := openSpool(t, spoolDir, Options{})
	if len(ev.corrupt) != 0 {
		t.Fatalf("reopened after a full disk: %v", ev.corrupt[0])
	}
	equal(t, drain(t, s), metas(2, 4))
}
