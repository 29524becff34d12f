// Package tail follows a log file by name, line by line, the way auditd
// writes it: across rotation (the file is renamed to NAME.1 and a new NAME
// is created), any number of times between two polls and also while the
// follower switches from one file to the next, and across copytruncate-style
// truncation (the lines not read yet are read from the copy, when a rotated
// file begins as the truncated one did).
//
// A file is identified by device and inode plus a fingerprint of its first
// 64 bytes, so a checkpointed Position finds its file again after the file
// was rotated while the process was stopped, and a reused inode is not
// mistaken for the old file. Resuming from the End of the last line the
// caller processed neither loses nor repeats a line.
//
// The Follower polls; it needs no inotify.
package tail

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults for Options.
const (
	DefaultPollInterval = 250 * time.Millisecond
	DefaultMaxLineBytes = 64 << 10
)

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("tail: follower closed")

// Options tune a Follower. The zero value is usable.
type Options struct {
	// PollInterval is how long Next sleeps at the end of the file before
	// looking for new data, rotation or truncation again. Default 250ms.
	PollInterval time.Duration
	// MaxLineBytes is the longest line, without its newline, that Next
	// returns. A longer line is reported as a *LineTooLongError and
	// skipped. Default 64 KiB.
	MaxLineBytes int
	// PartialLineTimeout, when positive, makes Next return an unterminated
	// last line of the live file (Line.Partial) once the file has not grown
	// for this long. Whatever is appended to that line later is returned
	// as a line of its own. Default 0: wait for the newline for ever.
	// An unterminated last line of a rotated or truncated file is always
	// returned as a partial line, since no newline can follow.
	PartialLineTimeout time.Duration
	// Logger receives warnings about gaps and notices about rotation.
	// Default: no logging.
	Logger *slog.Logger
	// OnGap, if set, is called for every loss of data the Follower detects
	// (also logged), so the caller can count it. Default: none.
	OnGap func(Gap)
}

// Gap describes data that could not be read.
type Gap struct {
	// At is the last known position before the gap.
	At Position
	// Bytes is the number of bytes lost, or -1 when unknown.
	Bytes int64
	// Reason says what happened, e.g. "checkpointed file not found".
	Reason string
}

// Line is one line of the file.
type Line struct {
	// Data is the line without its trailing newline. It is valid until the
	// next call of Next or Close.
	Data []byte
	// Start is the position of the line's first byte; End the position
	// just after its newline. Checkpoint End, once the line is processed.
	Start, End Position
	// Partial is set for a line returned without a newline (see
	// Options.PartialLineTimeout).
	Partial bool
}

// LineTooLongError reports a line longer than Options.MaxLineBytes. The line
// has been skipped; the Follower continues with the next line, and Next may
// be called again.
type LineTooLongError struct {
	// Start and End delimit the line, newline included, as in Line.
	Start, End Position
	// Len is the line's length without the newline.
	Len int64
	// Limit is the MaxLineBytes in force.
	Limit int
	// Prefix holds the line's first Limit bytes (a copy, the caller's to
	// keep), for a dead-letter record.
	Prefix []byte
}

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("tail: line at %s is %d bytes long, over the limit of %d", e.Start, e.Len, e.Limit)
}

// source is an open file still to be read.
type source struct {
	f    *os.File
	id   fileID
	name string
	live bool // the file at the followed path, which may still grow or rotate
	off  int64
	// err, when set, says why a rotated file that exists could not be
	// opened (permissions); f is nil then.
	err error
	// mtime is a rotated file's modification time when it was listed.
	mtime time.Time
}

// unreadable returns an error for the first of ss that could not be
// opened, or nil.
func unreadable(ss []source) error {
	for _, s := range ss {
		if s.err != nil {
			return fmt.Errorf("tail: rotated file %s still holds records to read but cannot be opened: %w", s.name, s.err)
		}
	}
	return nil
}

// closeSources closes the files of ss.
func closeSources(ss []source) {
	for _, s := range ss {
		if s.f != nil {
			s.f.Close()
		}
	}
}

// Follower reads lines from a file by name. It is not safe for concurrent
// use.
type Follower struct {
	path string
	opts Options
	log  *slog.Logger
	// hook, set by tests only, runs at the named points of a switch of
	// file, to rotate the file at exactly that moment.
	hook func(hookPoint)

	cur   source // cur.f == nil while waiting for the path to appear
	queue []source
	fp    string
	fpLen int

	buf        []byte
	base       int64 // file offset of buf[0]
	r, w       int
	lastGrowth time.Time
	atEOF      bool // the last read reached the end of the file

	skipping   bool
	skipStart  Position
	skipLen    int64
	skipPrefix []byte

	out     []byte // holds a partial line returned across a switch of file
	waiting bool   // logged that the path is missing
	// unstable counts the polls in a row whose listing of the rotated
	// files was not consistent (see queueNewer).
	unstable int
	// deletedLogged is set once the deletion of the current file is logged,
	// strayLogged once it is logged that it was moved out of the directory.
	deletedLogged, strayLogged bool
	closed                     bool
}

// Open starts following the file at path from position from. The zero
// Position starts at the beginning of the file currently at path. Otherwise
// the file of from is searched for: at path, or among the rotated files in
// the same directory (names starting with path's base name, such as
// audit.log.1); reading resumes at from.Offset in that file, then continues
// with the newer rotated files, oldest first, and then the file at path.
// When the file of from is gone, the gap is reported (Options.OnGap and the
// log) and reading starts at the beginning of the file at path.
//
// A missing file at path is not an error: Next waits for it to appear.
func Open(path string, from Position, opts Options) (*Follower, error) {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Follower{
		path:       path,
		opts:       opts,
		log:        log.With("path", path),
		buf:        make([]byte, max(opts.MaxLineBytes+1, 32<<10)),
		lastGrowth: time.Now(),
	}
	if err := f.start(from); err != nil {
		f.closeAll()
		return nil, err
	}
	return f, nil
}

func (f *Follower) start(from Position) error {
	live, err := openSource(f.path)
	if err != nil {
		return err
	}
	live.live = true
	if from.IsZero() {
		if live.f != nil {
			return f.switchTo(live)
		}
		return nil
	}
	want := fileID{dev: from.Dev, ino: from.Inode}

	if live.f != nil && live.id == want {
		ok, err := matchFingerprint(live.f, from.Fingerprint)
		if err != nil {
			live.f.Close()
			return fmt.Errorf("tail: checking %s: %w", f.path, err)
		}
		if ok {
			live.off = f.checkOffset(live, from)
			return f.switchTo(live)
		}
		// Rewritten or truncated since: its content may be in a copy
		// (copytruncate), looked for below.
	}

	var rotated []source
	for try := 0; ; try++ {
		var stable bool
		rotated, stable, err = f.rotatedFiles()
		if err != nil {
			closeSources([]source{live})
			return err
		}
		if stable {
			break
		}
		if try == maxUnstablePolls {
			f.log.Warn("rotated files kept changing while listed; going on with an inconsistent listing", "polls", try)
			break
		}
		closeSources(rotated)
		time.Sleep(f.opts.PollInterval)
	}
	found := -1
	for i, s := range rotated {
		if s.id != want {
			continue
		}
		if s.err != nil {
			// Most likely the checkpointed file: it cannot be
			// skipped, nor its fingerprint checked.
			err := unreadable(rotated[i : i+1])
			closeSources(rotated)
			closeSources([]source{live})
			return err
		}
		ok, err := matchFingerprint(s.f, from.Fingerprint)
		if err == nil && ok {
			found = i
			break
		}
	}
	if found < 0 {
		found = copyOf(rotated, from.Fingerprint, from.Offset, live.id)
		if found >= 0 {
			f.log.Info("checkpointed file truncated or gone; resuming in its copy (copytruncate)", "copy", rotated[found].name)
		}
	}
	if found < 0 {
		closeSources(rotated)
		reason := "checkpointed file not found; starting at the beginning of the current file"
		if live.f != nil && live.id == want {
			reason = "inode reused or file rewritten since checkpoint; reading from its start"
		}
		f.gap(Gap{At: from, Bytes: -1, Reason: reason})
		if live.f != nil {
			return f.switchTo(live)
		}
		return nil
	}
	first := rotated[found]
	rotated[found].f = nil // not closed by successors
	newer := successors(rotated, found, live)
	if err := unreadable(newer); err != nil {
		closeSources(newer)
		closeSources([]source{first})
		return err
	}
	if len(newer) == 0 {
		// The path is missing: the checkpointed file is the newest.
		first.live = true
	}
	first.off = f.checkOffset(first, from)
	f.queue = append(f.queue, newer...)
	f.log.Info("resuming in rotated file", "file", first.name, "offset", first.off, "newer_files", len(f.queue))
	return f.switchTo(first)
}

// checkOffset returns where to resume in s for from, reporting a gap when
// the file is shorter than the checkpointed offset.
func (f *Follower) checkOffset(s source, from Position) int64 {
	fi, err := s.f.Stat()
	if err != nil || fi.Size() >= from.Offset {
		return from.Offset
	}
	f.gap(Gap{At: from, Bytes: -1, Reason: fmt.Sprintf("file %s is shorter (%d bytes) than the checkpoint; reading from its start", s.name, fi.Size())})
	return 0
}

// NotRegularError reports a followed path, or a rotated file, that is not a
// regular file (a FIFO, a directory, a device): the Follower refuses to
// open it. Opening a FIFO would block until a writer appears, and reading
// a directory fails; neither is an audit log.
type NotRegularError struct {
	Path string
	Mode fs.FileMode
}

func (e *NotRegularError) Error() string {
	kind := "not a regular file"
	switch {
	case e.Mode.IsDir():
		kind = "a directory"
	case e.Mode&fs.ModeNamedPipe != 0:
		kind = "a FIFO"
	case e.Mode&fs.ModeSocket != 0:
		kind = "a socket"
	case e.Mode&fs.ModeDevice != 0:
		kind = "a device"
	}
	return fmt.Sprintf("tail: %s is %s, not a regular file: refused", e.Path, kind)
}

// fileType returns the type bits of a stat mode as an fs.FileMode.
func fileType(m uint32) fs.FileMode {
	switch m & syscall.S_IFMT {
	case syscall.S_IFDIR:
		return fs.ModeDir
	case syscall.S_IFIFO:
		return fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		return fs.ModeSocket
	case syscall.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

// openSource opens name if it is a regular file; a missing file gives a
// zero source and no error. The file is opened non-blocking and checked
// before anything is read, so that a FIFO at the path neither blocks the
// open nor is read.
func openSource(name string) (source, error) {
	fd, err := syscall.Open(name, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC|syscall.O_NOCTTY, 0)
	if errors.Is(err, syscall.ENOENT) {
		return source{}, nil
	}
	if err != nil {
		return source{}, fmt.Errorf("tail: %w", &fs.PathError{Op: "open", Path: name, Err: err})
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return source{}, fmt.Errorf("tail: %w", &fs.PathError{Op: "stat", Path: name, Err: err})
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return source{}, &NotRegularError{Path: name, Mode: fileType(st.Mode)}
	}
	// O_NONBLOCK means nothing for a regular file; clear it anyway so that
	// the descriptor is an ordinary one.
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return source{}, fmt.Errorf("tail: %w", &fs.PathError{Op: "fcntl", Path: name, Err: err})
	}
	fh := os.NewFile(uintptr(fd), name)
	id, _, err := fileIdentity(fh)
	if err != nil {
		fh.Close()
		return source{}, fmt.Errorf("tail: %w", err)
	}
	return source{f: fh, id: id, name: name}, nil
}

// rotatedFiles opens the rotated siblings of the followed path, oldest
// first: files in the same directory whose name starts with the path's base
// name, except compressed ones and the live file itself. Names that are
// base.N (auditd) are ordered by N, highest (oldest) first; other names by
// modification time. The listing is retried until it is consistent, as a
// rotation may rename files while they are being listed; stable is false
// when it never was, in 10 tries (the files returned may then miss some,
// or name one twice).
func (f *Follower) rotatedFiles() (_ []source, stable bool, _ error) {
	var (
		cands []candidate
		err   error
	)
	for try := range 10 {
		cands, stable, err = f.listRotated()
		if err != nil || stable || try == 9 {
			break
		}
		for _, c := range cands {
			closeSources([]source{c.source})
		}
		cands = nil
	}
	if err != nil {
		return nil, false, err
	}
	numeric := true
	for _, c := range cands {
		numeric = numeric && c.numbered
	}
	slices.SortStableFunc(cands, func(a, b candidate) int {
		if numeric {
			return cmp.Compare(b.num, a.num)
		}
		if c := a.mtime.Compare(b.mtime); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	out := make([]source, len(cands))
	for i, c := range cands {
		out[i] = c.source
		out[i].mtime = c.mtime
	}
	return out, stable, nil
}

type candidate struct {
	source
	mtime    time.Time
	num      int
	numbered bool
}

// rotatedNames lists the names of the rotated siblings of the followed
// path, sorted.
func (f *Follower) rotatedNames() (dir string, names []string, err error) {
	dir, base := filepath.Split(f.path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, fmt.Errorf("tail: listing rotated files: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if name == base || !strings.HasPrefix(name, base) || !e.Type().IsRegular() || compressed(name) {
			continue
		}
		names = append(names, name)
	}
	return dir, names, nil
}

// listRotated opens the rotated files once. stable reports that the
// listing is a snapshot of the directory: every name still named the same
// file after all were opened, and the directory held the same names after
// as before. (Names opened after a rotation that followed the listing name
// the files the rotation moved there; the oldest files, moved to names
// the first listing did not hold, would be missed. TestConcurrentWriterRotating
// lost a file so while the follower lagged several rotations behind.)
func (f *Follower) listRotated() (cands []candidate, stable bool, err error) {
	dir, names, err := f.rotatedNames()
	if err != nil {
		return nil, false, err
	}
	f.runHook(hookListed)
	_, base := filepath.Split(f.path)
	stable = true
	for _, name := range names {
		s, err := openSource(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrPermission) {
			// Kept, so that the caller can tell whether it is needed.
			fi, serr := os.Stat(filepath.Join(dir, name))
			id, ok := fileID{}, false
			if serr == nil {
				id, ok = statID(fi)
			}
			if !ok {
				stable = false
				continue
			}
			num, nerr := strconv.Atoi(strings.TrimPrefix(name[len(base):], "."))
			s = source{id: id, name: filepath.Join(dir, name), err: err}
			cands = append(cands, candidate{source: s, mtime: fi.ModTime(), num: num, numbered: nerr == nil && num >= 0})
			continue
		}
		if err != nil || s.f == nil {
			stable = false // vanished or not a regular file: renamed under us?
			continue
		}
		fi, err := s.f.Stat()
		if err != nil {
			s.f.Close()
			continue
		}
		num, nerr := strconv.Atoi(strings.TrimPrefix(name[len(base):], "."))
		cands = append(cands, candidate{source: s, mtime: fi.ModTime(), num: num, numbered: nerr == nil && num >= 0})
	}
	for _, c := range cands {
		fi, err := os.Stat(c.name)
		if err != nil {
			stable = false
			break
		}
		if id, ok := statID(fi); !ok || id != c.id {
			stable = false
			break
		}
	}
	if stable {
		_, again, err := f.rotatedNames()
		if err != nil {
			closeSources(candSources(cands))
			return nil, false, err
		}
		stable = slices.Equal(names, again)
	}
	return cands, stable, nil
}

func candSources(cands []candidate) []source {
	out := make([]source, len(cands))
	for i, c := range cands {
		out[i] = c.source
	}
	return out
}

func compressed(name string) bool {
	switch filepath.Ext(name) {
	case ".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".Z":
		return true
	}
	return false
}

// Next returns the next complete line. It blocks, polling every
// Options.PollInterval, until one is available or ctx is done, in which case
// it returns ctx.Err(). A *LineTooLongError is not fatal: call Next again.
// Other errors (I/O errors) are.
func (f *Follower) Next(ctx context.Context) (Line, error) {
	for {
		if f.closed {
			return Line{}, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return Line{}, err
		}
		if f.cur.f == nil {
			if !f.advance() {
				if err := f.openLive(); err != nil {
					return Line{}, err
				}
			}
			if f.cur.f == nil {
				if err := f.sleep(ctx); err != nil {
					return Line{}, err
				}
			}
			continue
		}
		if line, err, ok := f.scan(); ok {
			return line, err
		}
		if f.atEOF && f.cur.live {
			// The file may have been truncated and regrown past our
			// offset since we saw its end: check before reading on.
			if line, err, ok, terr := f.checkTruncated(); terr != nil {
				return Line{}, terr
			} else if ok {
				return line, err
			}
		}
		n, err := f.fill()
		if err != nil {
			return Line{}, err
		}
		if n > 0 {
			continue
		}

		// At the end of the current file.
		if !f.cur.live {
			line, err, ok := f.takeLeftover()
			f.closeCur()
			if ok {
				return line, err
			}
			continue
		}
		rotated, err := f.rotated()
		if err != nil {
			return Line{}, err
		}
		if rotated {
			// Read what was written before the rename, then switch.
			n, err := f.fill()
			if err != nil {
				return Line{}, err
			}
			if n > 0 {
				continue
			}
			queued, err := f.queueNewer()
			if err != nil {
				return Line{}, err
			}
			if !queued {
				if err := f.sleep(ctx); err != nil {
					return Line{}, err
				}
				continue
			}
			f.log.Info("file rotated", "file", f.cur.name, "offset", f.base+int64(f.w))
			line, err, ok := f.takeLeftover()
			f.closeCur()
			if ok {
				return line, err
			}
			continue
		}
		if f.opts.PartialLineTimeout > 0 && (f.w > f.r || f.skipping) &&
			time.Since(f.lastGrowth) >= f.opts.PartialLineTimeout {
			line, err, ok := f.takeLeftover()
			if ok {
				return line, err
			}
		}
		if err := f.sleep(ctx); err != nil {
			return Line{}, err
		}
	}
}

// scan looks for a complete line in the buffer.
func (f *Follower) scan() (Line, error, bool) {
	i := bytes.IndexByte(f.buf[f.r:f.w], '\n')
	if f.skipping {
		if i < 0 {
			f.skipLen += int64(f.w - f.r)
			f.r = f.w
			return Line{}, nil, false
		}
		f.skipLen += int64(i)
		f.r += i + 1
		return Line{}, f.tooLong(f.pos(f.base + int64(f.r))), true
	}
	if i < 0 {
		if f.w-f.r > f.opts.MaxLineBytes {
			f.skipping = true
			f.skipStart = f.pos(f.base + int64(f.r))
			f.skipPrefix = bytes.Clone(f.buf[f.r : f.r+f.opts.MaxLineBytes])
			f.skipLen = int64(f.w - f.r)
			f.r = f.w
		}
		return Line{}, nil, false
	}
	start := f.pos(f.base + int64(f.r))
	if i > f.opts.MaxLineBytes {
		f.skipStart = start
		f.skipPrefix = bytes.Clone(f.buf[f.r : f.r+f.opts.MaxLineBytes])
		f.skipLen = int64(i)
		f.r += i + 1
		return Line{}, f.tooLong(f.pos(f.base + int64(f.r))), true
	}
	line := Line{Data: f.buf[f.r : f.r+i], Start: start}
	f.r += i + 1
	line.End = f.pos(f.base + int64(f.r))
	return line, nil, true
}

func (f *Follower) tooLong(end Position) error {
	err := &LineTooLongError{
		Start:  f.skipStart,
		End:    end,
		Len:    f.skipLen,
		Limit:  f.opts.MaxLineBytes,
		Prefix: f.skipPrefix,
	}
	f.skipping, f.skipLen, f.skipPrefix = false, 0, nil
	return err
}

// takeLeftover returns the unterminated rest of the buffer, if any, as a
// partial line (or a *LineTooLongError), and empties the buffer.
func (f *Follower) takeLeftover() (Line, error, bool) {
	if f.skipping {
		f.skipLen += int64(f.w - f.r)
		f.r = f.w
		return Line{}, f.tooLong(f.pos(f.base + int64(f.r))), true
	}
	if f.w == f.r {
		return Line{}, nil, false
	}
	f.out = append(f.out[:0], f.buf[f.r:f.w]...)
	line := Line{Data: f.out, Start: f.pos(f.base + int64(f.r)), Partial: true}
	f.r = f.w
	line.End = f.pos(f.base + int64(f.r))
	return line, nil, true
}

// fill reads more of the current file into the buffer.
func (f *Follower) fill() (int, error) {
	if f.r > 0 {
		copy(f.buf, f.buf[f.r:f.w])
		f.base += int64(f.r)
		f.w -= f.r
		f.r = 0
	}
	n, err := f.cur.f.ReadAt(f.buf[f.w:], f.base+int64(f.w))
	f.w += n
	f.atEOF = errors.Is(err, io.EOF)
	if err != nil && !f.atEOF {
		return n, fmt.Errorf("tail: reading %s: %w", f.cur.name, err)
	}
	if n > 0 {
		f.lastGrowth = time.Now()
		if f.fpLen < fingerprintBytes && f.base+int64(f.w) > int64(f.fpLen) {
			if err := f.refreshFingerprint(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (f *Follower) refreshFingerprint() error {
	n, fp, err := fingerprint(f.cur.f)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	f.fpLen, f.fp = n, fp
	return nil
}

// checkTruncated detects that the live file was truncated (copytruncate) or
// rewritten, reports the gap and restarts at its beginning. A leftover
// partial line is returned first.
func (f *Follower) checkTruncated() (Line, error, bool, error) {
	fi, err := f.cur.f.Stat()
	if err != nil {
		return Line{}, nil, false, fmt.Errorf("tail: %w", err)
	}
	end := f.base + int64(f.w)
	truncated := fi.Size() < end
	if !truncated && f.fpLen > 0 {
		ok, err := matchFingerprint(f.cur.f, f.fp)
		if err != nil {
			return Line{}, nil, false, fmt.Errorf("tail: %w", err)
		}
		truncated = !ok
	}
	if !truncated {
		return Line{}, nil, false, nil
	}
	// Copytruncate: the lines not read yet may be in the copy.
	from := f.base + int64(f.r)
	if f.skipping {
		from = f.skipStart.Offset
	}
	switched, err := f.readCopy(from)
	if err != nil {
		return Line{}, nil, false, err
	}
	if switched {
		return Line{}, nil, false, nil
	}
	f.gap(Gap{At: f.pos(end), Bytes: -1, Reason: fmt.Sprintf("file truncated to %d bytes; reading from its start", fi.Size())})
	line, lerr, ok := f.takeLeftover()
	f.base, f.r, f.w = 0, 0, 0
	f.fpLen, f.fp = 0, ""
	if err := f.refreshFingerprint(); err != nil {
		return Line{}, nil, false, err
	}
	return line, lerr, ok, nil
}

// readCopy looks among the rotated files for a copy of the current file,
// truncated (copytruncate), that holds at least from bytes, and if there
// is one switches to it at from: the rest of the lines read from the copy,
// and then the current file from its start (queued again, its descriptor
// kept). Lines written between the copy and the truncation are in neither
// file: copytruncate loses them, and nothing can tell.
func (f *Follower) readCopy(from int64) (bool, error) {
	if f.fp == "" {
		return false, nil
	}
	rotated, _, err := f.rotatedFiles()
	if err != nil {
		return false, err
	}
	i := copyOf(rotated, f.fp, from, f.cur.id)
	if i < 0 {
		closeSources(rotated)
		return false, nil
	}
	cp := rotated[i]
	rotated[i].f = nil
	closeSources(rotated)
	cp.off = from
	f.log.Info("file truncated (copytruncate); reading the rest of its lines from the copy", "file", f.cur.name, "copy", cp.name, "offset", from)
	again := f.cur
	again.off = 0
	f.cur.f = nil // not closed: queued again
	f.queue = append([]source{again}, f.queue...)
	if err := f.switchTo(cp); err != nil {
		return false, err
	}
	return true, nil
}

// copyOf returns the index in rotated of the newest readable file, other
// than the file not, whose first bytes hash to fingerprint fp and that holds
// at least size bytes: a copy of that content. -1 when there is none, or
// when fp is empty (it would match any file).
func copyOf(rotated []source, fp string, size int64, not fileID) int {
	if fp == "" {
		return -1
	}
	for i := len(rotated) - 1; i >= 0; i-- {
		s := rotated[i]
		if s.f == nil || s.id == not {
			continue
		}
		fi, err := s.f.Stat()
		if err != nil || fi.Size() < size {
			continue
		}
		if ok, err := matchFingerprint(s.f, fp); err == nil && ok {
			return i
		}
	}
	return -1
}

// rotated reports whether the path now names another file than the
// current one, or names none while the current file was renamed (between
// auditd's rename and create): the rotated files newer than it, if any,
// are then read without waiting for the path (see queueNewer).
func (f *Follower) rotated() (bool, error) {
	fi, err := os.Stat(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return !f.checkDeleted(), nil
	}
	if err != nil {
		return false, fmt.Errorf("tail: %w", err)
	}
	id, ok := statID(fi)
	return ok && id != f.cur.id, nil
}

// checkDeleted reports whether the current file was deleted (not renamed
// by a rotation) while it was followed, and logs it once. Reading goes on
// from the open file, which its writer may still hold, until a new file
// appears at the path. A file that cannot be checked counts as deleted:
// there is nothing to look for beside it.
func (f *Follower) checkDeleted() bool {
	fi, err := f.cur.f.Stat()
	if err != nil {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink > 0 {
		return !ok
	}
	if !f.deletedLogged {
		f.deletedLogged = true
		f.log.Warn("followed file deleted; reading on from the open file until a new file appears at the path", "file", f.cur.name, "offset", f.base+int64(f.w))
	}
	return true
}

// queueNewer queues the files to read after the current one, which was
// rotated away: the rotated files newer than it (the path may have rotated
// more than once since the last poll), oldest first, then the file now at
// the path. It reports false, queueing nothing, when there is nothing newer
// to read yet (the path vanished again, between a rename and a create): the
// caller stays on the current file and looks again at the next poll.
func (f *Follower) queueNewer() (bool, error) {
	f.runHook(hookBeforeLive)
	live, err := openSource(f.path)
	if err != nil {
		return false, err
	}
	live.live = true
	f.runHook(hookAfterLive)
	rotated, stable, err := f.rotatedFiles()
	if err != nil {
		closeSources([]source{live})
		return false, err
	}
	if !stable {
		// Files are being renamed still: look again at the next poll,
		// for a while; then go on with the listing had.
		if f.unstable < maxUnstablePolls {
			f.unstable++
			closeSources(rotated)
			closeSources([]source{live})
			return false, nil
		}
		f.log.Warn("rotated files kept changing while listed; going on with an inconsistent listing", "polls", f.unstable)
	}
	f.unstable = 0
	idx := slices.IndexFunc(rotated, func(s source) bool { return s.id == f.cur.id })
	if idx < 0 {
		// Deleted already (more rotations than kept files while we
		// lagged) or moved away: every rotated file not older than it is
		// newer. Files in between may have been deleted too: unknowable.
		if !f.strayLogged {
			f.strayLogged = true
			f.log.Warn("rotated file no longer beside the path; reading the newer rotated files", "file", f.cur.name)
		}
		rotated = notOlder(rotated, f.cur.f)
	}
	newer := successors(rotated, idx, live)
	if err := unreadable(newer); err != nil {
		// Nothing is queued: the caller may retry, from the current
		// file's end, once the file can be read.
		closeSources(newer)
		return false, err
	}
	if len(newer) == 0 {
		return false, nil
	}
	f.queue = append(f.queue, newer...)
	return true, nil
}

// successors returns what follows rotated[after] (after may be -1): the
// newer rotated files, oldest first, then live when it is open, and closes
// the other files of rotated. The last file returned is marked live: it is
// the newest known, whose end is where to look for rotation again.
//
// live was opened before the directory was listed, so the path may have
// rotated in between: then live is among rotated, and the files listed
// after it are newer than live. They are not returned (they would be read
// before live): live finds them itself when it turns out to be rotated.
// When the path was missing (between a rename and a create), the newest
// rotated file stands for it, so that what is written at the path while
// the older files are read is found from that file, and not skipped by
// opening whatever the path holds by then.
func successors(rotated []source, after int, live source) []source {
	end := len(rotated)
	if live.f != nil {
		if i := slices.IndexFunc(rotated, func(s source) bool { return s.id == live.id }); i >= 0 {
			end = max(i, after+1)
		}
	}
	closeSources(rotated[:after+1])
	closeSources(rotated[end:])
	out := slices.Clone(rotated[after+1 : end])
	if live.f != nil {
		out = append(out, live)
	}
	if len(out) > 0 {
		out[len(out)-1].live = true
	}
	return out
}

// notOlder returns the files of rotated last modified no earlier than ref,
// and closes the others. The times are those read from the open files when
// they were listed, not by name again: a rotation may be renaming them.
func notOlder(rotated []source, ref *os.File) []source {
	var refTime time.Time
	if fi, err := ref.Stat(); err == nil {
		refTime = fi.ModTime()
	}
	var out []source
	for _, s := range rotated {
		if s.mtime.Before(refTime) {
			closeSources([]source{s})
			continue
		}
		out = append(out, s)
	}
	return out
}

// maxUnstablePolls is how many polls in a row a switch of file waits for
// a consistent listing of the rotated files before it goes on with one
// that is not.
const maxUnstablePolls = 20

// hookPoint names a point where Follower.hook runs.
type hookPoint int

const (
	hookBeforeLive hookPoint = iota // queueNewer, before it opens the path
	hookAfterLive                   // queueNewer, after it opened the path, before it lists the rotated files
	hookListed                      // listRotated, after it read the directory, before it opens the files
)

func (f *Follower) runHook(p hookPoint) {
	if f.hook != nil {
		f.hook(p)
	}
}

// advance switches to the next queued file; false if none.
func (f *Follower) advance() bool {
	if len(f.queue) == 0 {
		return false
	}
	next := f.queue[0]
	f.queue = f.queue[1:]
	if err := f.switchTo(next); err != nil {
		f.log.Warn("skipping queued file", "file", next.name, "err", err)
	}
	return true
}

func (f *Follower) openLive() error {
	s, err := openSource(f.path)
	if err != nil {
		return err
	}
	if s.f == nil {
		if !f.waiting {
			f.log.Info("waiting for file to appear")
			f.waiting = true
		}
		return nil
	}
	f.waiting = false
	s.live = true
	return f.switchTo(s)
}

func (f *Follower) switchTo(s source) error {
	f.closeCur()
	f.cur = s
	f.base, f.r, f.w = s.off, 0, 0
	f.lastGrowth = time.Now()
	if err := f.refreshFingerprint(); err != nil {
		f.closeCur()
		return err
	}
	return nil
}

func (f *Follower) closeCur() {
	if f.cur.f != nil {
		f.cur.f.Close()
	}
	f.cur = source{}
	f.deletedLogged, f.strayLogged = false, false
	f.base, f.r, f.w = 0, 0, 0
	f.atEOF = false
	f.fpLen, f.fp = 0, ""
	f.skipping, f.skipLen, f.skipPrefix = false, 0, nil
}

func (f *Follower) pos(off int64) Position {
	return Position{
		Path:        f.cur.name,
		Dev:         f.cur.id.dev,
		Inode:       f.cur.id.ino,
		Fingerprint: f.fp,
		Offset:      off,
	}
}

func (f *Follower) gap(g Gap) {
	f.log.Warn("data lost", "reason", g.Reason, "at", g.At.String(), "bytes", g.Bytes)
	if f.opts.OnGap != nil {
		f.opts.OnGap(g)
	}
}

func (f *Follower) sleep(ctx context.Context) error {
	t := time.NewTimer(f.opts.PollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (f *Follower) closeAll() {
	f.closeCur()
	for _, s := range f.queue {
		s.f.Close()
	}
	f.queue = nil
}

// Close releases the open files. Next returns ErrClosed afterwards.
func (f *Follower) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	f.closeAll()
	return nil
}
