package forwarder

import (
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/golden"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files")

// TestWireGolden pins the wire form: PRI, the BOM that starts every MSG,
// raw_data's final LF left off (no eol parameter for it), the eol
// parameter otherwise, a split event's part parameters, and the chain
// parameters (seq, prev_hash, hash, and json: whole when the message fits
// with it, else in pieces, with json_offset, in the first parts of a split
// event, beside the MSG's first piece when there is room). At 600 bytes
// every message is split and the json takes several parts; at 1200 it
// fits whole, or in part 1 beside the MSG. The frames are in
// testdata/wire.golden.
func TestWireGolden(t *testing.T) {
	ev := loginEvent()
	ev.RawData = "type=USER_LOGIN msg=audit(04/12/2021 07:38:05.752:1742859) : res=success \n"
	short := ev
	noLF := *ev
	noLF.RawData = "a \r\n\x00"
	long := *ev
	long.RawData = strings.Repeat("0123456789abcde\n", 30)
	tests := []struct {
		name string
		max  int
		raw  string
	}{
		{"one record", 600, short.RawData},
		{"other line ends", 600, noLF.RawData},
		{"empty", 600, ""},
		{"split", 600, long.RawData},
		{"one record, whole", 1200, short.RawData},
		{"split, json beside the MSG", 1200, long.RawData + long.RawData + long.RawData},
	}
	var got strings.Builder
	for _, tc := range tests {
		fm := sizedFormatter(t, tc.max)
		e := *ev
		e.RawData = tc.raw
		frames, err := fm.frames(&e)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i, fr := range frames {
			fmt.Fprintf(&got, "%s #%d: %q\n", tc.name, i, fr)
		}
	}
	golden.Check(t, "testdata/wire.golden", []byte(got.String()), *updateGolden)
}
