//go:build linux

package privfile

import (
	"path/filepath"
	"testing"
)

// Bug (issue 15, a mutant of the checkpoint's copy, now this one): SyncDir ignoring the error of the directory's
// fsync (or of opening it) reports a rename durable that may not be.
// procfs cannot sync a directory (EINVAL), a missing directory cannot be
// opened.
func TestSyncDir(t *testing.T) {
	tests := []struct {
		name    string
		dir     string
		wantErr bool
	}{
		{"directory", t.TempDir(), false},
		{"missing", filepath.Join(t.TempDir(), "nope"), true},
		{"file system that cannot sync (procfs)", "/proc", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := SyncDir(tt.dir); (err != nil) != tt.wantErr {
				t.Fatalf("SyncDir(%s) = %v, want error %v", tt.dir, err, tt.wantErr)
			}
		})
	}
}
