package checkpoint

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type state struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
}

func TestLoadMissing(t *testing.T) {
	f := New(filepath.Join(t.TempDir(), "state.json"))
	var s state
	found, err := f.Load(&s)
	if err != nil || found {
		t.Fatalf("Load of missing file = %v, %v; want false, nil", found, err)
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	f := New(filepath.Join(dir, "state.json"))
	for _, want := range []state{
		{Path: "/var/log/audit/audit.log", Offset: 0},
		{Path: "/var/log/audit/audit.log", Offset: 1 << 40},
		{Path: "", Offset: 7},
	} {
		if err := f.Save(want); err != nil {
			t.Fatalf("Save(%+v): %v", want, err)
		}
		var got state
		found, err := f.Load(&got)
		if err != nil || !found {
			t.Fatalf("Load = %v, %v", found, err)
		}
		if got != want {
			t.Fatalf("Load = %+v, want %+v", got, want)
		}
	}
	// No temporary files are left behind.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want only state.json", names)
	}
	fi, err := os.Stat(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode = %v, want 0600", perm)
	}
}

func TestLoadCorrupt(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{"empty", ""},
		{"truncated", `{"path":"/var/log/au`},
		{"garbage", "\x00\x00\x00\x00"},
		{"wrong type", `{"offset":"ten"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var s state
			found, err := New(p).Load(&s)
			if err == nil {
				t.Fatalf("Load of %q succeeded: %+v", tt.content, s)
			}
			if !found {
				t.Errorf("found = false for an existing corrupt file")
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "corrupt") {
				t.Errorf("error %q does not name the file %s as corrupt", err, p)
			}
		})
	}
}

// Bug (issue 15, mutant): a Save that fails after creating its temporary
// file (here: the rename, onto a directory) must remove it; a checkpoint
// directory filling up with dead temporary files is the slow way to a full
// disk.
func TestSaveErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the checkpoint's path
		v     any
	}{
		{"missing directory", func(t *testing.T, dir string) string { return filepath.Join(dir, "nope", "state.json") }, state{}},
		{"unencodable", func(t *testing.T, dir string) string { return filepath.Join(dir, "state.json") }, make(chan int)},
		{"rename onto a directory", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "state.json")
			if err := os.MkdirAll(filepath.Join(p, "child"), 0o700); err != nil {
				t.Fatal(err)
			}
			return p
		}, state{Offset: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.setup(t, dir)
			before := dirNames(t, dir)
			err := New(path).Save(tt.v)
			if err == nil {
				t.Fatal("Save succeeded")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if after := dirNames(t, dir); after != before {
				t.Errorf("after the failed Save the directory holds %q, before %q: a temporary file was left behind", after, before)
			}
		})
	}
}

func dirNames(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// Bug (issue 15, mutant): a Save that rewrites the file in place (plain
// write) lets a reader see a partial or empty checkpoint. Save replaces the
// file by rename: a reader that opened the old file reads the old content
// whole, however the save goes, and the path names a new file.
func TestSaveReplacesTheFileReadersHold(t *testing.T) {
	f := New(filepath.Join(t.TempDir(), "state.json"))
	old := state{Path: "/var/log/audit/audit.log", Offset: 1}
	if err := f.Save(old); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before, err := r.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Save(state{Path: strings.Repeat("y", 10000), Offset: 2}); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var got state
	if err := json.Unmarshal(b, &got); err != nil || got != old {
		t.Fatalf("a reader of the old file read %.80q (%d bytes, %v); want the old checkpoint %+v whole", b, len(b), err, old)
	}
	after, err := os.Stat(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(before, after) {
		t.Error("Save rewrote the checkpoint in place instead of renaming a new file over it")
	}
}

// Bug (issue 15, mutant): the same, seen by concurrent Loads: while one
// goroutine saves checkpoints of changing sizes, every Load finds a whole
// one, never an empty or truncated file.
func TestLoadDuringSavesSeesWholeCheckpoints(t *testing.T) {
	f := New(filepath.Join(t.TempDir(), "state.json"))
	if err := f.Save(state{Offset: 0}); err != nil {
		t.Fatal(err)
	}
	const saves = 300
	errc := make(chan error, 1)
	go func() {
		for i := 1; i <= saves; i++ {
			if err := f.Save(state{Path: strings.Repeat("z", i*37%5000), Offset: int64(i)}); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	loads := 0
	for {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
			if loads == 0 {
				t.Fatal("no Load ran during the saves")
			}
			return
		default:
		}
		var s state
		if _, err := f.Load(&s); err != nil {
			t.Fatalf("Load during saves (after %d good loads): %v", loads, err)
		}
		if len(s.Path) != int(s.Offset)*37%5000 {
			t.Fatalf("Load returned a checkpoint mixing two saves: offset %d with a path of %d bytes", s.Offset, len(s.Path))
		}
		loads++
	}
}

func TestSaveKeepsOldOnFailure(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	f := New(p)
	if err := f.Save(state{Offset: 1}); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(make(chan int)); err == nil {
		t.Fatal("Save of a channel succeeded")
	}
	var s state
	if _, err := f.Load(&s); err != nil || s.Offset != 1 {
		t.Fatalf("after failed Save: %+v, %v; want offset 1", s, err)
	}
}
