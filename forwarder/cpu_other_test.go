//go:build !unix

package forwarder

import (
	"testing"
	"time"
)

// processCPU is not measured here: it returns 0.
func processCPU(testing.TB) time.Duration { return 0 }
