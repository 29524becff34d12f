package collector

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLineBytes bounds one input line. auditd's own records are at
// most about 9 KiB (MAX_AUDIT_MESSAGE_LENGTH plus the header), so a longer
// line is not an audit record.
const DefaultMaxLineBytes = 64 << 10

// LineTooLongError reports an input line over the limit. Prefix holds its
// first bytes (up to the limit) for the dead letter; the rest was skipped.
type LineTooLongError struct {
	Len    int
	Limit  int
	Prefix []byte
}

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("line of %d bytes is over the %d-byte limit", e.Len, e.Limit)
}

// ReadLines calls fn for each line of r (newline included when present). A
// line longer than maxLen is not delivered whole: fn gets a nil line and a
// *LineTooLongError, and reading goes on with the next line. fn's error
// stops the loop and is returned.
func ReadLines(r io.Reader, maxLen int, fn func(line []byte, err error) error) error {
	if maxLen <= 0 {
		maxLen = DefaultMaxLineBytes
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	total := 0
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if total < maxLen {
				long = append(long, chunk[:min(len(chunk), maxLen-total)]...)
			}
			total += len(chunk)
			continue
		case err != nil && !errors.Is(err, io.EOF):
			return fmt.Errorf("read input: %w", err)
		}
		if total > 0 || len(chunk) > maxLen {
			if total < maxLen {
				long = append(long, chunk[:min(len(chunk), maxLen-total)]...)
			}
			total += len(chunk)
			var ferr error
			if total > maxLen {
				ferr = fn(nil, &LineTooLongError{Len: total, Limit: maxLen, Prefix: long})
			} else {
				ferr = fn(long, nil)
			}
			if ferr != nil {
				return ferr
			}
			long, total = long[:0], 0
		} else if len(chunk) > 0 {
			if ferr := fn(chunk, nil); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			return nil
		}
	}
}
