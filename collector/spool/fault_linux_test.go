//go:build linux

package spool

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/auditpipe/auditpipe/internal/testenv"
)

// Bug (issue 15, found by the surviving mutants of newSegment's error
// checks): newSegment declared a new err in `if _, err :=
// f.WriteString(magic); err == nil { err = f.Sync() }`, so a failed write
// of the segment's magic (a full disk) and a failed sync were ignored. The
// segment stayed the tail without its magic; the record's failed write was
// cut back to the magic's length, leaving zeros, and the appends after the
// disk had room again went after them. At the next Open the segment was
// "not a spool segment (bad magic)" and set aside: every batch in it lost.
func TestNewSegmentOnFullDisk(t *testing.T) {
	dir := testenv.MountTmpfs(t, "", 64<<10)
	spoolDir := filepath.Join(dir, "spool")
	s, _ := openSpool(t, spoolDir, Options{})
	filler := filepath.Join(dir, "filler")
	testenv.FillDisk(t, filler)
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
