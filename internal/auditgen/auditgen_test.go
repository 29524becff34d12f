package auditgen_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/collector"
	"github.com/auditpipe/auditpipe/collector/assemble"
	"github.com/auditpipe/auditpipe/collector/builder"
	"github.com/auditpipe/auditpipe/internal/auditgen"
	"github.com/auditpipe/auditpipe/schemas"
)

var update = flag.Bool("update", false, "rewrite golden files")

// decoded is what the collector's own decoding path made of some lines.
type decoded struct {
	kinds   map[string]schemas.Kind // event_id → kind, each emitted once
	dups    int
	rejects []string
	longArg int // events with the split argument restored whole
	stats   collector.DecoderStats
	asm     assemble.Stats
	missing uint64
}

// decode runs lines through collector.Decoder as the collector would,
// configured with g's passwd, group and grants.
func decode(t *testing.T, g *auditgen.Generator, host string, lines []byte) decoded {
	t.Helper()
	dir := t.TempDir()
	pw, gr := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	if err := os.WriteFile(pw, g.Passwd(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gr, g.Group(), 0o644); err != nil {
		t.Fatal(err)
	}
	names, err := builder.LoadNames(pw, gr)
	if err != nil {
		t.Fatal(err)
	}
	grants := builder.StaticGrants{}
	for _, gt := range g.Grants() {
		grants[gt.LoginID] = gt
	}
	out := decoded{kinds: map[string]schemas.Kind{}}
	d := collector.NewDecoder(builder.Config{Layer: "CPS", Host: host, Names: names, Grants: grants}, assemble.Options{},
		func(e *schemas.Event, _ *assemble.Event) {
			if _, ok := out.kinds[e.EventID]; ok {
				out.dups++
			}
			out.kinds[e.EventID] = e.Event
			for _, a := range e.Args {
				if len(a) == 9000 {
					out.longArg++
				}
			}
		}, func(r collector.Reject) {
			out.rejects = append(out.rejects, r.Reason+": "+r.Err.Error()+": "+string(r.Line))
		})
	now := time.Unix(1795600000, 0)
	for i, l := range bytes.SplitAfter(bytes.TrimSuffix(lines, []byte("\n")), []byte("\n")) {
		d.Line(l, uint64(i), now)
	}
	d.Flush()
	out.stats, out.asm, out.missing = d.Stats(), d.AssemblyStats(), d.MissingArgs()
	return out
}

// TestCollectorEmitsWhatGeneratorCounts: the collector's own decoder turns
// every generated event the generator marks expected into exactly one
// contract event with the id and kind the generator reports, and nothing
// else, in every format the generator writes.
func TestCollectorEmitsWhatGeneratorCounts(t *testing.T) {
	tests := []struct {
		name string
		cfg  auditgen.Config
	}{
		{"raw", auditgen.Config{Seed: 1}},
		{"enriched", auditgen.Config{Seed: 2, Enriched: true}},
		{"nodes", auditgen.Config{Seed: 3, Nodes: []string{"cell01", "cell02", "db01"}}},
		{"enriched nodes, many operators, more splits", auditgen.Config{Seed: 4, Enriched: true, Nodes: []string{"cell01", "cell02"}, Operators: 40, SplitEvery: 50}},
		{"no noise", auditgen.Config{Seed: 5, NoisePercent: -1, SplitEvery: -1}},
		{"every grant audits keystrokes", auditgen.Config{Seed: 6, CommandAuditEvery: -1}},
		{"one grant in three commands only", auditgen.Config{Seed: 7, CommandAuditEvery: 3}},
	}
	const events = 20000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := auditgen.New(tt.cfg)
			want := map[string]schemas.Kind{}
			types := map[string]int{}
			var buf []byte
			now := time.Unix(1795600000, 0)
			for i := range events {
				var ev auditgen.Event
				buf, ev = g.Append(buf, now.Add(time.Duration(i)*time.Millisecond/3))
				types[ev.Type]++
				if ev.Expected() {
					id := ev.ID()
					if _, dup := want[id]; dup {
						t.Fatalf("event %d: id %s given twice", i, id)
					}
					want[id] = ev.Kind
				}
			}
			st := g.Stats()
			if st.Events != events || st.Expected != uint64(len(want)) || st.Records != uint64(bytes.Count(buf, []byte("\n"))) {
				t.Fatalf("stats %+v: want %d events, %d expected, %d lines", st, events, len(want), bytes.Count(buf, []byte("\n")))
			}
			got := decode(t, g, "loadgen", buf)
			if len(got.rejects) > 0 {
				t.Fatalf("%d rejects, first: %s", len(got.rejects), got.rejects[0])
			}
			if got.dups > 0 || len(got.kinds) != len(want) {
				t.Fatalf("collector emitted %d distinct events (%d duplicates), generator counted %d", len(got.kinds), got.dups, len(want))
			}
			for id, k := range want {
				if got.kinds[id] != k {
					t.Fatalf("event %s: collector emitted %q, generator expected %q", id, got.kinds[id], k)
				}
			}
			if got.asm.Incomplete > 0 || got.missing > 0 {
				t.Errorf("incomplete events %d, missing arguments %d", got.asm.Incomplete, got.missing)
			}
			// Every activity the generator claims is in the traffic.
			for _, typ := range []string{"SYSCALL", "TTY", "USER_CMD", "USER_LOGIN", "USER_LOGOUT", "USER_START", "USER_END",
				"USER_AUTH", "USER_ACCT", "CRED_ACQ", "CRED_DISP", "CRED_REFR", "LOGIN"} {
				if types[typ] == 0 {
					t.Errorf("no %s event in %d", typ, events)
				}
			}
			kinds := map[schemas.Kind]int{}
			for _, k := range want {
				kinds[k]++
			}
			for _, k := range []schemas.Kind{schemas.KindLogin, schemas.KindLogout, schemas.KindCommand, schemas.KindKeys} {
				if kinds[k] == 0 {
					t.Errorf("no %s event expected in %d", k, events)
				}
			}
			if not := got.stats.Outcomes[builder.NoGrant]; tt.cfg.NoisePercent >= 0 && not == 0 {
				t.Errorf("no event of an unaudited user (no_grant outcomes: %d)", not)
			}
			if keysNot := got.stats.Outcomes[builder.KeysNotAsked]; (keysNot > 0) != (tt.cfg.CommandAuditEvery >= 0) {
				t.Errorf("%d keystroke events of COMMAND_AUDIT grants (CommandAuditEvery %d)", keysNot, tt.cfg.CommandAuditEvery)
			}
			if tt.cfg.SplitEvery >= 0 && got.longArg == 0 {
				t.Errorf("no split argument restored")
			}
			for _, n := range tt.cfg.Nodes {
				if !bytes.Contains(buf, []byte("node="+n+" type=")) {
					t.Errorf("no record of node %s", n)
				}
			}
			if sep := bytes.Contains(buf, []byte{0x1d}); sep != tt.cfg.Enriched {
				t.Errorf("ENRICHED separator present: %v, want %v", sep, tt.cfg.Enriched)
			}
		})
	}
}

// TestDeterministic: the same Config and clock give the same bytes.
func TestDeterministic(t *testing.T) {
	gen := func(seed uint64) []byte {
		g := auditgen.New(auditgen.Config{Seed: seed, Enriched: true, Nodes: []string{"a", "b"}})
		var buf []byte
		for i := range 2000 {
			buf, _ = g.Append(buf, time.Unix(1795600000, int64(i)*1e6))
		}
		return buf
	}
	a, b, c := gen(7), gen(7), gen(8)
	if !bytes.Equal(a, b) {
		t.Fatal("same seed, different traffic")
	}
	if bytes.Equal(a, c) {
		t.Fatal("different seeds, same traffic")
	}
}

// TestGolden pins the first events of a fixed configuration in
// testdata/sample.log (go test -run TestGolden -update rewrites it), so a
// change of the traffic's shape is seen in review.
func TestGolden(t *testing.T) {
	g := auditgen.New(auditgen.Config{Seed: 1, Enriched: true, Nodes: []string{"cell01", "cell02"}, Operators: 3, SplitEvery: -1})
	var buf []byte
	for i := range 120 {
		buf, _ = g.Append(buf, time.Unix(1795600000, 0).Add(time.Duration(i)*137*time.Millisecond))
	}
	path := filepath.Join("testdata", "sample.log")
	if *update {
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, want) {
		gl, wl := strings.Split(string(buf), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("line %d:\n got %q\nwant %q", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("got %d lines, want %d", len(gl), len(wl))
	}
}
