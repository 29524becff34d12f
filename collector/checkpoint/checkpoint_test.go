package checkpoint

import (
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

func TestSaveErrors(t *testing.T) {
	tests := []struct {
		name string
		path string
		v    any
	}{
		{"missing directory", filepath.Join(t.TempDir(), "nope", "state.json"), state{}},
		{"unencodable", filepath.Join(t.TempDir(), "state.json"), make(chan int)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(tt.path).Save(tt.v)
			if err == nil {
				t.Fatal("Save succeeded")
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name %s", err, tt.path)
			}
		})
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
