package privfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/testenv"
)

// TestWriteAndDir: a directory that existed 0755 becomes 0700; a file is
// written 0600, replaced whole, and no temporary file stays, also when a
// crash left one with a wider mode.
func TestWriteAndDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Dir(dir); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "secret")
	if err := os.WriteFile(p+".tmp", []byte("left by a crash"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{"first", "second"} {
		if err := Write(p, []byte(content)); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != content {
			t.Fatalf("read %q %v, want %q", b, err, content)
		}
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, p: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	if err := Write(filepath.Join(dir, "missing", "x"), nil); err == nil {
		t.Error("wrote into a missing directory")
	}
}

// TestDirRefusesAnotherUsersDirectory catches the review's first finding
// (issue 9): Dir took a data directory that already existed and was owned
// by another user, and a symbolic link that another user owned, and made
// its target 0700 as it was, so a local user who pre-created /tmp/ap (or
// linked it to a directory of theirs) could read every credential, key
// and event put in it. Both must be refused, with an error naming the
// owner; a directory or a link of our own is still taken. As root (the
// tests run as root here) it can chown to nobody.
func TestDirRefusesAnotherUsersDirectory(t *testing.T) {
	testenv.RequireRoot(t, "chown to another user needs root")
	const nobody = 65534
	tmp := t.TempDir()
	mkdir := func(name string, uid int) string {
		p := filepath.Join(tmp, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	symlink := func(name, target string, uid int) string {
		p := filepath.Join(tmp, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ours := mkdir("ours", 0)
	theirs := mkdir("theirs", nobody)
	// Above the data directory (a later review, issue 9: only the last
	// component was checked): a parent of another user's, or one that
	// anyone may write in without the sticky bit, lets that user move the
	// data directory away and put one of theirs in its place; a link above
	// it of another user's can be pointed elsewhere. A sticky one that
	// anyone may write in (as /tmp) is taken.
	chmod := func(p string, mode os.FileMode) string {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mkdir("theirs-parent", nobody)
	chmod(mkdir("open-parent", 0), 0o777)
	chmod(mkdir("group-parent", 0), 0o775)
	chmod(mkdir("sticky-parent", 0), os.ModeSticky|0o777)
	symlink("their-parent-link", ours, nobody)
	tests := []struct {
		name string
		dir  string
		want string // in the error; "" for no error
	}{
		{"our directory", ours, ""},
		{"missing, made", filepath.Join(tmp, "new", "data"), ""},
		{"another user's directory", theirs, "owned by uid 65534"},
		{"our link to our directory", symlink("ourlink", ours, 0), ""},
		{"another user's link to our directory", symlink("theirlink", ours, nobody), "symbolic link owned by uid 65534"},
		{"our link to another user's directory", symlink("ourlink-theirs", theirs, 0), "owned by uid 65534"},
		{"under another user's directory", filepath.Join(tmp, "theirs-parent", "data"), "above it is owned by uid 65534"},
		{"under a directory anyone may write in", filepath.Join(tmp, "open-parent", "data"), "writable by its group or others (mode -rwxrwxrwx) and not sticky"},
		{"under a directory its group may write in", filepath.Join(tmp, "group-parent", "a", "data"), "writable by its group or others (mode -rwxrwxr-x)"},
		{"under a sticky directory anyone may write in", filepath.Join(tmp, "sticky-parent", "data"), ""},
		{"under another user's link to our directory", filepath.Join(tmp, "their-parent-link", "data"), "above it is a symbolic link owned by uid 65534"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Dir(tc.dir)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Dir: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Dir: %v, want an error with %q", err, tc.want)
			}
			fi, err := os.Stat(tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			if want := os.FileMode(0o700); tc.want == "" && fi.Mode().Perm() != want {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), want)
			}
		})
	}
	// What was refused was left as it was: Dir changed nothing there.
	if fi, err := os.Stat(theirs); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("another user's directory: %v %v, want it left 0755", fi.Mode().Perm(), err)
	}
}
