package spool

import (
	"errors"
	"path/filepath"
	"testing"
)

// segmentFiles returns how many segment files dir holds.
func segmentFiles(t *testing.T, dir string) int {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return len(segs)
}

// closeSpool closes s and fails the test when Close reports an error.
func closeSpool(t *testing.T, s *Spool) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// Mutants (issue 15, make mutate): the limits compared with > turned into
// >= (Append refusing an entry that fits MaxBytes exactly, a record that
// fills its segment exactly pushed to a new one) and the tail segment's
// size subtracted instead of added (segments grown past SegmentBytes).
func TestLimitsExactly(t *testing.T) {
	e := entry(5)
	size := recordSize(e)
	tests := []struct {
		name     string
		opts     Options
		appends  int
		segments int // files after the appends
	}{
		// A record that fills the segment to SegmentBytes stays in it.
		{"segment filled exactly", Options{SegmentBytes: int64(len(magic)) + 2*size}, 4, 2},
		// One byte short: each record gets a segment of its own after the first.
		{"segment one byte short", Options{SegmentBytes: int64(len(magic)) + 2*size - 1}, 4, 4},
		// MaxBytes reached exactly is not past it.
		{"spool filled exactly", Options{MaxBytes: 3 * size}, 3, 1},
		// An entry of exactly MaxBytes fits an empty spool.
		{"entry of MaxBytes", Options{MaxBytes: size}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openSpool(t, dir, tt.opts)
			for range tt.appends {
				mustAppend(t, s, e)
			}
			if got := segmentFiles(t, dir); got != tt.segments {
				t.Errorf("%d segment files after %d appends of %d bytes, want %d", got, tt.appends, size, tt.segments)
			}
			if tt.opts.MaxBytes != 0 {
				if err := s.Append(e); !errors.Is(err, ErrFull) && !errors.Is(err, ErrTooLarge) {
					t.Errorf("Append past MaxBytes: %v, want ErrFull or ErrTooLarge", err)
				}
			}
			closeSpool(t, s)
		})
	}
}

// Mutants (issue 15, make mutate): Open not reopening the last segment
// for appends (the `last >= h.Segment` test negated or made strict) made
// every restart start a segment file of its own; closeFiles closing a nil
// file, leaving a file open or returning an error when every close
// succeeded went unnoticed, since no test checked Close's error.
func TestReopenContinuesLastSegment(t *testing.T) {
	tests := []struct {
		name  string
		acked int // entries acknowledged before each close
	}{
		{"nothing delivered", 0},
		{"part delivered", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openSpool(t, dir, Options{})
			mustAppend(t, s, entry(0))
			mustAppend(t, s, entry(1))
			for i := 2; i <= 4; i++ {
				for range tt.acked {
					if _, _, err := s.Oldest(); err != nil {
						t.Fatal(err)
					}
					if err := s.Ack(); err != nil {
						t.Fatal(err)
					}
				}
				closeSpool(t, s)
				s, _ = openSpool(t, dir, Options{})
				mustAppend(t, s, entry(i))
				if got := segmentFiles(t, dir); got != 1 {
					t.Fatalf("restart %d: %d segment files, want the one segment continued", i, got)
				}
			}
			equal(t, drain(t, s), metas(3*tt.acked, 5))
			// Drained: no tail and no reader left; Close still succeeds.
			closeSpool(t, s)
		})
	}
}
