package collector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/collector/assemble"
	"github.com/auditpipe/auditpipe/collector/auditlog"
	"github.com/auditpipe/auditpipe/collector/builder"
	"github.com/auditpipe/auditpipe/schemas"
)

// FuzzDecoder feeds arbitrary input through parsing, assembly and building.
// It must never panic; every line is counted; every event it emits is
// valid JSON that decodes strictly into the contract type; every reject
// carries a reason; the canonical bytes the decoder hashed (which parse and
// the collector write as the event) are the event's AppendJSON. Empty lines
// mark the input idle, and the decoder ticks every 8 lines (the assembly
// timeout). It runs thousands of inputs a second: the type table
// is built once (formerly a decoder per input built it, milliseconds each,
// and the target managed 14 inputs in 30 s), and the assembler remembers
// few keys.
func FuzzDecoder(f *testing.F) {
	for _, dir := range []string{"testdata/fixtures", "testdata/seed"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			if len(data) < 8192 {
				f.Add(data)
			}
		}
	}
	names := builder.NewNames(map[uint64]string{0: "root", 1001: "op"}, nil)
	types := auditlog.NewTypes()
	f.Fuzz(func(t *testing.T, data []byte) {
		var bad []string
		var d *Decoder
		var canon [][]byte
		d = newDecoder(types, builder.Config{Host: "h", AllUsers: true, Names: names}, assemble.Options{MaxInFlight: 4, RecentKeys: 16}, func(e *schemas.Event, _ *assemble.Event) {
			b := e.AppendJSON(nil)
			if !bytes.Equal(b, d.Canonical()) {
				bad = append(bad, "canonical bytes differ from AppendJSON: "+string(d.Canonical()))
			}
			canon = append(canon, b)
			var back schemas.Event
			if err := json.Unmarshal(b, &back); err != nil {
				bad = append(bad, err.Error()+": "+string(b))
			} else if err := back.Validate(); err != nil {
				bad = append(bad, err.Error())
			}
		}, func(r Reject) {
			if r.Reason == "" {
				bad = append(bad, "reject without reason")
			}
		})
		// The same input through a decoder whose builder keeps raw_data
		// out of the events (as parse and the collector): the same
		// canonical bytes, event for event.
		var lean *Decoder
		var leanCanon [][]byte
		lean = newDecoder(types, builder.Config{Host: "h", AllUsers: true, Names: names, RawDataInBuffer: true}, assemble.Options{MaxInFlight: 4, RecentKeys: 16}, func(e *schemas.Event, _ *assemble.Event) {
			leanCanon = append(leanCanon, bytes.Clone(lean.Canonical()))
		}, nil)
		lines := bytes.Split(data, []byte("\n"))
		for _, dec := range []*Decoder{d, lean} {
			for i, l := range lines {
				now := time.Unix(int64(i), 0)
				if len(l) == 0 {
					dec.Idle(now)
				}
				dec.Line(l, uint64(i), now)
				if i%8 == 7 {
					dec.Tick(now)
				}
			}
			dec.Flush()
		}
		if len(leanCanon) != len(canon) {
			bad = append(bad, fmt.Sprintf("%d events with RawDataInBuffer, %d without", len(leanCanon), len(canon)))
		}
		for i := range min(len(canon), len(leanCanon)) {
			if !bytes.Equal(canon[i], leanCanon[i]) {
				bad = append(bad, "canonical bytes with RawDataInBuffer differ:\n"+string(leanCanon[i])+"\n"+string(canon[i]))
			}
		}
		if got := d.Stats().Records; got != uint64(len(lines)) {
			t.Fatalf("counted %d records, fed %d lines", got, len(lines))
		}
		if len(bad) > 0 {
			t.Fatal(bad)
		}
	})
}
