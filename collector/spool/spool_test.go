package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

type events struct {
	expired      int
	expiredBytes int64
	corrupt      []*CorruptError
}

func openSpool(t *testing.T, dir string, opts Options) (*Spool, *events) {
	t.Helper()
	ev := &events{}
	opts.OnExpired = func(n int, b int64) { ev.expired += n; ev.expiredBytes += b }
	opts.OnCorrupt = func(e *CorruptError) { ev.corrupt = append(ev.corrupt, e) }
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, ev
}

func entry(i int) Entry {
	e := Entry{Meta: []byte(fmt.Sprintf(`{"offset":%d}`, i))}
	for j := range i % 4 {
		e.Messages = append(e.Messages, Message{
			Key:   []byte(fmt.Sprintf("host-%d", j)),
			Value: bytes.Repeat([]byte{byte('a' + i%26)}, 10+i*7+j),
		})
	}
	return e
}

func sameEntry(a, b Entry) bool {
	if !bytes.Equal(a.Meta, b.Meta) || len(a.Messages) != len(b.Messages) {
		return false
	}
	for i := range a.Messages {
		if !bytes.Equal(a.Messages[i].Key, b.Messages[i].Key) || !bytes.Equal(a.Messages[i].Value, b.Messages[i].Value) {
			return false
		}
	}
	return true
}

func mustAppend(t *testing.T, s *Spool, e Entry) {
	t.Helper()
	if err := s.Append(e); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// drain reads and acknowledges every entry, returning their Meta.
func drain(t *testing.T, s *Spool) []string {
	t.Helper()
	var metas []string
	for {
		e, ok, err := s.Oldest()
		if err != nil {
			t.Fatalf("Oldest: %v", err)
		}
		if !ok {
			return metas
		}
		metas = append(metas, string(e.Meta))
		if err := s.Ack(); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
}

func metas(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, string(entry(i).Meta))
	}
	return out
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("entries\n got %v\nwant %v", got, want)
	}
}

func TestAppendOldestAck(t *testing.T) {
	s, _ := openSpool(t, t.TempDir(), Options{})
	if _, ok, err := s.Oldest(); ok || err != nil {
		t.Fatalf("Oldest on empty spool = %v, %v", ok, err)
	}
	if err := s.Ack(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Ack on empty spool: %v", err)
	}
	var total int64
	for i := range 6 {
		mustAppend(t, s, entry(i))
		total += recordSize(entry(i))
	}
	mustAppend(t, s, Entry{}) // an empty batch is an entry too
	total += recordSize(Entry{})
	if s.Entries() != 7 || s.Bytes() != total {
		t.Fatalf("Entries, Bytes = %d, %d; want 7, %d", s.Entries(), s.Bytes(), total)
	}
	for i := range 6 {
		e, ok, err := s.Oldest()
		if err != nil || !ok {
			t.Fatalf("Oldest: %v, %v", ok, err)
		}
		if again, _, _ := s.Oldest(); !sameEntry(e, again) {
			t.Fatal("Oldest twice without Ack returned different entries")
		}
		if !sameEntry(e, entry(i)) {
			t.Fatalf("entry %d = %+v, want %+v", i, e, entry(i))
		}
		if err := s.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	e, ok, err := s.Oldest()
	if err != nil || !ok || len(e.Messages) != 0 || len(e.Meta) != 0 {
		t.Fatalf("empty entry came back as %+v, %v, %v", e, ok, err)
	}
	if err := s.Ack(); err != nil {
		t.Fatal(err)
	}
	if s.Entries() != 0 || s.Bytes() != 0 {
		t.Fatalf("Entries, Bytes = %d, %d after draining", s.Entries(), s.Bytes())
	}
}

func TestReopenAndSegments(t *testing.T) {
	tests := []struct {
		name    string
		segment int64
	}{
		{"one segment", 0},
		{"many segments", 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SegmentBytes: tt.segment}
			s, _ := openSpool(t, dir, opts)
			for i := range 20 {
				mustAppend(t, s, entry(i))
			}
			for range 7 {
				if _, _, err := s.Oldest(); err != nil {
					t.Fatal(err)
				}
				if err := s.Ack(); err != nil {
					t.Fatal(err)
				}
			}
			bytesBefore := s.Bytes()
			s.Close()

			s, ev := openSpool(t, dir, opts)
			if s.Entries() != 13 || s.Bytes() != bytesBefore {
				t.Fatalf("after reopen: %d entries, %d bytes; want 13, %d", s.Entries(), s.Bytes(), bytesBefore)
			}
			for i := 20; i < 25; i++ {
				mustAppend(t, s, entry(i))
			}
			equal(t, drain(t, s), metas(7, 25))
			if len(ev.corrupt) != 0 || ev.expired != 0 {
				t.Fatalf("unexpected events %+v", ev)
			}
			// Delivered segments are removed.
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			if len(segs) != 0 {
				t.Fatalf("segments left after draining: %v", segs)
			}
			s.Close()
			s, _ = openSpool(t, dir, opts)
			if s.Entries() != 0 {
				t.Fatalf("%d entries after reopening a drained spool", s.Entries())
			}
			mustAppend(t, s, entry(99))
			equal(t, drain(t, s), metas(99, 100))
		})
	}
}

func TestSegmentFilesBounded(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir, Options{SegmentBytes: 200})
	for i := range 30 {
		mustAppend(t, s, entry(i))
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 5 {
		t.Fatalf("only %d segments for 30 entries at 200 bytes each", len(segs))
	}
	for range 15 {
		s.Oldest()
		if err := s.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(after) >= len(segs) {
		t.Fatalf("%d segments before, %d after acknowledging half", len(segs), len(after))
	}
}

func TestFull(t *testing.T) {
	size := recordSize(entry(5))
	s, _ := openSpool(t, t.TempDir(), Options{MaxBytes: 3 * size})
	for range 3 {
		mustAppend(t, s, entry(5))
	}
	err := s.Append(entry(5))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Append past MaxBytes: %v, want ErrFull", err)
	}
	if s.Entries() != 3 {
		t.Fatalf("%d entries after a refused append", s.Entries())
	}
	if err := s.Ack(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, entry(5))

	huge := Entry{Messages: []Message{{Value: make([]byte, 4*size)}}}
	if err := s.Append(huge); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append of an entry larger than the spool: %v, want ErrTooLarge", err)
	}
}

func TestExpiry(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts := Options{MaxAge: 2 * time.Hour, Now: c.now}
	s, ev := openSpool(t, dir, opts)
	mustAppend(t, s, entry(0))
	c.t = c.t.Add(time.Hour)
	mustAppend(t, s, entry(1))
	mustAppend(t, s, entry(2))

	c.t = c.t.Add(90 * time.Minute) // entry 0 is 2.5 h old
	e, ok, err := s.Oldest()
	if err != nil || !ok || !sameEntry(e, entry(1)) {
		t.Fatalf("Oldest after expiry = %+v, %v, %v; want entry 1", e, ok, err)
	}
	if ev.expired != 1 || ev.expiredBytes != recordSize(entry(0)) {
		t.Fatalf("expired %d entries, %d bytes; want 1, %d", ev.expired, ev.expiredBytes, recordSize(entry(0)))
	}
	s.Close()

	// On Open, by the append time kept on disk.
	c.t = c.t.Add(time.Hour)
	s, ev = openSpool(t, dir, opts)
	if ev.expired != 2 || s.Entries() != 0 || s.Bytes() != 0 {
		t.Fatalf("on Open: expired %d, %d entries left, %d bytes", ev.expired, s.Entries(), s.Bytes())
	}

	// On Append.
	mustAppend(t, s, entry(3))
	c.t = c.t.Add(3 * time.Hour)
	mustAppend(t, s, entry(4))
	if ev.expired != 3 {
		t.Fatalf("expired %d, want 3", ev.expired)
	}
	equal(t, drain(t, s), metas(4, 5))
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no segments")
	}
	return segs[len(segs)-1]
}

func TestCrashRecovery(t *testing.T) {
	lastSize := recordSize(entry(3))
	tests := []struct {
		name   string
		damage func(b []byte) []byte
		reason string
		kept   int // of entries 0..3
	}{
		{"torn in the payload", func(b []byte) []byte { return b[:len(b)-5] }, "runs past the end", 3},
		{"torn in the header", func(b []byte) []byte { return b[:len(b)-int(lastSize)+3] }, "torn record header", 3},
		{"checksum mismatch", func(b []byte) []byte { b[len(b)-2] ^= 0x40; return b }, "checksum mismatch", 3},
		{"garbage after the last record", func(b []byte) []byte { return append(b, "garbage!!"...) }, "", 4},
		{"zeros after the last record", func(b []byte) []byte { return append(b, make([]byte, 100)...) }, "", 4},
		{"middle record corrupt", func(b []byte) []byte {
			// Flip a byte in entry 1's payload: entries 1..3 are cut.
			off := len(magic) + int(recordSize(entry(0))) + recordHeader + 3
			b[off] ^= 0xff
			return b
		}, "checksum mismatch", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openSpool(t, dir, Options{})
			for i := range 4 {
				mustAppend(t, s, entry(i))
			}
			s.Close()
			path := lastSegment(t, dir)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			damaged := tt.damage(b)
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			end := int64(len(magic))
			for i := range tt.kept {
				end += recordSize(entry(i))
			}

			s, ev := openSpool(t, dir, Options{})
			if len(ev.corrupt) != 1 {
				t.Fatalf("corruption reports %v, want one", ev.corrupt)
			}
			ce := ev.corrupt[0]
			if ce.File != path || !strings.Contains(ce.Error(), path) || !strings.Contains(ce.Reason, tt.reason) {
				t.Fatalf("report %q, want it to name %s and %q", ce, path, tt.reason)
			}
			// Mutant (issue 15, make mutate): Dropped computed as size + end.
			if ce.Offset != end || ce.Dropped != int64(len(damaged))-end {
				t.Fatalf("cut at %d dropping %d bytes, want at %d dropping %d", ce.Offset, ce.Dropped, end, int64(len(damaged))-end)
			}
			if s.Entries() != tt.kept {
				t.Fatalf("%d entries kept, want %d", s.Entries(), tt.kept)
			}
			// Appending after the cut works, and a reopen finds no damage.
			mustAppend(t, s, entry(10))
			s.Close()
			s, ev = openSpool(t, dir, Options{})
			if len(ev.corrupt) != 0 {
				t.Fatalf("damage again after recovery: %v", ev.corrupt[0])
			}
			equal(t, drain(t, s), append(metas(0, tt.kept), string(entry(10).Meta)))
		})
	}
}

func TestNotASegment(t *testing.T) {
	tests := []struct {
		name    string
		content string
		aside   bool
	}{
		{"bad magic", "this is not a spool segment", true},
		{"torn header", magic[:3], false},
		{"empty file", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, segName(1))
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, ev := openSpool(t, dir, Options{})
			if len(ev.corrupt) != 1 {
				t.Fatalf("reports %v, want one", ev.corrupt)
			}
			if _, err := os.Stat(path + ".corrupt"); (err == nil) != tt.aside {
				t.Fatalf("set aside = %v, want %v", err == nil, tt.aside)
			}
			mustAppend(t, s, entry(1))
			equal(t, drain(t, s), metas(1, 2))
		})
	}
}

func TestCorruptHeadFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "head.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "head.json") {
		t.Fatalf("Open with a corrupt head file: %v", err)
	}
}

func TestClosed(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Append(entry(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, _, err := s.Oldest(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Oldest after Close: %v", err)
	}
	if err := s.Ack(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close: %v", err)
	}
}

// Regression: when the head file could not be saved (a full disk, a
// read-only directory) Ack failed after it had removed the entry from
// memory, so a caller that retried it removed the next entry too: one
// batch lost. Expiry had the same flaw. And on a full disk the save could
// not succeed at all, since the delivered segments holding the space were
// removed only after it. Now Ack removes exactly its entry, the head is
// saved at the next Ack or Append, and a crash before that delivers the
// entry again: nothing is lost.
func TestHeadSaveFails(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir, Options{})
	for i := range 3 {
		mustAppend(t, s, entry(i))
	}
	// A non-empty directory where the head file goes: its save (a rename
	// over it) fails.
	headDir := filepath.Join(dir, "head.json")
	blockHead := func() {
		if err := os.MkdirAll(filepath.Join(headDir, "x"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	unblockHead := func() {
		if err := os.RemoveAll(headDir); err != nil {
			t.Fatal(err)
		}
	}
	blockHead()
	if err := s.Ack(); err != nil {
		t.Fatal(err)
	}
	if e, ok, err := s.Oldest(); s.Entries() != 2 || err != nil || !ok || !sameEntry(e, entry(1)) {
		t.Fatalf("after an Ack whose head save failed: %d entries, oldest %+v, %v", s.Entries(), e, err)
	}

	// A crash before the head is saved: entry 0 comes again.
	s.Close()
	unblockHead()
	s, _ = openSpool(t, dir, Options{})
	if s.Entries() != 3 {
		t.Fatalf("reopened: %d entries, want 3 (the unrecorded Ack undone)", s.Entries())
	}
	blockHead()
	for range 2 {
		if err := s.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if s.Entries() != 1 {
		t.Fatalf("two Acks whose saves failed left %d entries, want 1", s.Entries())
	}
	// The next Append saves the head once it can.
	unblockHead()
	mustAppend(t, s, entry(3))
	s.Close()
	s, _ = openSpool(t, dir, Options{})
	equal(t, drain(t, s), metas(2, 4))
}
