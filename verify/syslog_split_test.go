package verify

import (
	"crypto/ed25519"
	"crypto/rand"
	"regexp"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestSyslogSplitEventTampered is the regression test for the issue 9
// blocker: split events were sent without json, so verify --from-syslog
// reported every one content_not_verified (exit 3) and could tell nothing
// about their fields. They carry the json now, in pieces across their
// parts (at 600 bytes every message is split and the json takes several
// parts): a clean file verifies intact, and changing any field of the
// reassembled json, dropping, repeating or changing a json piece or its
// offset, dropping or changing a part, or a plain parameter of any part,
// is a finding with the host and seq.
func TestSyslogSplitEventTampered(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]ed25519.PublicKey{schemas.ChainKeyID(pub): pub}
	jsonRE := regexp.MustCompile(` json="(\\.|[^"\\])*" json_offset="[0-9]*"`)
	// jsonPart returns the index of the first of seq 7's lines whose json
	// piece holds s (as the SD-PARAM value escapes it).
	jsonPart := func(t *testing.T, l []string, s string) int {
		t.Helper()
		for _, i := range linesOf(l, 7) {
			if m := jsonRE.FindString(l[i]); strings.Contains(m, s) {
				return i
			}
		}
		t.Fatalf("no json piece of seq 7 holds %q", s)
		return 0
	}
	const ts = `\"ts\":\"2024`
	// A copy that does not reassemble is no copy: its seq is missing
	// from the chain and its checkpoint, and the reason is a finding.
	const gone = "1:uncovered 7:gap 7:checkpoint_event 7:altered"
	tests := []struct {
		name   string
		tamper func(t *testing.T, l []string) []string
		want   string // the findings; "" for intact
		detail string // in the report
	}{
		{name: "clean", tamper: func(_ *testing.T, l []string) []string { return l }},
		{name: "a field of the json changed", tamper: func(t *testing.T, l []string) []string {
			i := jsonPart(t, l, ts)
			l[i] = strings.Replace(l[i], ts, `\"ts\":\"2025`, 1)
			return l
		}, want: "1:uncovered 7:altered 8:broken_link", detail: "its content hashes to"},
		{name: "a field of the json changed with its plain parameter", tamper: func(t *testing.T, l []string) []string {
			for _, i := range linesOf(l, 7) {
				l[i] = strings.ReplaceAll(l[i], "req-a", "req-b")
			}
			return l
		}, want: "1:uncovered 7:altered 8:broken_link", detail: "its content hashes to"},
		{name: "the first json piece dropped", tamper: func(_ *testing.T, l []string) []string {
			i := linesOf(l, 7)[0]
			l[i] = jsonRE.ReplaceAllString(l[i], "")
			return l
		}, want: gone, detail: "json piece at offset"},
		{name: "the last json piece dropped", tamper: func(_ *testing.T, l []string) []string {
			last := -1
			for _, i := range linesOf(l, 7) {
				if jsonRE.MatchString(l[i]) {
					last = i
				}
			}
			l[last] = jsonRE.ReplaceAllString(l[last], "")
			return l
		}, want: gone, detail: "json parameter"},
		{name: "every json piece dropped", tamper: func(_ *testing.T, l []string) []string {
			for _, i := range linesOf(l, 7) {
				l[i] = jsonRE.ReplaceAllString(l[i], "")
			}
			return l
		}, want: "7:content_not_verified"},
		{name: "a json piece repeated", tamper: func(_ *testing.T, l []string) []string {
			p := linesOf(l, 7)
			l[p[1]] = strings.Replace(l[p[1]], jsonRE.FindString(l[p[1]]), jsonRE.FindString(l[p[0]]), 1)
			return l
		}, want: gone, detail: "json piece at offset"},
		{name: "a json offset changed", tamper: func(_ *testing.T, l []string) []string {
			i := linesOf(l, 7)[1]
			l[i] = regexp.MustCompile(`json_offset="[0-9]*"`).ReplaceAllString(l[i], `json_offset="1"`)
			return l
		}, want: gone, detail: "json piece at offset 1"},
		{name: "a part dropped", tamper: func(_ *testing.T, l []string) []string {
			i := linesOf(l, 7)[1]
			return append(l[:i:i], l[i+1:]...)
		}, want: gone, detail: "reassemble: "},
		{name: "a part's MSG changed", tamper: func(_ *testing.T, l []string) []string {
			p := linesOf(l, 7)
			i := p[len(p)-1]
			l[i] = l[i][:len(l[i])-1] + "X"
			return l
		}, want: gone, detail: "SHA-256"},
		{name: "a plain parameter of a later part changed", tamper: func(_ *testing.T, l []string) []string {
			p := linesOf(l, 7)
			i := p[len(p)-1]
			l[i] = strings.Replace(l[i], `req_auth_id="req-a"`, `req_auth_id="req-b"`, 1)
			return l
		}, want: "7:altered", detail: "parameter req_auth_id of part"},
		{name: "the hash of a later part changed", tamper: func(_ *testing.T, l []string) []string {
			p := linesOf(l, 7)
			i := p[len(p)-1]
			l[i] = regexp.MustCompile(` hash="[0-9a-f]*"`).ReplaceAllString(l[i], ` hash="00"`)
			return l
		}, want: "7:altered", detail: "part 1 says"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := syslogFormat
			f.MaxSize = 600
			l := syslogLines(t, f, clickhousetest.ChainedEvents(t, "web01", 30, 10, key))
			if p := linesOf(l, 7); len(p) < 3 || !strings.Contains(l[p[1]], ` json="`) {
				t.Fatalf("seq 7 in %d parts, want the json in two or more", len(p))
			}
			l = tc.tamper(t, l)
			rep := checkSyslogLines(t, l, keys)
			h := hostReport(t, rep, "web01")
			var out strings.Builder
			_ = rep.Write(&out)
			if got := kinds(h); got != tc.want || rep.Intact() != (tc.want == "") {
				t.Errorf("findings %q (intact %v), want %q\n%s", got, rep.Intact(), tc.want, out.String())
			}
			if tc.want == "" && (h.Events != 30 || h.Valid != 3 || h.Unchecked != 0) {
				t.Errorf("clean: %+v", h)
			}
			if !strings.Contains(out.String(), tc.detail) {
				t.Errorf("report lacks %q:\n%s", tc.detail, out.String())
			}
		})
	}
}
