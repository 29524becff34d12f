package assemble

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/collector/auditlog"
)

type result struct {
	serial   uint64
	node     string
	types    string
	complete bool
}

func run(t *testing.T, opts Options, lines []string, tick time.Duration) ([]result, *Assembler, []error) {
	t.Helper()
	types := auditlog.NewTypes()
	var out []result
	var errs []error
	var a *Assembler
	a = New(opts, func(ev *Event) {
		var ts []string
		for _, r := range ev.Records {
			ts = append(ts, string(r.Type()))
		}
		out = append(out, result{ev.Serial, ev.Node, strings.Join(ts, ","), ev.Complete})
		a.Release(ev)
	})
	now := time.Unix(0, 0)
	for i, l := range lines {
		if l == idle {
			a.Idle(now)
			now = now.Add(tick)
			a.Maintain(now)
			continue
		}
		var r auditlog.Record
		if err := types.Parse([]byte(l), &r); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if err := a.Push(&r, uint64(i), now); err != nil {
			errs = append(errs, err)
		}
		now = now.Add(tick)
		a.Maintain(now)
	}
	a.Flush()
	return out, a, errs
}

// idle in a test's lines stands for Idle: the input had nothing to read.
const idle = "idle"

func rec(typ string, serial int, node string) string {
	return recAt(typ, 1, serial, node)
}

// recAt is a record of time sec (seconds since the epoch).
func recAt(typ string, sec, serial int, node string) string {
	s := fmt.Sprintf("type=%s msg=audit(%d.000:%d): x=1", typ, sec, serial)
	if node != "" {
		s = "node=" + node + " " + s
	}
	return s
}

func TestAssembler(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		tick  time.Duration
		lines []string
		want  []result
		stats Stats
		nLate int
	}{
		{
			name:  "EOE completes; standalone user records are events at once",
			lines: []string{rec("SYSCALL", 1, ""), rec("USER_LOGIN", 2, ""), rec("EXECVE", 1, ""), rec("EOE", 1, "")},
			want:  []result{{2, "", "USER_LOGIN", true}, {1, "", "SYSCALL,EXECVE", true}},
			stats: Stats{Events: 2},
		},
		{
			name: "interleaved events and nodes keep their records apart",
			lines: []string{rec("SYSCALL", 5, "a"), rec("SYSCALL", 5, "b"), rec("PATH", 5, "b"), rec("PATH", 5, "a"),
				rec("EOE", 5, "b"), rec("EOE", 5, "a")},
			want:  []result{{5, "b", "SYSCALL,PATH", true}, {5, "a", "SYSCALL,PATH", true}},
			stats: Stats{Events: 2},
		},
		{
			name:  "out of order serials",
			lines: []string{rec("SYSCALL", 11, ""), rec("SYSCALL", 10, ""), rec("EOE", 10, ""), rec("EOE", 11, "")},
			want:  []result{{10, "", "SYSCALL", true}, {11, "", "SYSCALL", true}},
			stats: Stats{Events: 2},
		},
		{
			name:  "serial gaps count lost events",
			lines: []string{rec("USER_LOGIN", 1, ""), rec("USER_LOGIN", 2, ""), rec("USER_LOGIN", 6, ""), rec("USER_LOGIN", 7, "")},
			want:  []result{{1, "", "USER_LOGIN", true}, {2, "", "USER_LOGIN", true}, {6, "", "USER_LOGIN", true}, {7, "", "USER_LOGIN", true}},
			stats: Stats{Events: 4, Gaps: 3},
		},
		{
			name:  "window: the oldest open event is flushed incomplete",
			opts:  Options{MaxInFlight: 2},
			lines: []string{rec("SYSCALL", 1, ""), rec("SYSCALL", 2, ""), rec("SYSCALL", 3, ""), rec("EOE", 2, ""), rec("EOE", 3, "")},
			want:  []result{{1, "", "SYSCALL", false}, {2, "", "SYSCALL", true}, {3, "", "SYSCALL", true}},
			stats: Stats{Events: 3, Incomplete: 1},
		},
		{
			name:  "timeout flushes once the input is idle that long; a straggler is late",
			opts:  Options{Timeout: time.Second},
			tick:  600 * time.Millisecond,
			lines: []string{rec("SYSCALL", 1, ""), rec("PATH", 1, ""), idle, idle, rec("PATH", 1, "")},
			want:  []result{{1, "", "SYSCALL,PATH", false}},
			stats: Stats{Events: 1, Incomplete: 1, Late: 1},
			nLate: 1,
		},
		{
			// Regression test for the bench's split events: the timeout
			// was wall-clock time since the first record, so a reader
			// starved of CPU (here 10 s between two records of one event,
			// the input never idle) gave the event up as incomplete and
			// rejected the rest as late_record.
			name: "a starved reader does not split an event",
			opts: Options{Timeout: time.Second},
			tick: 10 * time.Second,
			lines: []string{recAt("SYSCALL", 100, 1, ""), recAt("EXECVE", 100, 1, ""), recAt("CWD", 100, 1, ""),
				recAt("PATH", 100, 1, ""), recAt("EOE", 100, 1, "")},
			want:  []result{{1, "", "SYSCALL,EXECVE,CWD,PATH", true}},
			stats: Stats{Events: 1},
		},
		{
			name:  "idle for less than the timeout does not flush",
			opts:  Options{Timeout: time.Second},
			tick:  400 * time.Millisecond,
			lines: []string{recAt("SYSCALL", 100, 1, ""), idle, idle, recAt("PATH", 100, 1, ""), idle, recAt("EOE", 100, 1, "")},
			want:  []result{{1, "", "SYSCALL,PATH", true}},
			stats: Stats{Events: 1},
		},
		{
			name: "the input's progress by the timeout flushes an event without EOE",
			opts: Options{Timeout: 3 * time.Second},
			tick: 2 * time.Second,
			lines: []string{recAt("SYSCALL", 100, 1, ""), recAt("SYSCALL", 102, 2, ""), recAt("EOE", 102, 2, ""),
				recAt("SYSCALL", 103, 3, ""), recAt("EOE", 103, 3, ""), recAt("PATH", 100, 1, "")},
			want:  []result{{2, "", "SYSCALL", true}, {1, "", "SYSCALL", false}, {3, "", "SYSCALL", true}},
			stats: Stats{Events: 3, Incomplete: 1, Late: 1},
			nLate: 1,
		},
		{
			// A syscall's records carry its entry time and are written
			// at its exit: a long one opens behind newer events.
			name: "progress counts from the event's opening, not from its own time",
			opts: Options{Timeout: 3 * time.Second},
			tick: 5 * time.Second,
			lines: []string{recAt("SYSCALL", 110, 2, ""), recAt("EOE", 110, 2, ""),
				recAt("SYSCALL", 100, 1, ""), recAt("PATH", 100, 1, ""), recAt("EOE", 100, 1, "")},
			want:  []result{{2, "", "SYSCALL", true}, {1, "", "SYSCALL,PATH", true}},
			stats: Stats{Events: 2},
		},
		{
			// A forward step of the host's clock: the event open at that
			// moment gets its records read within the timeout.
			name:  "progress without the wall-clock time does not flush",
			opts:  Options{Timeout: 3 * time.Second},
			tick:  time.Millisecond,
			lines: []string{recAt("SYSCALL", 100, 1, ""), recAt("USER_LOGIN", 4000, 2, ""), recAt("PATH", 100, 1, ""), recAt("EOE", 100, 1, "")},
			want:  []result{{2, "", "USER_LOGIN", true}, {1, "", "SYSCALL,PATH", true}},
			stats: Stats{Events: 2},
		},
		{
			name:  "orphan EOE",
			lines: []string{rec("EOE", 9, "")},
			stats: Stats{OrphanEOE: 1},
		},
		{
			name:  "TTY is standalone",
			lines: []string{rec("TTY", 3, ""), rec("UNKNOWN[2999]", 4, "")},
			want:  []result{{3, "", "TTY", true}, {4, "", "UNKNOWN[2999]", true}},
			stats: Stats{Events: 2},
		},
		{
			name:  "end of input flushes open events",
			lines: []string{rec("SYSCALL", 1, ""), rec("EXECVE", 1, "")},
			want:  []result{{1, "", "SYSCALL,EXECVE", false}},
			stats: Stats{Events: 1, Incomplete: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, a, errs := run(t, tt.opts, tt.lines, tt.tick)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("events\n got %v\nwant %v", got, tt.want)
			}
			if a.Stats() != tt.stats {
				t.Errorf("stats %+v, want %+v", a.Stats(), tt.stats)
			}
			if len(errs) != tt.nLate {
				t.Errorf("errors %v, want %d late", errs, tt.nLate)
			}
			for _, err := range errs {
				if !errors.Is(err, ErrLate) {
					t.Errorf("error %v is not ErrLate", err)
				}
			}
			if a.Open() != 0 {
				t.Errorf("%d events still open after Flush", a.Open())
			}
		})
	}
}

func TestOldestOpenTag(t *testing.T) {
	types := auditlog.NewTypes()
	a := New(Options{}, func(*Event) {})
	push := func(line string, tag uint64) {
		var r auditlog.Record
		if err := types.Parse([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if err := a.Push(&r, tag, time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := a.OldestOpenTag(); ok {
		t.Fatal("empty assembler has an open tag")
	}
	push(rec("SYSCALL", 1, ""), 10)
	push(rec("SYSCALL", 2, ""), 11)
	if tag, ok := a.OldestOpenTag(); !ok || tag != 10 {
		t.Fatalf("oldest = %d %v, want 10", tag, ok)
	}
	push(rec("EOE", 1, ""), 12)
	if tag, ok := a.OldestOpenTag(); !ok || tag != 11 {
		t.Fatalf("oldest = %d %v, want 11", tag, ok)
	}
}
