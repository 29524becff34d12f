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

func rec(typ string, serial int, node string) string {
	s := fmt.Sprintf("type=%s msg=audit(1.000:%d): x=1", typ, serial)
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
			name:  "timeout flushes; a straggler is late",
			opts:  Options{Timeout: time.Second},
			tick:  600 * time.Millisecond,
			lines: []string{rec("SYSCALL", 1, ""), rec("PATH", 1, ""), rec("PATH", 1, "")},
			want:  []result{{1, "", "SYSCALL,PATH", false}},
			stats: Stats{Events: 1, Incomplete: 1, Late: 1},
			nLate: 1,
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
