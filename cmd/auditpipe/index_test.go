package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// TestIndexRejectsPrivate catches a finding of the issue 9 review: `index
// --rejects FILE` created FILE with os.Create, 0644 under the usual umask,
// so every local user could read the rejected lines (commands, keystrokes,
// hosts), and it followed a symbolic link planted at FILE, so a local user
// could have root write them over any file. The file is made (or made
// again) 0600; a symbolic link, and a file another user owns, are refused
// and left as they were.
func TestIndexRejectsPrivate(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	tmp := t.TempDir()
	store := filepath.Join(tmp, "chdb")
	const input = "not an event\n"
	target := filepath.Join(tmp, "target")
	if err := os.WriteFile(target, []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string // "": a file of its own in tmp
		prepare func(t *testing.T, path string)
		refused string // in stderr when refused; "" when the dead letter is written
	}{
		{name: "new file"},
		{name: "an older file of ours, 0644", prepare: func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("an older run's rejects, longer than this one's\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "symbolic link", prepare: func(t *testing.T, path string) {
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, refused: "symbolic link"},
		{name: "another user's file", prepare: func(t *testing.T, path string) {
			testenv.RequireRoot(t, "chown to nobody needs root")
			if err := os.WriteFile(path, nil, 0o666); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(path, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, refused: "owned by uid 65534"},
		// A device is written as it is: /dev/null stays 0666.
		{name: "/dev/null", path: os.DevNull},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(tmp, "rejects"+string(rune('a'+i)))
			if tc.path != "" {
				path = tc.path
			}
			if tc.prepare != nil {
				tc.prepare(t, path)
			}
			code, _, errOut := runCmd(t, input, "index", "--embedded", store, "--rejects", path, "-")
			if tc.refused != "" {
				if code == 0 || !strings.Contains(errOut, tc.refused) {
					t.Fatalf("exit %d, stderr %q; want it refused with %q", code, errOut, tc.refused)
				}
				if b, err := os.ReadFile(target); err != nil || string(b) != "kept\n" {
					t.Errorf("the link's target: %q %v, want it unchanged", b, err)
				}
				if fi, err := os.Lstat(path); err != nil || fi.Size() != 0 && fi.Mode()&os.ModeSymlink == 0 {
					t.Errorf("refused file changed: %v %v", fi, err)
				}
				return
			}
			if code != 1 || !strings.Contains(errOut, "1 rejected") {
				t.Fatalf("exit %d, stderr %q; want one line rejected", code, errOut)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if tc.path == os.DevNull {
				if fi.Mode().Perm() != 0o666 {
					t.Errorf("%s mode %v, want it left 0666", os.DevNull, fi.Mode())
				}
				return
			}
			if fi.Mode() != 0o600 {
				t.Errorf("rejects file mode %v, want -rw-------", fi.Mode())
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "not an event") {
				t.Errorf("rejects file %q, want the one dead letter", b)
			}
		})
	}
}
