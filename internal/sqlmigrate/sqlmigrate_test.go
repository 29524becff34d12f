package sqlmigrate

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_more.sql": {Data: []byte("-- a comment\nCREATE TABLE b (x INT);\nCREATE INDEX bi\n  ON b (x);\n")},
		"m/0001_init.sql": {Data: []byte("CREATE TABLE a (x INT)\n")},
		"m/README":        {Data: []byte("not a migration")},
	}
	ms, err := Load(fsys, "m", "test migrations")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Name != "init" || ms[1].Version != 2 {
		t.Fatalf("%+v", ms)
	}
	if got := ms[1].Statements; len(got) != 2 || got[0] != "CREATE TABLE b (x INT)" || got[1] != "CREATE INDEX bi\n  ON b (x)" {
		t.Errorf("statements %q", got)
	}
	if ms[0].Statements[0] != "CREATE TABLE a (x INT)" || len(ms[0].Checksum) != 64 {
		t.Errorf("%+v", ms[0])
	}
	bad := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"gap", fstest.MapFS{"m/0001_a.sql": {Data: []byte("x;")}, "m/0003_c.sql": {Data: []byte("y;")}}, "version 3, want 2"},
		{"twice", fstest.MapFS{"m/0001_a.sql": {Data: []byte("x;")}, "m/0001_b.sql": {Data: []byte("y;")}}, "unique"},
		{"bad name", fstest.MapFS{"m/init.sql": {Data: []byte("x;")}}, "want NNNN_name.sql"},
		{"empty", fstest.MapFS{"m/0001_a.sql": {Data: []byte("-- nothing\n")}}, "no statement"},
		{"none", fstest.MapFS{"m/x.txt": {}}, "no migration"},
	}
	for _, b := range bad {
		if _, err := Load(b.fsys, "m", "test migrations"); err == nil || !strings.Contains(err.Error(), b.want) || !strings.Contains(err.Error(), "test migrations") {
			t.Errorf("%s: %v, want %q", b.name, err, b.want)
		}
	}
}
