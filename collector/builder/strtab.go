package builder

// strtab gathers an event's string fields in one buffer and turns them into
// strings with a single allocation: each field becomes a substring of one
// string. Fields set twice take the last value, as assignments would.
type strtab struct {
	buf  []byte
	refs []strRef
}

type strRef struct {
	dst        *string
	start, end int
}

func (t *strtab) reset() {
	t.buf = t.buf[:0]
	clear(t.refs)
	t.refs = t.refs[:0]
}

// set queues *dst = v.
func (t *strtab) set(dst *string, v []byte) {
	start := len(t.buf)
	t.buf = append(t.buf, v...)
	t.refs = append(t.refs, strRef{dst, start, len(t.buf)})
}

// mark returns the position where the next in-place value starts.
func (t *strtab) mark() int { return len(t.buf) }

// setFrom queues *dst = what was appended to t.buf since start.
func (t *strtab) setFrom(dst *string, start int) {
	t.refs = append(t.refs, strRef{dst, start, len(t.buf)})
}

// commit assigns every queued field.
func (t *strtab) commit() {
	s := string(t.buf)
	for _, r := range t.refs {
		*r.dst = s[r.start:r.end]
	}
}
