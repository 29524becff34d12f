package forwarder

import (
	"bytes"
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
)

// TestRendererChunks: a renderer takes its frame slices from chunks of
// slotChunk, a new chunk only when the current one is full, and never
// grows one. Mutants the tests let live (issue 15, forwarder.go's
// frames): a chunk grown by append instead of replaced (cap+len for
// cap-len: one array holding every frame rendered since the start, alive
// for ever), a new chunk for every event (24 KiB allocated per event), and
// a new one with a slot still free. Each event's frames are its own,
// capacity capped, and stay as rendered while later events are.
func TestRendererChunks(t *testing.T) {
	fm, err := newFormatter(Destination{}.WithDefaults().format())
	if err != nil {
		t.Fatal(err)
	}
	const n = 3 * slotChunk
	var rd renderer
	chunks := map[*[]byte]bool{}
	var first [][]byte
	var firstCopy []byte
	for i := range n {
		frames, err := rd.frames(fm, testEvent(i), canonJSON{})
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) != 1 || cap(frames) != 1 {
			t.Fatalf("event %d: %d frames, capacity %d; want 1 and 1 (an unsplit event, its own part of the chunk)", i, len(frames), cap(frames))
		}
		if c := cap(rd.slots); c > slotChunk {
			t.Fatalf("after event %d the chunk has capacity %d, above slotChunk (%d): it grows instead of being replaced", i, c, slotChunk)
		}
		chunks[unsafe.SliceData(rd.slots)] = true
		if i == 0 {
			first, firstCopy = frames, bytes.Clone(frames[0])
		}
	}
	if len(chunks) != n/slotChunk {
		t.Errorf("%d events took %d chunks of %d slots, want %d (a new chunk only when the current is full)", n, len(chunks), slotChunk, n/slotChunk)
	}
	if !bytes.Equal(first[0], firstCopy) {
		t.Errorf("the first event's frame changed while later events were rendered")
	}
}

// heldSource is a destination source whose Run, once its context ends,
// returns only when released, or at once when release is nil.
type heldSource struct {
	release  chan struct{}
	returned chan struct{}
}

func (s *heldSource) Run(ctx context.Context, _ chan<- []Destination) error {
	defer close(s.returned)
	if s.release == nil {
		return nil
	}
	<-ctx.Done()
	<-s.release
	return nil
}

// TestRunWaitsForItsSource: Run returns only after its destination
// source's Run returned (nothing of it outlives Run), and a source that
// ended early does not keep Run from returning. Bug (issue 15, a mutant
// that lived): the wait for the source negated, Run returned with the
// source still running, or never returned once the source had ended.
func TestRunWaitsForItsSource(t *testing.T) {
	kcfg, _ := kafkatest.Start(t, 1)
	for _, held := range []bool{true, false} {
		src := &heldSource{returned: make(chan struct{})}
		if held {
			src.release = make(chan struct{})
		}
		f, err := New(Config{Kafka: kcfg}, Options{Source: src})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f.Run(ctx) }()
		if !held {
			select {
			case <-src.returned:
			case <-time.After(10 * time.Second):
				t.Fatal("the source did not return")
			}
		}
		cancel()
		if held {
			select {
			case err := <-done:
				t.Fatalf("Run returned (%v) while its source was still running", err)
			case <-time.After(200 * time.Millisecond):
			}
			close(src.release)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("held %v: Run: %v", held, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("held %v: Run did not return after its context ended and its source returned", held)
		}
		select {
		case <-src.returned:
		default:
			t.Errorf("held %v: Run returned before its source did", held)
		}
	}
}
