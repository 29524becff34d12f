package tail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const testPoll = 2 * time.Millisecond

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// rotate does what auditd does with num_logs: NAME.(n-1) → NAME.n, …,
// NAME → NAME.1.
func rotate(t *testing.T, path string) {
	t.Helper()
	for i := 8; i >= 1; i-- {
		from := fmt.Sprintf("%s.%d", path, i)
		if _, err := os.Stat(from); err == nil {
			rename(t, from, fmt.Sprintf("%s.%d", path, i+1))
		}
	}
	rename(t, path, path+".1")
}

type gapLog struct {
	mu   sync.Mutex
	gaps []Gap
}

func (g *gapLog) add(x Gap) { g.mu.Lock(); g.gaps = append(g.gaps, x); g.mu.Unlock() }
func (g *gapLog) len() int  { g.mu.Lock(); defer g.mu.Unlock(); return len(g.gaps) }

func open(t *testing.T, path string, from Position, opts Options) (*Follower, *gapLog) {
	t.Helper()
	g := &gapLog{}
	opts.PollInterval = testPoll
	opts.OnGap = g.add
	f, err := Open(path, from, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f, g
}

func next(t *testing.T, f *Follower) Line {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := f.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return l
}

func nextString(t *testing.T, f *Follower) string {
	t.Helper()
	return string(next(t, f).Data)
}

// expectNothing asserts that Next blocks.
func expectNothing(t *testing.T, f *Follower) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	l, err := f.Next(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next = %q, %v; want it to block", l.Data, err)
	}
}

func readN(t *testing.T, f *Follower, n int) ([]string, Position) {
	t.Helper()
	var out []string
	var end Position
	for range n {
		l := next(t, f)
		out = append(out, string(l.Data))
		end = l.End
	}
	return out, end
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines\n got %q\nwant %q", got, want)
	}
}

func TestLines(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{"one", "a\n", []string{"a"}},
		{"several", "type=SYSCALL msg=audit(1.0:1): x\ntype=EOE msg=audit(1.0:1): \n", []string{"type=SYSCALL msg=audit(1.0:1): x", "type=EOE msg=audit(1.0:1): "}},
		{"empty lines", "\n\nb\n", []string{"", "", "b"}},
		{"partial last line withheld", "a\nb\npart", []string{"a", "b"}},
		{"carriage return kept", "a\r\n", []string{"a\r"}},
		{"invalid utf-8 kept", "\xff\xfe\n", []string{"\xff\xfe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			appendFile(t, path, tt.content)
			f, _ := open(t, path, Position{}, Options{})
			var off int64
			for _, want := range tt.want {
				l := next(t, f)
				if string(l.Data) != want {
					t.Fatalf("line %q, want %q", l.Data, want)
				}
				if l.Start.Offset != off || l.End.Offset != off+int64(len(want))+1 {
					t.Fatalf("line %q at %d..%d, want %d..%d", want, l.Start.Offset, l.End.Offset, off, off+int64(len(want))+1)
				}
				off = l.End.Offset
			}
			expectNothing(t, f)
		})
	}
}

func TestPositionJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	appendFile(t, path, strings.Repeat("x", 100)+"\n")
	f, _ := open(t, path, Position{}, Options{})
	l := next(t, f)
	b, err := json.Marshal(l.End)
	if err != nil {
		t.Fatal(err)
	}
	var p Position
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p != l.End {
		t.Fatalf("round trip %+v, want %+v", p, l.End)
	}
	if p.Inode == 0 || !strings.HasPrefix(p.Fingerprint, "64:") || p.Offset != 101 {
		t.Fatalf("position %+v lacks identity", p)
	}
}

func TestPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	appendFile(t, path, "abc")
	f, _ := open(t, path, Position{}, Options{})
	expectNothing(t, f)
	appendFile(t, path, "def")
	expectNothing(t, f)
	appendFile(t, path, "\nx\n")
	l := next(t, f)
	if string(l.Data) != "abcdef" || l.Partial || l.Start.Offset != 0 || l.End.Offset != 7 {
		t.Fatalf("got %+v", l)
	}
	if s := nextString(t, f); s != "x" {
		t.Fatalf("got %q", s)
	}
}

func TestPartialLineTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	appendFile(t, path, "a\nstuck")
	f, _ := open(t, path, Position{}, Options{PartialLineTimeout: 20 * time.Millisecond})
	if s := nextString(t, f); s != "a" {
		t.Fatalf("got %q", s)
	}
	l := next(t, f)
	if string(l.Data) != "stuck" || !l.Partial || l.End.Offset != 7 {
		t.Fatalf("got %+v, want partial \"stuck\"", l)
	}
	appendFile(t, path, " more\n")
	if s := nextString(t, f); s != " more" {
		t.Fatalf("got %q", s)
	}
}

func TestLongLines(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		content []string // written one after another, polling between
		want    []string // "ERR:<len>" for a LineTooLongError
	}{
		{"at limit", 16, []string{strings.Repeat("a", 16) + "\n"}, []string{strings.Repeat("a", 16)}},
		{"one over", 16, []string{strings.Repeat("a", 17) + "\nok\n"}, []string{"ERR:17", "ok"}},
		{"far over", 16, []string{"s\n" + strings.Repeat("b", 40000) + "\nafter\n"}, []string{"s", "ERR:40000", "after"}},
		{"grows across reads", 16, []string{"s\n" + strings.Repeat("c", 10), strings.Repeat("c", 30), strings.Repeat("c", 100) + "\nafter\n"}, []string{"s", "ERR:140", "after"}},
		{"100 KiB at default limit", 0, []string{strings.Repeat("d", 100<<10) + "\n" + strings.Repeat("e", 64<<10) + "\n"}, []string{"ERR:102400", strings.Repeat("e", 64<<10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			f, _ := open(t, path, Position{}, Options{MaxLineBytes: tt.max})
			limit := tt.max
			if limit == 0 {
				limit = DefaultMaxLineBytes
			}
			var got []string
			var lastEnd int64
			for _, c := range tt.content[:len(tt.content)-1] {
				appendFile(t, path, c)
				// Poll so that the line is seen in pieces.
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
					l, err := f.Next(ctx)
					cancel()
					if errors.Is(err, context.DeadlineExceeded) {
						break
					}
					if err != nil || len(l.Data) > limit {
						t.Fatalf("Next = %q, %v", l.Data, err)
					}
					got = append(got, string(l.Data))
					lastEnd = l.End.Offset
				}
			}
			appendFile(t, path, tt.content[len(tt.content)-1])
			for len(got) < len(tt.want) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				l, err := f.Next(ctx)
				cancel()
				var tl *LineTooLongError
				switch {
				case errors.As(err, &tl):
					if len(tl.Prefix) != limit || tl.Limit != limit {
						t.Fatalf("prefix %d bytes, limit %d; want %d", len(tl.Prefix), tl.Limit, limit)
					}
					if tl.End.Offset-tl.Start.Offset != tl.Len+1 {
						t.Fatalf("error spans %d..%d for length %d", tl.Start.Offset, tl.End.Offset, tl.Len)
					}
					got = append(got, fmt.Sprintf("ERR:%d", tl.Len))
					lastEnd = tl.End.Offset
				case err != nil:
					t.Fatalf("Next: %v", err)
				default:
					if l.Start.Offset != lastEnd && len(got) > 0 {
						t.Fatalf("line starts at %d, previous ended at %d", l.Start.Offset, lastEnd)
					}
					got = append(got, string(l.Data))
					lastEnd = l.End.Offset
				}
			}
			equal(t, got, tt.want)
			expectNothing(t, f)
		})
	}
}

func TestRotationWhileReading(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	appendFile(t, path, "a1\na2\n")
	f, _ := open(t, path, Position{}, Options{})
	if s := nextString(t, f); s != "a1" {
		t.Fatalf("got %q", s)
	}
	appendFile(t, path, "a3\n")
	rotate(t, path)
	appendFile(t, path+".1", "a4\n") // a writer still holding the old file
	appendFile(t, path, "b1\nb2\n")
	got, _ := readN(t, f, 5)
	equal(t, got, []string{"a2", "a3", "a4", "b1", "b2"})
	expectNothing(t, f)

	// Between rename and create the path is missing: keep waiting.
	rotate(t, path)
	expectNothing(t, f)
	appendFile(t, path, "c1\n")
	if s := nextString(t, f); s != "c1" {
		t.Fatalf("got %q", s)
	}
}

func TestRotationPartialLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	appendFile(t, path, "a1\ntorn")
	f, _ := open(t, path, Position{}, Options{})
	if s := nextString(t, f); s != "a1" {
		t.Fatalf("got %q", s)
	}
	rotate(t, path)
	appendFile(t, path, "b1\n")
	l := next(t, f)
	if string(l.Data) != "torn" || !l.Partial {
		t.Fatalf("got %+v, want partial \"torn\"", l)
	}
	if s := nextString(t, f); s != "b1" {
		t.Fatalf("got %q", s)
	}
}

func TestRestartInRotatedFile(t *testing.T) {
	tests := []struct {
		name      string
		rotations int
	}{
		{"rotated once", 1},
		{"rotated three times", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			appendFile(t, path, "r0-1\nr0-2\nr0-3\n")
			f, _ := open(t, path, Position{}, Options{})
			_, pos := readN(t, f, 1)
			f.Close()

			// While stopped: the file grows, then rotates, several times.
			want := []string{"r0-2", "r0-3", "r0-4"}
			appendFile(t, path, "r0-4\n")
			for i := 1; i <= tt.rotations; i++ {
				rotate(t, path)
				line := fmt.Sprintf("r%d-1", i)
				appendFile(t, path, line+"\n")
				want = append(want, line)
			}
			// An unrelated file with the base name's prefix is ignored.
			appendFile(t, path+".bak.gz", "junk\n")

			f, g := open(t, path, pos, Options{})
			got, _ := readN(t, f, len(want))
			equal(t, got, want)
			expectNothing(t, f)
			if g.len() != 0 {
				t.Fatalf("gaps: %+v", g.gaps)
			}
		})
	}
}

func TestRestartFileGone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	appendFile(t, path, "old1\nold2\n")
	f, _ := open(t, path, Position{}, Options{})
	_, pos := readN(t, f, 1)
	f.Close()
	rotate(t, path)
	if err := os.Remove(path + ".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, "new1\n")
	f, g := open(t, path, pos, Options{})
	if s := nextString(t, f); s != "new1" {
		t.Fatalf("got %q", s)
	}
	if g.len() != 1 || g.gaps[0].At != pos || g.gaps[0].Bytes != -1 {
		t.Fatalf("gaps %+v, want one at %+v", g.gaps, pos)
	}
}

func TestRestartRewritten(t *testing.T) {
	tests := []struct {
		name   string
		modify func(t *testing.T, path string, pos Position) Position
	}{
		{"fingerprint differs (inode reuse)", func(t *testing.T, path string, pos Position) Position {
			pos.Fingerprint = formatFingerprint([]byte("something else entirely, of a decent length, at least 64 bytes."))
			return pos
		}},
		{"truncated while stopped", func(t *testing.T, path string, pos Position) Position {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			return pos
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			appendFile(t, path, "old1\nold2\n")
			f, _ := open(t, path, Position{}, Options{})
			_, pos := readN(t, f, 2)
			f.Close()
			pos = tt.modify(t, path, pos)
			appendFile(t, path, "new1\n")
			f, g := open(t, path, pos, Options{})
			l := next(t, f)
			if g.len() != 1 {
				t.Fatalf("gaps %+v, want one", g.gaps)
			}
			if l.Start.Offset != 0 {
				t.Fatalf("resumed at %d (%q), want the start of the file", l.Start.Offset, l.Data)
			}
		})
	}
}

func TestTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	appendFile(t, path, "a1\na2\n")
	f, g := open(t, path, Position{}, Options{})
	readN(t, f, 2)
	// copytruncate: copy, then truncate in place; the writer goes on at 0.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, f)
	appendFile(t, path, "b1\n")
	got, _ := readN(t, f, 1)
	equal(t, got, []string{"b1"})
	if g.len() != 1 {
		t.Fatalf("gaps %+v, want one", g.gaps)
	}

	// Truncated and regrown past the old offset before the next poll:
	// caught by the fingerprint.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, "c1 is a much longer line than before\nc2\n")
	got, _ = readN(t, f, 2)
	equal(t, got, []string{"c1 is a much longer line than before", "c2"})
	if g.len() != 2 {
		t.Fatalf("gaps %+v, want two", g.gaps)
	}
}

// TestResumeNoLossNoRepeat stops and reopens the follower from the last End
// position again and again while the file grows and rotates: every line is
// read exactly once.
func TestResumeNoLossNoRepeat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	var want []string
	n := 0
	write := func(k int, partialTail bool) {
		var b strings.Builder
		for range k {
			n++
			line := fmt.Sprintf("type=SYSCALL msg=audit(1700000000.%03d:%d): line %d", n%1000, n, n)
			want = append(want, line)
			b.WriteString(line + "\n")
		}
		appendFile(t, path, b.String())
	}
	var got []string
	var pos Position
	for round := range 12 {
		write(3+round%4, false)
		switch round % 4 {
		case 1:
			rotate(t, path)
			write(2, false)
		case 2:
			// Twice while stopped.
			rotate(t, path)
			write(1, false)
			rotate(t, path)
			write(1, false)
		}
		f, g := open(t, path, pos, Options{})
		// Read some, not necessarily all, of what is there.
		k := len(want) - len(got)
		if round%3 == 0 && k > 1 {
			k--
		}
		lines, end := readN(t, f, k)
		got = append(got, lines...)
		pos = end
		f.Close()
		if g.len() != 0 {
			t.Fatalf("round %d: gaps %+v", round, g.gaps)
		}
	}
	f, _ := open(t, path, pos, Options{})
	rest, _ := readN(t, f, len(want)-len(got))
	got = append(got, rest...)
	equal(t, got, want)
	expectNothing(t, f)
}

func TestWaitForFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	f, _ := open(t, path, Position{}, Options{})
	expectNothing(t, f)
	appendFile(t, path, "hello\n")
	if s := nextString(t, f); s != "hello" {
		t.Fatalf("got %q", s)
	}
}

func TestCancelAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	appendFile(t, path, "")
	f, _ := open(t, path, Position{}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next on cancelled ctx: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be is an I/O error on read, but a
	// path under a missing directory with a checkpoint is a listing error.
	_, err := Open(filepath.Join(dir, "missing", "audit.log"), Position{Dev: 1, Inode: 2, Offset: 3}, Options{})
	if err == nil {
		t.Fatal("Open under a missing directory with a checkpoint succeeded")
	}
}

// TestConcurrentWriterRotating has a writer append and rotate (auditd
// style) while the follower reads, often more than once between two polls:
// every line arrives once, in order.
func TestConcurrentWriterRotating(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	appendFile(t, path, "")
	f, g := open(t, path, Position{}, Options{Logger: slog.New(slog.NewTextHandler(tLogWriter{t}, nil))})
	const total = 3000
	done := make(chan error, 1)
	go func() {
		fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			done <- err
			return
		}
		for i := range total {
			if _, err := fmt.Fprintf(fh, "line %d\n", i); err != nil {
				done <- err
				return
			}
			if i%250 == 249 {
				// Like auditd: close, shift the old files, create anew.
				fh.Close()
				for j := 20; j >= 1; j-- {
					os.Rename(fmt.Sprintf("%s.%d", path, j), fmt.Sprintf("%s.%d", path, j+1))
				}
				os.Rename(path, path+".1")
				if fh, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
					done <- err
					return
				}
			}
			if i%100 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		done <- fh.Close()
	}()
	for i := range total {
		if s := nextString(t, f); s != fmt.Sprintf("line %d", i) {
			t.Fatalf("got %q, want line %d", s, i)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if g.len() != 0 {
		t.Fatalf("gaps: %+v", g.gaps)
	}
}

type tLogWriter struct{ t *testing.T }

func (w tLogWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }
