package forwarder

import (
	"fmt"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/schemas"
)

// BenchmarkFramesSplit renders events that do not fit whole with their
// json and reports, beside the time, the messages (parts/op) and the bytes
// on the wire (wire-B/op) per event: what split events carrying the json
// cost (bench/README.md, "Split events with json").
func BenchmarkFramesSplit(b *testing.B) {
	var big strings.Builder
	for i := 0; big.Len() < 50000; i++ {
		fmt.Fprintf(&big, "type=EXECVE msg=audit(10/29/2020 03:20:29.418:%d) : argc=3 a0=echo a1=日本語 a2=%d \n", i, i)
	}
	cmd := func(raw string) *schemas.Event {
		ev := loginEvent()
		ev.Event, ev.Title, ev.Args, ev.RawData = schemas.KindCommand, "echo 日本語", []string{"echo", "日本語"}, raw
		return ev
	}
	for _, tc := range []struct {
		name string
		max  int
		ev   *schemas.Event
	}{
		{"50kB/8192", 8192, cmd(big.String())},
		{"9kB/8192", 8192, cmd(big.String()[:9000])},
		{"login/600", 600, loginEvent()},
		{"50kB/600", 600, cmd(big.String())},
	} {
		b.Run(tc.name, func(b *testing.B) {
			fm := sizedFormatter(b, tc.max)
			b.ReportAllocs()
			var parts, bytes int
			for b.Loop() {
				frames, err := fm.frames(tc.ev)
				if err != nil {
					b.Fatal(err)
				}
				parts, bytes = len(frames), 0
				for _, f := range frames {
					bytes += len(f)
				}
			}
			b.ReportMetric(float64(parts), "parts/op")
			b.ReportMetric(float64(bytes), "wire-B/op")
		})
	}
}
