package deploy

import (
	"os"
	"testing"

	"github.com/auditpipe/auditpipe/internal/proctest"
)

// auditpipe is the auditpipe binary the tests of this package build once.
var auditpipe = proctest.Binary{Pkg: "../cmd/auditpipe"}

// auditpipeBinary builds cmd/auditpipe once per test binary (niced) and
// returns its path; TestMain removes it when the tests end.
func auditpipeBinary(t *testing.T) string {
	t.Helper()
	return auditpipe.Path(t)
}

func TestMain(m *testing.M) {
	code := m.Run()
	auditpipe.Remove()
	kitcheckBinary.Remove()
	os.Exit(code)
}
