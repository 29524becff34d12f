package clickhouse_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: an
// engine stops all it started when it is closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
