package siemtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lineCounter counts the complete lines appended to a receiver's output
// file (one a message), reading only what was appended since its last
// call, through one reused buffer: cheap enough to run beside what a
// benchmark measures.
type lineCounter struct {
	path  string
	f     *os.File
	off   int64
	count int
	buf   []byte
}

// wait polls until at least n lines were written, or timeout, and
// returns how many were.
func (c *lineCounter) wait(n int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		c.appended()
		if c.count >= n || time.Now().After(deadline) {
			return c.count
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// appended counts the complete lines appended since the last call.
func (c *lineCounter) appended() {
	if c.f == nil {
		f, err := os.Open(c.path)
		if err != nil {
			return // not written yet
		}
		c.f = f
		c.buf = make([]byte, 1<<20)
	}
	for {
		k, err := c.f.ReadAt(c.buf, c.off)
		i := bytes.LastIndexByte(c.buf[:k], '\n')
		if i >= 0 {
			c.count += bytes.Count(c.buf[:i+1], []byte{'\n'})
			c.off += int64(i + 1)
		}
		if err != nil || k < len(c.buf) {
			return
		}
		if i < 0 { // a line longer than the buffer
			c.buf = make([]byte, 2*len(c.buf))
		}
	}
}

func (c *lineCounter) close() {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}

// processCPU returns the user and system CPU time that process pid (all
// its threads) used so far, from /proc (Linux only; 10 ms resolution).
func processCPU(name string, pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("siemtest: %s CPU: %w", name, err)
	}
	// The fields after the command name (which may hold spaces) start
	// with the state; utime and stime are the 12th and 13th after it.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("siemtest: %s CPU: short /proc stat line", name)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("siemtest: %s CPU: bad /proc stat line", name)
	}
	// USER_HZ is 100 on every Linux this runs on.
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// linesFrom returns the complete lines of the file at path from byte
// offset off on, without their newlines, and the offset after the last.
func linesFrom(t testing.TB, path string, off int64) ([]string, int64) {
	t.Helper()
	// Only the bytes after off are read: a caller polling a receiver's
	// file of gigabytes (the load harness) reads each byte once.
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, off
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if off > st.Size() {
		t.Fatalf("siemtest: %s: offset %d beyond its %d bytes", path, off, st.Size())
	}
	b := make([]byte, st.Size()-off)
	if n, err := f.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && n == len(b)) {
		t.Fatal(err)
	}
	end := bytes.LastIndexByte(b, '\n') + 1 // the last line may be half written
	var out []string
	for line := range strings.Lines(string(b[:end])) {
		out = append(out, line[:len(line)-1])
	}
	return out, off + int64(end)
}
