package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// built is the auditpipe binary the tests of this package build once.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// auditpipeBinary builds cmd/auditpipe once per test binary (niced) and
// returns its path; TestMain removes it when the tests end.
func auditpipeBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "auditpipe-deploy-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "auditpipe")
		built.out, built.err = exec.Command("nice", "-n", "10", "go", "build", "-o", built.path, "../cmd/auditpipe").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build ../cmd/auditpipe: %v\n%s", built.err, built.out)
	}
	return built.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}
