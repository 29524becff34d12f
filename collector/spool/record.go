package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"
)

// Segment layout: the 8-byte magic, then records. A record is a 4-byte
// big-endian payload length, a 4-byte big-endian CRC-32 (Castagnoli) of the
// payload, and the payload:
//
//	8 bytes  append time, Unix nanoseconds, big-endian
//	uvarint  len(Meta), Meta
//	uvarint  number of messages
//	per message: uvarint len(Key), Key, uvarint len(Value), Value
const (
	magic        = "APSPOOL\x01"
	recordHeader = 8

	tornSegmentHeader = "torn segment header"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeRecord appends the record for e, appended at t, to dst.
func encodeRecord(dst []byte, e Entry, t time.Time) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, recordHeader)...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.UnixNano()))
	dst = binary.AppendUvarint(dst, uint64(len(e.Meta)))
	dst = append(dst, e.Meta...)
	dst = binary.AppendUvarint(dst, uint64(len(e.Messages)))
	for _, m := range e.Messages {
		dst = binary.AppendUvarint(dst, uint64(len(m.Key)))
		dst = append(dst, m.Key...)
		dst = binary.AppendUvarint(dst, uint64(len(m.Value)))
		dst = append(dst, m.Value...)
	}
	payload := dst[start+recordHeader:]
	binary.BigEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, castagnoli))
	return dst
}

// recordSize is the encoded size of e's record.
func recordSize(e Entry) int64 {
	n := recordHeader + 8 + uvarintLen(len(e.Meta)) + len(e.Meta) + uvarintLen(len(e.Messages))
	for _, m := range e.Messages {
		n += uvarintLen(len(m.Key)) + len(m.Key) + uvarintLen(len(m.Value)) + len(m.Value)
	}
	return int64(n)
}

func uvarintLen(n int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(n))
}

// decodePayload decodes a record payload whose CRC was checked. The entry's
// slices point into p.
func decodePayload(p []byte) (Entry, time.Time, error) {
	if len(p) < 8 {
		return Entry{}, time.Time{}, errors.New("payload shorter than its timestamp")
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(p)))
	p = p[8:]
	bytesField := func(what string) ([]byte, error) {
		n, k := binary.Uvarint(p)
		if k <= 0 {
			return nil, fmt.Errorf("bad length of %s", what)
		}
		p = p[k:]
		if n > uint64(len(p)) {
			return nil, fmt.Errorf("%s length %d beyond the payload", what, n)
		}
		b := p[:n:n]
		p = p[n:]
		return b, nil
	}
	var e Entry
	var err error
	if e.Meta, err = bytesField("meta"); err != nil {
		return Entry{}, at, err
	}
	count, k := binary.Uvarint(p)
	if k <= 0 {
		return Entry{}, at, errors.New("bad message count")
	}
	p = p[k:]
	// Each message takes at least two bytes: a bound before allocating.
	if count > uint64(len(p))/2 {
		return Entry{}, at, fmt.Errorf("message count %d too large for the payload", count)
	}
	if count > 0 {
		e.Messages = make([]Message, count)
	}
	for i := range e.Messages {
		if e.Messages[i].Key, err = bytesField("key"); err != nil {
			return Entry{}, at, err
		}
		if e.Messages[i].Value, err = bytesField("value"); err != nil {
			return Entry{}, at, err
		}
	}
	if len(p) != 0 {
		return Entry{}, at, fmt.Errorf("%d trailing bytes in the payload", len(p))
	}
	return e, at, nil
}

// checkRecord verifies a record read whole from a segment: header, CRC and
// payload. It returns the entry (pointing into rec) and its append time.
func checkRecord(rec []byte) (Entry, time.Time, error) {
	if len(rec) < recordHeader {
		return Entry{}, time.Time{}, errors.New("short record header")
	}
	n := binary.BigEndian.Uint32(rec)
	if int64(n) != int64(len(rec)-recordHeader) {
		return Entry{}, time.Time{}, fmt.Errorf("record length %d, want %d", n, len(rec)-recordHeader)
	}
	payload := rec[recordHeader:]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(rec[4:]) {
		return Entry{}, time.Time{}, errors.New("checksum mismatch")
	}
	return decodePayload(payload)
}

// scanned is one intact record found by scanSegment.
type scanned struct {
	off, size int64
	at        time.Time
}

// scanSegment reads a segment of size bytes from r and calls fn for each
// intact record, in order. It returns the offset just past the last intact
// record and, when the segment does not end there cleanly, a description of
// what follows (a torn or corrupt record, a bad magic). err is for I/O
// errors only.
func scanSegment(r io.Reader, size int64, fn func(scanned)) (end int64, bad string, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var m [len(magic)]byte
	if k, err := io.ReadFull(br, m[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if string(m[:k]) == magic[:k] {
				return 0, tornSegmentHeader, nil
			}
			return 0, "not a spool segment (bad magic)", nil
		}
		return 0, "", err
	}
	if string(m[:]) != magic {
		return 0, "not a spool segment (bad magic)", nil
	}
	off := int64(len(magic))
	var buf []byte
	for off < size {
		var h [recordHeader]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return off, "torn record header", nil
			}
			return off, "", err
		}
		n := int64(binary.BigEndian.Uint32(h[:]))
		if n > size-off-recordHeader {
			return off, fmt.Sprintf("record length %d runs past the end of the segment", n), nil
		}
		if cap(buf) < recordHeader+int(n) {
			buf = make([]byte, recordHeader+int(n))
		}
		rec := buf[:recordHeader+int(n)]
		copy(rec, h[:])
		if _, err := io.ReadFull(br, rec[recordHeader:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return off, "torn record", nil
			}
			return off, "", err
		}
		_, at, err := checkRecord(rec)
		if err != nil {
			return off, err.Error(), nil
		}
		fn(scanned{off: off, size: int64(len(rec)), at: at})
		off += int64(len(rec))
	}
	return off, "", nil
}
