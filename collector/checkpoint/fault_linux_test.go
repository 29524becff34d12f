//go:build linux

package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/auditpipe/auditpipe/internal/testenv"
)

// Bug (issue 15, mutant): Save replaced by a plain write (os.WriteFile,
// which truncates the file, then writes) passed every test; the only
// failure test failed inside json.Marshal, before any file I/O. On a full
// file system the plain write truncates the old checkpoint and cannot write
// the new one: the collector then refuses to start on a corrupt checkpoint,
// or, worse, starts over. Save must fail and leave the previous checkpoint
// intact, readable, and no temporary file behind. The tmpfs also puts the
// state on a file system of its own, so a temporary file created anywhere
// but beside the checkpoint cannot be renamed over it (EXDEV).
func TestSaveOnFullFileSystemKeepsPrevious(t *testing.T) {
	dir := testenv.MountTmpfs(t, "", 64<<10)
	f := New(filepath.Join(dir, "state.json"))
	old := state{Path: "/var/log/audit/audit.log", Offset: 42}
	if err := f.Save(old); err != nil {
		t.Fatalf("Save on an empty tmpfs: %v", err)
	}
	testenv.FillDisk(t, filepath.Join(dir, "filler"))

	// Larger than the page the old file holds, so that a truncate-and-write
	// cannot fit it either.
	err := f.Save(state{Path: strings.Repeat("x", 3*4096), Offset: 43})
	if err == nil {
		t.Fatal("Save on a full file system succeeded")
	}
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), f.Path()) {
		t.Errorf("error %q: want ENOSPC naming %s", err, f.Path())
	}
	var got state
	if found, err := f.Load(&got); err != nil || !found || got != old {
		t.Fatalf("after the failed Save: Load = %+v, %v, %v; want the previous %+v intact", got, found, err, old)
	}
	requireOnly(t, dir, "filler", "state.json")
}

// requireOnly fails unless dir holds exactly the named files: a failed Save
// leaves no temporary file behind.
func requireOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("directory holds %q, want %q", got, names)
	}
}
