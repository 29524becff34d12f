package pkgmgr

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: a run
// stops all it started before it returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
