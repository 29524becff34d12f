//go:build !unix

package indexer

import (
	"testing"
	"time"
)

// processCPU is not measured here: it returns 0.
func processCPU(testing.TB) time.Duration { return 0 }
