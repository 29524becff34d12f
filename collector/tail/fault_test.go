package tail

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// msgCounter is a slog handler that counts records by message.
type msgCounter struct {
	mu *sync.Mutex
	n  map[string]int
}

func newMsgCounter() msgCounter { return msgCounter{mu: &sync.Mutex{}, n: map[string]int{}} }

func (c msgCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c msgCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c msgCounter) WithGroup(string) slog.Handler            { return c }
func (c msgCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.n[r.Message]++
	c.mu.Unlock()
	return nil
}

func (c msgCounter) count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[msg]
}

// Regression: a FIFO at the path blocked Open in open(2) until a writer
// came (a stop could not end it), and a directory there failed every read
// with "is a directory". Both are refused with a *NotRegularError, at
// Open and when one appears at a path that Next waits for.
func TestNotRegularRefused(t *testing.T) {
	tests := []struct {
		name string
		make func(path string) error
		says string
	}{
		{"fifo", func(path string) error { return syscall.Mkfifo(path, 0o600) }, "is a FIFO"},
		{"directory", func(path string) error { return os.Mkdir(path, 0o700) }, "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			if err := tt.make(path); err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				f, err := Open(path, Position{}, Options{PollInterval: testPoll})
				if err == nil {
					f.Close()
				}
				errc <- err
			}()
			var err error
			select {
			case err = <-errc:
			case <-time.After(5 * time.Second):
				t.Fatal("Open blocked")
			}
			var nr *NotRegularError
			if !errors.As(err, &nr) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Open: %v, want a *NotRegularError saying %q", err, tt.says)
			}

			// Next waits for a missing path; what appears there is
			// refused too.
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			f, _ := open(t, path, Position{}, Options{})
			expectNothing(t, f)
			if err := tt.make(path); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := f.Next(ctx); !errors.As(err, &nr) {
				t.Fatalf("Next: %v, want a *NotRegularError", err)
			}
		})
	}
}

// TestDeletedWhileFollowed: a followed file that is deleted (not rotated)
// is logged once; what its writer still appends is read, and so is the new
// file created at the path.
func TestDeletedWhileFollowed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	appendFile(t, path, "a\n")
	logs := newMsgCounter()
	f, _ := open(t, path, Position{}, Options{Logger: slog.New(logs)})
	writer, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	equal(t, mustRead(t, f, 1), []string{"a"})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for range 5 { // several polls see the deletion
		expectNothing(t, f)
	}
	if _, err := io.WriteString(writer, "b\n"); err != nil {
		t.Fatal(err)
	}
	equal(t, mustRead(t, f, 1), []string{"b"})
	expectNothing(t, f)
	const deleted = "followed file deleted; reading on from the open file until a new file appears at the path"
	if n := logs.count(deleted); n != 1 {
		t.Fatalf("%d log lines %q, want 1", n, deleted)
	}
	appendFile(t, path, "c\n")
	equal(t, mustRead(t, f, 1), []string{"c"})
}

func mustRead(t *testing.T, f *Follower, n int) []string {
	t.Helper()
	lines, _ := readN(t, f, n)
	return lines
}

// TestUnreadableRotatedFile: a rotated file still to be read that cannot
// be opened (permissions) was skipped without a word, and its records were
// lost. Next and Open now fail with an error that wraps fs.ErrPermission,
// queueing nothing past it; once the file is readable, Open from the last
// line read goes on with it, nothing lost, nothing repeated.
//
// Root reads any file: as root the test runs itself again as nobody.
func TestUnreadableRotatedFile(t *testing.T) {
	if os.Geteuid() == 0 {
		runAsNobody(t, "TestUnreadableRotatedFile")
		return
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	appendFile(t, path, "a\n")
	f, err := Open(path, Position{}, Options{PollInterval: testPoll})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, end := readN(t, f, 1)

	// Two rotations between polls; the middle file is unreadable.
	appendFile(t, path, "b\n")
	rename(t, path, path+".1")
	appendFile(t, path, "c\n")
	rename(t, path+".1", path+".2")
	rename(t, path, path+".1")
	if err := os.Chmod(path+".1", 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, "d\n")

	lines, end := readN(t, f, 1)
	equal(t, lines, []string{"b"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if l, err := f.Next(ctx); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Next = %q, %v; want an error for the unreadable rotated file", l.Data, err)
	}
	f.Close()
	if _, err := Open(path, end, Options{PollInterval: testPoll}); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Open while the rotated file is unreadable: %v", err)
	}
	if err := os.Chmod(path+".1", 0o600); err != nil {
		t.Fatal(err)
	}
	f, g := open(t, path, end, Options{})
	equal(t, mustRead(t, f, 2), []string{"c", "d"})
	expectNothing(t, f)
	if g.len() != 0 {
		t.Fatalf("gaps: %+v", g.gaps)
	}
}

// runAsNobody runs the test named test again in a child process as the
// unprivileged user nobody, for what root's privileges would hide, and
// fails when the child fails or did not run it.
func runAsNobody(t *testing.T, test string) {
	t.Helper()
	// The test binary's directory is the build's, private to root.
	dir, err := os.MkdirTemp("", "tail-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tail.test")
	src, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+os.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s as nobody: %v\n%s", test, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("%s as nobody did not pass:\n%s", test, out)
	}
	t.Logf("ran as nobody:\n%s", out)
}
