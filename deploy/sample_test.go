package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/auditpipe/auditpipe/internal/testenv"
)

// TestSampleIsGenerated: the bundled sample (audit.log, passwd, group) is
// what sample/gen.py writes, so that an edit of either is not lost at the
// next run of the other.
func TestSampleIsGenerated(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.SkipOrFail(t, testenv.PythonVenv, "no python3 on PATH (make deps installs it for the venv): %v", err)
	}
	dir := t.TempDir()
	src, err := os.ReadFile("sample/gen.py")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gen.py"), src, 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, dir, py, "gen.py")
	for _, name := range []string{"audit.log", "passwd", "group"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("gen.py wrote no %s: %v", name, err)
		}
		want, err := os.ReadFile(filepath.Join("sample", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("sample/%s is not what sample/gen.py writes (run it in deploy/sample)", name)
		}
	}
}
