package compliance

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: the
// test servers and engines are closed when each test ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
