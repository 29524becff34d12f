package verify

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/schemas"
)

// SyslogStats counts what LoadSyslog read.
type SyslogStats struct {
	Lines    int // lines read
	Messages int // auditpipe messages of audit events (with an event_id in our SD element)
	// Lifecycle counts the messages of the policy service's lifecycle
	// events (forwarder.IsLifecycle): not part of any host's chain, they
	// are not checked.
	Lifecycle int
	Skipped   int // other lines: not RFC 5424, or not from auditpipe
	// Overlong are the numbers of the lines longer than MaxSyslogLine,
	// skipped: no auditpipe message is that long, and were one, its seq
	// would show as a gap.
	Overlong []int
}

// MaxSyslogLine is the longest line LoadSyslog reads (without its newline);
// the forwarder's messages are at most its max_message_size (8 KiB by
// default), four times that with rsyslog's #ooo escapes.
const MaxSyslogLine = 16 << 20

// SyslogMessage is one line of a SIEM's file that ParseSyslogLine read.
type SyslogMessage struct {
	Params map[string]string // the SD-PARAMs of the element holding event_id
	MSG    string            // the MSG, rsyslog's #ooo escapes undone
}

// ParseSyslogLine reads one line of a SIEM's file: an RFC 5424 message as
// rsyslog writes it (RSYSLOG_SyslogProtocol23Format, or the raw message),
// optionally wrapped as the test harness writes it ({"raw":"…"}). ok is
// false for a line that is not an auditpipe message.
func ParseSyslogLine(line string) (m SyslogMessage, ok bool) {
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, `{"raw":`) {
		var w struct {
			Raw string `json:"raw"`
		}
		if json.Unmarshal([]byte(line), &w) != nil {
			return m, false
		}
		line = w.Raw
	}
	if i := strings.IndexByte(line, '<'); i > 0 && isDigits(line[:i-1]) && line[i-1] == ' ' {
		line = line[i:] // an octet count left in front
	}
	p := rfc5424.NewParser(rfc5424.WithBestEffort())
	msg, err := p.Parse([]byte(line))
	if msg == nil || (err != nil && msg == nil) {
		return m, false
	}
	sm, _ := msg.(*rfc5424.SyslogMessage)
	if sm == nil || sm.StructuredData == nil {
		return m, false
	}
	for id, params := range *sm.StructuredData {
		if _, has := params["event_id"]; has && strings.Contains(id, "@") {
			m.Params = params
			break
		}
	}
	if m.Params == nil {
		return m, false
	}
	if sm.Message != nil {
		m.MSG = unescapeRsyslog(*sm.Message)
	}
	return m, true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// unescapeRsyslog undoes rsyslog's default escaping of control characters
// ('#' and three octal digits). It cannot tell an escape from the same
// four characters in raw_data: the recomputed hash then differs, and the
// event is reported as altered.
func unescapeRsyslog(s string) string {
	if !strings.Contains(s, "#0") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && i+3 < len(s) && s[i+1] == '0' && s[i+2] >= '0' && s[i+2] <= '3' && s[i+3] >= '0' && s[i+3] <= '7' {
			b.WriteByte((s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// LoadSyslog reads a SIEM's file of forwarded events, reassembles split
// events (forwarder.Reassemble) and rebuilds each copy of an audit event
// (lifecycle events, which the forwarder sends beside them, are counted
// and skipped): from the json
// parameter and the MSG when the messages carry json, whole or, for a
// split event, in pieces (its hash is then recomputed and compared with the
// hash parameter), else from the chain parameters alone (the hash
// parameter is taken as is). Records are in
// file order. A reassembly that fails is returned as a finding.
func LoadSyslog(r io.Reader) ([]Record, []Finding, SyslogStats, error) {
	var st SyslogStats
	var recs []Record
	var finds []Finding
	type pending struct {
		parts []forwarder.Received
		line  int
	}
	open := map[string]*pending{} // split events being collected, by event_id
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for {
		var long bool
		var err error
		line, long, err = readLine(br, line[:0], MaxSyslogLine)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, st, fmt.Errorf("verify: read syslog file: line %d: %w", st.Lines+1, err)
		}
		st.Lines++
		if long {
			// One line too long used to end the reading, so that a line
			// anyone could send to the SIEM stopped every check after it.
			st.Overlong = append(st.Overlong, st.Lines)
			continue
		}
		m, ok := ParseSyslogLine(string(line))
		if !ok {
			st.Skipped++
			continue
		}
		if forwarder.IsLifecycle(m.Params) {
			st.Lifecycle++
			continue
		}
		st.Messages++
		where := "line " + strconv.Itoa(st.Lines)
		rcv := forwarder.Received{Params: m.Params, MSG: m.MSG}
		if _, split := m.Params["parts"]; !split {
			rec, f := syslogRecord([]forwarder.Received{rcv}, where)
			recs, finds = appendResult(recs, finds, rec, f)
			continue
		}
		id := m.Params["event_id"]
		p := open[id]
		if p == nil {
			p = &pending{line: st.Lines}
			open[id] = p
		}
		part, _ := strconv.Atoi(m.Params["part"])
		n, _ := strconv.Atoi(m.Params["parts"])
		if part == 1 && len(p.parts) > 0 {
			p.parts = p.parts[:0] // a resend starts again
		}
		p.parts = append(p.parts, rcv)
		if part == n {
			rec, f := syslogRecord(p.parts, "lines "+strconv.Itoa(p.line)+".."+strconv.Itoa(st.Lines))
			recs, finds = appendResult(recs, finds, rec, f)
			delete(open, id)
		}
	}
	for id, p := range open {
		seq, _ := strconv.ParseUint(p.parts[0].Params["seq"], 10, 64)
		finds = append(finds, Finding{Host: p.parts[0].Params["host"], Seq: seq, Kind: FindAltered,
			Detail: fmt.Sprintf("event %s from line %d: %d parts of %s, the rest never came", id, p.line, len(p.parts), p.parts[0].Params["parts"])})
	}
	return recs, finds, st, nil
}

// readLine reads the next line of br into buf, without its "\n". A line
// longer than max bytes is read to its end but not kept: long is then true
// and line empty. It returns io.EOF when no line is left.
func readLine(br *bufio.Reader, buf []byte, max int) (line []byte, long bool, err error) {
	read := false
	for {
		chunk, err := br.ReadSlice('\n')
		read = read || len(chunk) > 0
		if !long {
			buf = append(buf, chunk...)
			if len(bytes.TrimSuffix(buf, []byte("\n"))) > max {
				long, buf = true, buf[:0]
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && !read:
			return buf, false, io.EOF
		case err != nil && err != io.EOF:
			return buf, false, err
		}
		return bytes.TrimSuffix(buf, []byte("\n")), long, nil
	}
}

func appendResult(recs []Record, finds []Finding, rec *Record, f *Finding) ([]Record, []Finding) {
	if rec != nil {
		recs = append(recs, *rec)
	}
	if f != nil {
		finds = append(finds, *f)
	}
	return recs, finds
}

// syslogRecord rebuilds one copy of an event from its messages: from the
// json (forwarder.ReassembleJSON: whole, or in pieces across the parts of
// a split event) and the reassembled raw_data when the messages carry
// json, else from the chain parameters alone.
func syslogRecord(msgs []forwarder.Received, where string) (*Record, *Finding) {
	p := msgs[0].Params
	seq, _ := strconv.ParseUint(p["seq"], 10, 64)
	bad := func(format string, args ...any) (*Record, *Finding) {
		return nil, &Finding{Host: p["host"], Seq: seq, Kind: FindAltered, Detail: fmt.Sprintf("event %s (%s): ", p["event_id"], where) + fmt.Sprintf(format, args...)}
	}
	raw, err := forwarder.Reassemble(msgs)
	if err != nil {
		return bad("%v", err)
	}
	js, hasJSON, err := forwarder.ReassembleJSON(msgs)
	if err != nil {
		return bad("%v", err)
	}
	rec := &Record{Claimed: p["hash"], Where: where}
	if hasJSON {
		if err := rec.Event.DecodeJSON([]byte(js)); err != nil {
			return bad("json parameter: %v", err)
		}
		rec.Event.RawData = raw
		rec.Hash, rec.ContentChecked = rec.Event.Hash(), true
		e := &rec.Event
		// The plain parameters are what a SIEM rule reads: in every part,
		// they must say what the chained json says, and name one hash.
		want := [...]struct{ k, v string }{{"req_auth_id", e.ReqAuthID}, {"layer", e.Layer}, {"event", string(e.Event)}, {"loginid", e.LoginID},
			{"host", e.Host}, {"event_id", e.EventID}, {"seq", strconv.FormatUint(e.Seq, 10)}, {"prev_hash", e.PrevHash}, {"hash", p["hash"]}}
		for i, m := range msgs {
			for _, w := range want {
				if v := m.Params[w.k]; v != w.v {
					of := ""
					if len(msgs) > 1 {
						of = " of part " + strconv.Itoa(i+1)
					}
					says := "the chained json says"
					if w.k == "hash" {
						says = "part 1 says"
					}
					return rec, &Finding{Host: e.Host, Seq: e.Seq, Kind: FindAltered, Detail: fmt.Sprintf("event %s (%s): parameter %s%s=%q, %s %q", e.EventID, where, w.k, of, v, says, w.v)}
				}
			}
		}
		return rec, nil
	}
	rec.Event = schemas.Event{Event: schemas.Kind(p["event"]), Host: p["host"], EventID: p["event_id"], Seq: seq, PrevHash: p["prev_hash"],
		ReqAuthID: p["req_auth_id"], LoginID: p["loginid"], Layer: p["layer"], RawData: raw}
	rec.Hash = p["hash"]
	return rec, nil
}
