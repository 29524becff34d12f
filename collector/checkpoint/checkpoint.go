// Package checkpoint keeps a small piece of state, such as the collector's
// read position, in a JSON file that survives crashes and power loss.
//
// Save replaces the file atomically: the new content is written to a
// temporary file in the same directory, synced, renamed over the old file,
// and the directory is synced, so a reader sees either the old state or the
// new one, never a mix or an empty file.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/auditpipe/auditpipe/internal/privfile"
)

// File is a durable JSON state file at a fixed path. It is safe to use from
// one goroutine at a time; two Files must not share a path.
type File struct {
	path string
}

// New returns a File for path. The file and its directory need not exist
// yet; Save creates the file, not the directory.
func New(path string) *File {
	return &File{path: path}
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Load decodes the file into v. found is false, with a nil error, when the
// file does not exist. A file that exists but is empty or not valid JSON is
// an error naming the file; it is never treated as "not found", because
// silently starting over could repeat or lose data.
func (f *File) Load(v any) (found bool, err error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading checkpoint %s: %w", f.path, err)
	}
	if len(b) == 0 {
		return true, fmt.Errorf("checkpoint %s is corrupt: file is empty", f.path)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("checkpoint %s is corrupt: %w", f.path, err)
	}
	return true, nil
}

// Save encodes v as JSON and replaces the file with it atomically and
// durably (privfile.Write). The file is created with mode 0600.
func (f *File) Save(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding checkpoint %s: %w", f.path, err)
	}
	if err := privfile.Write(f.path, append(b, '\n')); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	return nil
}
