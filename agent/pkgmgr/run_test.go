package pkgmgr

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestEachLine(t *testing.T) {
	long := strings.Repeat("x", maxLine+10)
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"empty", "", nil},
		{"lines", "a\nb\n", []string{"a", "b"}},
		{"no final newline", "a\nb", []string{"a", "b"}},
		{"blank lines and CRLF", "\r\nx\r\n\n", []string{"", "x", ""}},
		{"longer than the buffer", strings.Repeat("y", 200<<10) + "\nz\n", []string{strings.Repeat("y", 200<<10), "z"}},
		{"exactly the limit", long[:maxLine] + "\n", []string{long[:maxLine]}},
		{"over the limit", long + "\nafter\n", []string{long[:maxLine] + truncatedMark, "after"}},
		{"over the limit at the end", long, []string{long[:maxLine] + truncatedMark}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			eachLine(strings.NewReader(tc.in), func(s string) { got = append(got, s) })
			if len(got) != len(tc.want) {
				t.Fatalf("got %d lines, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("line %d: got %d bytes %.20q, want %d bytes %.20q", i, len(got[i]), got[i], len(tc.want[i]), tc.want[i])
				}
			}
		})
	}
}

// Regression: the output reader was a bufio.Scanner with a 1 MiB limit; a
// program printing a longer line stopped it and the pipe was closed: the
// program died of SIGPIPE at its next write, and a good run was reported
// failed ("signal: broken pipe") with the rest of its log lost.
func TestRunSurvivesAHugeOutputLine(t *testing.T) {
	p := process{
		prog:      "sh",
		args:      []string{"-c", "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo after"},
		RunConfig: RunConfig{Timeout: 30 * time.Second},
	}
	res := p.run(context.Background())
	if res.Status != Succeeded {
		t.Fatalf("status %v (%s), want succeeded", res.Status, res.Reason)
	}
	var texts []string
	for _, l := range res.Log {
		texts = append(texts, l.Text)
	}
	if len(texts) != 3 || !strings.HasSuffix(texts[1], truncatedMark) || len(texts[1]) != maxLine+len(truncatedMark) || texts[2] != "after" {
		t.Fatalf("log: %d lines, want the command, the cut line and \"after\"", len(texts))
	}
}
