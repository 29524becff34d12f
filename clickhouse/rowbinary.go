package clickhouse

import (
	"encoding/binary"
	"fmt"
)

// RowBinary: the embedded engine's insert of audit events. ClickHouse
// reads RowBinary without parsing: each value is its bytes (integers
// little-endian, strings and arrays as a LEB128 length and the content), in
// the order of the INSERT's column list. JSONEachRow, the earlier form,
// cost chDB about 8 µs per event to parse, as much as the rest of its
// insert (bench/README.md, Indexer); here the indexer writes the columns
// from the event it has decoded anyway.
//
// The rows are not inline data after FORMAT RowBinary: chDB splits its
// input into statements as clickhouse-client does, and the inline data of
// an INSERT ends at the first empty line ("\n\n"), which binary data holds
// wherever two bytes happen to be 0x0A (a seq of 2570 is 0A 0A 00 …): the
// rest of the batch would be cut off, silently when the cut fell between
// two rows. They go as a query parameter instead, bound by chDB apart from
// the statement (in ClickHouse's escaped form, so any byte is carried), read
// by the format table function.

// eventsRowBinaryInsert is the statement, to be followed by the quoted
// token and eventsRowBinarySelect; the structure names each column
// of eventColumns with its type in RowBinary (a LowCardinality(String)
// column reads a String), in the order appendEventsRowBinary writes them.
const eventsRowBinaryInsert = "INSERT INTO audit_events (" + eventColumns + ") SETTINGS insert_deduplication_token = " +
	""

const eventsRowBinarySelect = " SELECT * FROM format(RowBinary, 'ts DateTime64(3, \\'UTC\\'), event String, layer String, host String, req_auth_id String, " +
	"loginid String, event_id FixedString(32), seq UInt64, srchost String, desthost String, res String, pid String, ppid String, " +
	"ses String, rec_id String, tty String, euid String, exe String, cwd String, title String, args Array(String), keys String, " +
	"time String, raw_data String, kafka_partition Int32, kafka_offset Int64, escaped Array(String), prev_hash String, " +
	"content_hash String, chain_first UInt64, chain_last UInt64, chain_count UInt64, chain_head String, key_id String, sig String', " +
	"{rows:String})"

// appendEventsRowBinary appends rows in RowBinary, in eventColumns' order.
// An event id that is not 32 bytes (its FixedString(32) column) is refused
// as a row error (IsRowError): RowBinary has no delimiter that would let
// ClickHouse find the next row after a value of the wrong size.
func appendEventsRowBinary(b []byte, rows []EventRow) ([]byte, error) {
	for i := range rows {
		r := &rows[i]
		e := &r.Event
		if len(e.EventID) != 32 {
			return b, fmt.Errorf("row %d (event_id %q): %w: event_id is not 32 bytes", i, e.EventID, errRowAppend)
		}
		b = binary.LittleEndian.AppendUint64(b, uint64(r.TS.UnixMilli())) // DateTime64(3): Int64 ms
		b = appendRBString(b, string(e.Event))
		b = appendRBString(b, e.Layer)
		b = appendRBString(b, e.Host)
		b = appendRBString(b, e.ReqAuthID)
		b = appendRBString(b, e.LoginID)
		b = append(b, e.EventID...) // FixedString(32): the bytes, no length
		b = binary.LittleEndian.AppendUint64(b, e.Seq)
		b = appendRBString(b, e.SrcHost)
		b = appendRBString(b, e.DestHost)
		b = appendRBString(b, e.Res)
		b = appendRBString(b, e.PID)
		b = appendRBString(b, e.PPID)
		b = appendRBString(b, e.Ses)
		b = appendRBString(b, e.RecID)
		b = appendRBString(b, e.TTY)
		b = appendRBString(b, e.EUID)
		b = appendRBString(b, e.Exe)
		b = appendRBString(b, e.Cwd)
		b = appendRBString(b, e.Title)
		b = appendRBStrings(b, e.Args)
		b = appendRBString(b, e.Keys)
		b = appendRBString(b, e.Time)
		b = appendRBString(b, e.RawData)
		b = binary.LittleEndian.AppendUint32(b, uint32(r.Partition)) // Int32
		b = binary.LittleEndian.AppendUint64(b, uint64(r.Offset))    // Int64
		b = appendRBStrings(b, e.Escaped)
		b = appendRBString(b, e.PrevHash)
		b = appendRBString(b, r.ContentHash)
		b = binary.LittleEndian.AppendUint64(b, e.ChainFirst)
		b = binary.LittleEndian.AppendUint64(b, e.ChainLast)
		b = binary.LittleEndian.AppendUint64(b, e.ChainCount)
		b = appendRBString(b, e.ChainHead)
		b = appendRBString(b, e.KeyID)
		b = appendRBString(b, e.Sig)
	}
	return b, nil
}

// rowBinarySize is an upper bound of appendEventsRowBinary's output for
// rows, for one allocation of the statement.
func rowBinarySize(rows []EventRow) int {
	n := 0
	for i := range rows {
		e := &rows[i].Event
		// Fixed-size columns, and a length prefix of at most 10 bytes for
		// each of the 26 strings and arrays.
		n += 8 + 32 + 8 + 4 + 8 + 3*8 + 26*binary.MaxVarintLen64
		n += len(e.Event) + len(e.Layer) + len(e.Host) + len(e.ReqAuthID) + len(e.LoginID) + len(e.SrcHost) + len(e.DestHost) +
			len(e.Res) + len(e.PID) + len(e.PPID) + len(e.Ses) + len(e.RecID) + len(e.TTY) + len(e.EUID) + len(e.Exe) + len(e.Cwd) +
			len(e.Title) + len(e.Keys) + len(e.Time) + len(e.RawData) + len(e.PrevHash) + len(rows[i].ContentHash) +
			len(e.ChainHead) + len(e.KeyID) + len(e.Sig)
		for _, a := range e.Args {
			n += binary.MaxVarintLen64 + len(a)
		}
		for _, a := range e.Escaped {
			n += binary.MaxVarintLen64 + len(a)
		}
	}
	return n
}

func appendRBString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendRBStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendRBString(b, s)
	}
	return b
}

// appendEscaped appends src in ClickHouse's escaped text form, the form of
// a query parameter's value (as StringParam, without a string's copies).
func appendEscaped(dst, src []byte) []byte {
	start := 0
	for i, c := range src {
		var esc byte
		switch c {
		case '\\':
			esc = '\\'
		case '\t':
			esc = 't'
		case '\n':
			esc = 'n'
		case '\r':
			esc = 'r'
		case 0:
			esc = '0'
		default:
			continue
		}
		dst = append(dst, src[start:i]...)
		dst = append(dst, '\\', esc)
		start = i + 1
	}
	return append(dst, src[start:]...)
}
