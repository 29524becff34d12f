package spool

import (
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"
)

// putHeader fills in the header of rec (length and CRC of what follows it).
func putHeader(rec []byte) {
	payload := rec[recordHeader:]
	binary.BigEndian.PutUint32(rec, uint32(len(payload)))
	binary.BigEndian.PutUint32(rec[4:], crc32.Checksum(payload, castagnoli))
}

// Mutation testing (issue 15): the decoder's bounds were only tested on
// round trips and random damage, where any error will do, so moving a
// bound by one (< for <=, a bound doubled) went unnoticed. Each payload
// here sits on a bound and must fail with the reason of that bound.
func TestCheckRecordReasons(t *testing.T) {
	ts := []byte{0, 0, 0, 0, 0, 0, 0, 1} // the append time: 8 bytes
	payload := func(rest ...byte) []byte { return append(append([]byte{}, ts...), rest...) }
	tests := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"empty payload (a record that is only its header)", nil, "shorter than its timestamp"},
		{"timestamp cut short", ts[:7], "shorter than its timestamp"},
		{"timestamp only", payload(), "bad length of meta"},
		{"meta length cut short", payload(0x80), "bad length of meta"},
		{"meta beyond the payload", payload(5, 'm'), "meta length 5 beyond the payload"},
		{"message count missing", payload(0), "bad message count"},
		{"three messages in four bytes", payload(0, 3, 0, 0, 0, 0), "message count 3 too large"},
		{"key length cut short", payload(0, 1, 0x80, 0x80), "bad length of key"},
		{"trailing bytes", payload(0, 1, 0, 0, 9), "1 trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := make([]byte, recordHeader, recordHeader+len(tt.payload))
			rec = append(rec, tt.payload...)
			putHeader(rec)
			_, _, err := checkRecord(rec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("checkRecord(% x) = %v, want an error saying %q", rec, err, tt.want)
			}
		})
	}
	// Two messages in exactly four bytes sit on the count bound and decode.
	rec := make([]byte, recordHeader)
	rec = append(rec, payload(0, 2, 0, 0, 0, 0)...)
	putHeader(rec)
	e, _, err := checkRecord(rec)
	if err != nil || len(e.Messages) != 2 {
		t.Fatalf("two empty messages: %+v, %v", e, err)
	}
}
