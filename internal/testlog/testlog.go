// Package testlog is a log that a test reads while the code under test
// writes it from its goroutines: the destination of a slog handler, safe
// for concurrent use.
package testlog

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is an io.Writer that keeps what is written; its zero value is
// ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Count returns how many times s occurs in what was written.
func (b *Buffer) Count(s string) int { return strings.Count(b.String(), s) }

// Contains reports whether s occurs in what was written.
func (b *Buffer) Contains(s string) bool { return strings.Contains(b.String(), s) }
