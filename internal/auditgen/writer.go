package auditgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// Writer writes a Generator's events into an audit log at a target rate,
// and rotates the log as auditd does with max_log_file_action = ROTATE:
// once the file holds MaxBytes, NAME.(NumLogs-2) … NAME.1 move up by one
// (the oldest is replaced), NAME becomes NAME.1 and a new NAME is created.
// Like auditd it rotates between records, so an event's records may be
// split over two files. The events are stamped with the time they are
// written (millisecond resolution, as auditd's).
type Writer struct {
	// Path is the audit log (NAME).
	Path string
	// Gen makes the events; the Writer uses it alone while it runs.
	Gen *Generator
	// Rate is the target in audit events per second; 0 writes as fast as
	// it can. A writer that fell behind (the CPU was taken) catches up.
	Rate float64
	// Limit stops the writer after that many events; 0 runs until the
	// context ends.
	Limit uint64
	// MaxBytes is auditd's max_log_file (default 8 MiB, auditd's 8).
	MaxBytes int64
	// NumLogs is auditd's num_logs: files kept, the live one included
	// (default 5, at least 2).
	NumLogs int
	// Tick is the pacing interval (default 10ms).
	Tick time.Duration
	// OnWrite, when set, is called after each write with the events it
	// completed and the time the write returned (valid during the call).
	OnWrite func(events []Event, written time.Time)

	events, expected, records, bytes, rotations atomic.Uint64
}

// WriterStats counts what a Writer wrote.
type WriterStats struct {
	Events    uint64 // audit events
	Expected  uint64 // contract events the collector emits for them
	Records   uint64 // lines
	Bytes     uint64
	Rotations uint64
}

// Stats returns the counts so far; safe while Run runs.
func (w *Writer) Stats() WriterStats {
	return WriterStats{Events: w.events.Load(), Expected: w.expected.Load(), Records: w.records.Load(),
		Bytes: w.bytes.Load(), Rotations: w.rotations.Load()}
}

// maxChunk bounds one write: a writer catching up writes in pieces.
const maxChunk = 1 << 20

// Run writes until Limit events are written (it returns nil) or ctx ends
// (it returns nil too: stopping is the normal end of an unlimited run).
func (w *Writer) Run(ctx context.Context) error {
	if w.Gen == nil || w.Path == "" {
		return errors.New("auditgen: writer needs Gen and Path")
	}
	maxBytes, numLogs, tick := w.MaxBytes, w.NumLogs, w.Tick
	if maxBytes <= 0 {
		maxBytes = 8 << 20
	}
	if numLogs < 2 {
		numLogs = 5
	}
	if tick <= 0 {
		tick = 10 * time.Millisecond
	}
	lf := &logFile{path: w.Path, maxBytes: maxBytes, numLogs: numLogs}
	if err := lf.open(); err != nil {
		return err
	}
	defer lf.close()

	var buf []byte
	var evs []Event
	start := time.Now()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	written := uint64(0)
	for {
		now := time.Now()
		due := w.Limit
		if w.Rate > 0 {
			d := uint64(w.Rate * now.Sub(start).Seconds())
			if due == 0 || d < due {
				due = d
			}
		} else if due == 0 {
			due = written + 1000
		}
		for written < due {
			buf, evs = buf[:0], evs[:0]
			for written < due && len(buf) < maxChunk {
				var ev Event
				buf, ev = w.Gen.Append(buf, now)
				evs = append(evs, ev)
				written++
				w.records.Add(uint64(ev.Records))
				if ev.Expected() {
					w.expected.Add(1)
				}
			}
			rot, err := lf.write(buf)
			w.rotations.Add(rot)
			if err != nil {
				return err
			}
			w.bytes.Add(uint64(len(buf)))
			w.events.Add(uint64(len(evs)))
			if w.OnWrite != nil {
				w.OnWrite(evs, time.Now())
			}
			if ctx.Err() != nil {
				return nil
			}
		}
		if w.Limit > 0 && written >= w.Limit {
			return lf.close()
		}
		if w.Rate <= 0 {
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// logFile is the live audit log and its rotation.
type logFile struct {
	path     string
	maxBytes int64
	numLogs  int
	f        *os.File
	size     int64
}

func (l *logFile) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("auditgen: opening the audit log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("auditgen: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

func (l *logFile) close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("auditgen: closing the audit log: %w", err)
	}
	return nil
}

// write appends b (whole lines), rotating first whenever the file is full;
// it returns the rotations done.
func (l *logFile) write(b []byte) (uint64, error) {
	var rotations uint64
	for len(b) > 0 {
		if l.size >= l.maxBytes {
			if err := l.rotate(); err != nil {
				return rotations, err
			}
			rotations++
		}
		n := len(b)
		if room := l.maxBytes - l.size; int64(n) > room {
			// Up to the last line that fits; a line longer than the file
			// limit is written whole into a file of its own.
			if i := bytes.LastIndexByte(b[:room], '\n'); i >= 0 {
				n = i + 1
			} else if l.size > 0 {
				l.size = l.maxBytes // rotate first
				continue
			} else if i := bytes.IndexByte(b, '\n'); i >= 0 {
				n = i + 1
			}
		}
		m, err := l.f.Write(b[:n])
		l.size += int64(m)
		if err != nil {
			return rotations, fmt.Errorf("auditgen: writing the audit log: %w", err)
		}
		b = b[n:]
	}
	return rotations, nil
}

// rotate does what auditd's rotate_logs does.
func (l *logFile) rotate() error {
	if err := l.close(); err != nil {
		return err
	}
	for i := l.numLogs - 2; i >= 1; i-- {
		err := os.Rename(l.path+"."+strconv.Itoa(i), l.path+"."+strconv.Itoa(i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("auditgen: rotating: %w", err)
		}
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return fmt.Errorf("auditgen: rotating: %w", err)
	}
	return l.open()
}
