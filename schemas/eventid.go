package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// NewEventID returns the stable 128-bit id of an audit event as 32 lowercase
// hex digits: the first 16 bytes of SHA-256 over host, the audit timestamp
// (seconds and milliseconds) and the audit serial, NUL-separated. The same
// record read twice (after a restart, from a spool, by a backfill) gets the
// same id, which is the dedup key everywhere downstream.
func NewEventID(host string, sec int64, msec int, serial uint64) string {
	return string(AppendEventID(nil, host, sec, msec, serial))
}

// AppendEventID appends the id NewEventID returns to dst.
func AppendEventID(dst []byte, host string, sec int64, msec int, serial uint64) []byte {
	var buf [128]byte
	b := append(buf[:0], host...)
	b = append(b, 0)
	b = strconv.AppendInt(b, sec, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(msec), 10)
	b = append(b, 0)
	b = strconv.AppendUint(b, serial, 10)
	sum := sha256.Sum256(b)
	return hex.AppendEncode(dst, sum[:16])
}
