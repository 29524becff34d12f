package auditgen_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/auditgen"
)

// readRotated returns the contents of path's rotated files, oldest first,
// then path's own.
func readRotated(t *testing.T, path string) (all []byte, files int) {
	t.Helper()
	var names []string
	for i := 1; ; i++ {
		n := path + "." + strconv.Itoa(i)
		if _, err := os.Stat(n); err != nil {
			break
		}
		names = append([]string{n}, names...)
	}
	for _, n := range append(names, path) {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("%s does not end with a whole line", n)
		}
		all = append(all, b...)
	}
	return all, len(names) + 1
}

// TestWriterRotates: the writer rotates as auditd does, between records,
// keeps NumLogs files, and the collector's decoder emits from the files
// exactly the contract events the writer counted.
func TestWriterRotates(t *testing.T) {
	tests := []struct {
		name      string
		numLogs   int
		maxBytes  int64
		wantFiles int // 0: every file kept (numLogs above the rotations)
		events    uint64
	}{
		{"all kept", 200, 64 << 10, 0, 5000},
		{"oldest removed", 3, 64 << 10, 3, 5000},
		{"files smaller than a split event", 200, 8 << 10, 0, 800},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			g := auditgen.New(auditgen.Config{Seed: 9, Enriched: true, SplitEvery: 20})
			var ids []string
			w := &auditgen.Writer{Path: path, Gen: g, Limit: tt.events, MaxBytes: tt.maxBytes, NumLogs: tt.numLogs,
				OnWrite: func(evs []auditgen.Event, _ time.Time) {
					for _, e := range evs {
						if e.Expected() {
							ids = append(ids, e.ID())
						}
					}
				}}
			if err := w.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			st := w.Stats()
			if st.Events != tt.events || st.Expected != uint64(len(ids)) || st.Expected != g.Stats().Expected {
				t.Fatalf("writer stats %+v, generator %+v, %d ids reported", st, g.Stats(), len(ids))
			}
			if st.Rotations < 10 {
				t.Fatalf("%d rotations of %d bytes in %d-byte files", st.Rotations, st.Bytes, tt.maxBytes)
			}
			all, files := readRotated(t, path)
			if tt.wantFiles > 0 {
				if files != tt.wantFiles {
					t.Fatalf("%d files kept, want %d", files, tt.wantFiles)
				}
				return
			}
			if uint64(files) != st.Rotations+1 || uint64(len(all)) != st.Bytes {
				t.Fatalf("%d files of %d bytes, writer: %d rotations, %d bytes", files, len(all), st.Rotations, st.Bytes)
			}
			got := decode(t, g, "loadgen", all)
			if len(got.rejects) > 0 || got.dups > 0 || len(got.kinds) != len(ids) {
				t.Fatalf("collector: %d events (%d duplicates, %d rejects), writer counted %d", len(got.kinds), got.dups, len(got.rejects), len(ids))
			}
			for _, id := range ids {
				if _, ok := got.kinds[id]; !ok {
					t.Fatalf("event %s not emitted", id)
				}
			}
			if tt.maxBytes < 9000 && !bytes.Contains(all, []byte("a2_len=9000")) {
				t.Fatal("no split argument written")
			}
		})
	}
}

// TestWriterRate: a rate-limited writer does not write ahead of its rate,
// and an unlimited one stops when its context ends.
func TestWriterRate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w := &auditgen.Writer{Path: path, Gen: auditgen.New(auditgen.Config{}), Rate: 2000, Limit: 600}
	start := time.Now()
	if err := w.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 600 events at 2000/s cannot be written in less than 0.3 s (a slow
	// machine only makes it longer).
	if el := time.Since(start); el < 290*time.Millisecond {
		t.Fatalf("600 events at 2000/s written in %v", el)
	}
	if st := w.Stats(); st.Events != 600 {
		t.Fatalf("%d events written, want 600", st.Events)
	}

	ctx, cancel := context.WithCancel(context.Background())
	w2 := &auditgen.Writer{Path: path + "2", Gen: auditgen.New(auditgen.Config{}), Rate: 1000}
	done := make(chan error, 1)
	go func() { done <- w2.Run(ctx) }()
	for w2.Stats().Events == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path + "2")
	if err != nil {
		t.Fatal(err)
	}
	if st := w2.Stats(); uint64(len(b)) != st.Bytes || st.Records != uint64(bytes.Count(b, []byte("\n"))) {
		t.Fatalf("file of %d bytes, %d lines; writer counted %+v", len(b), bytes.Count(b, []byte("\n")), st)
	}
}

// BenchmarkAppend is the generator's own cost per audit event (it shares
// the CPUs with the pipeline it feeds).
func BenchmarkAppend(b *testing.B) {
	g := auditgen.New(auditgen.Config{Enriched: true, Nodes: []string{"cell01", "cell02"}})
	var buf []byte
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = g.Append(buf[:0], now)
	}
	b.SetBytes(int64(len(buf)))
}
