package testlog

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
)

// TestBufferConcurrentWrites: every line of writers running at once is
// kept whole, and Count and Contains read them (run with -race).
func TestBufferConcurrentWrites(t *testing.T) {
	var b Buffer
	log := slog.New(slog.NewTextHandler(&b, nil))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				log.Info("line", "g", g, "i", i)
				_ = b.Contains("never")
			}
		}()
	}
	wg.Wait()
	if n := b.Count("msg=line"); n != 800 {
		t.Errorf("%d lines, want 800", n)
	}
	if !b.Contains(fmt.Sprintf("g=%d i=%d", 7, 99)) || b.Contains("never") {
		t.Errorf("Contains: wrong answer on %q", b.String()[:80])
	}
}
