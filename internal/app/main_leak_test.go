package app

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: every
// component stops all it started when its Run returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
