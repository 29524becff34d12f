package collector

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/collector/assemble"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/schemas"
	"github.com/prometheus/client_golang/prometheus"
)

// TestSlowReaderKeepsEvents: regression test for the events the pipeline
// bench saw split (2 incomplete events, 6 late_record rejects of
// well-formed traffic): the assembly timeout was wall-clock time since an
// event's first record, so a collector starved of CPU, reading a backlog
// or waiting at a rotation gave an event up after its first records and
// dead-lettered the rest. Here the decoder ticks for far longer than the
// timeout between the records of one event, the input never idle: the
// event is emitted once, complete, and nothing is rejected. Once the input
// moved on by the timeout (records 3 s newer) an event still without EOE
// is given up; and so it is once the input was idle that long.
func TestSlowReaderKeepsEvents(t *testing.T) {
	wall := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	records := strings.SplitAfter(strings.TrimSuffix(sessionLines(1, 3), "\n"), "\n")
	tests := []struct {
		name string
		// pause runs between the lines of the first event (after its
		// second record), at wall-clock time at.
		pause          func(d *Decoder, at time.Time)
		lines          []string
		wantEvents     int
		wantIncomplete uint64
		wantLate       uint64
	}{
		{
			name: "starved: ticks for 30 s between two records, input not idle",
			pause: func(d *Decoder, at time.Time) {
				for i := range 30 {
					d.Tick(at.Add(time.Duration(i+1) * time.Second))
				}
			},
			lines:      records,
			wantEvents: 3,
		},
		{
			name: "idle for the timeout: the event is given up, its rest is late",
			pause: func(d *Decoder, at time.Time) {
				d.Idle(at)
				d.Tick(at.Add(2 * time.Second))
				d.Tick(at.Add(3 * time.Second))
			},
			lines: records,
			// The first event incomplete (SYSCALL, EXECVE) and the two
			// others; its CWD and PROCTITLE are late, its EOE an orphan.
			wantEvents:     3,
			wantIncomplete: 1,
			wantLate:       2,
		},
		{
			name:  "idle for less than the timeout keeps the event",
			pause: func(d *Decoder, at time.Time) { d.Idle(at); d.Tick(at.Add(2900 * time.Millisecond)) },
			lines: records, wantEvents: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var events []*schemas.Event
			var late uint64
			d := NewDecoder(seedConfig(t), assemble.Options{Timeout: 3 * time.Second}, func(e *schemas.Event, _ *assemble.Event) {
				c := *e
				events = append(events, &c)
			}, func(r Reject) {
				if r.Reason == ReasonLate {
					late++
				}
			})
			now := wall
			for i, l := range tt.lines {
				if i == 2 {
					tt.pause(d, now)
					now = now.Add(time.Minute)
				}
				d.Line([]byte(l), uint64(i), now)
				d.Tick(now)
			}
			d.Flush()
			st := d.AssemblyStats()
			if len(events) != tt.wantEvents || st.Incomplete != tt.wantIncomplete || late != tt.wantLate {
				t.Fatalf("%d events, %d incomplete, %d late; want %d, %d, %d", len(events), st.Incomplete, late, tt.wantEvents, tt.wantIncomplete, tt.wantLate)
			}
			if tt.wantIncomplete == 0 && !strings.Contains(events[0].RawData, "type=EXECVE") {
				t.Errorf("first event lacks its EXECVE record: %s", events[0].RawData)
			}
		})
	}
}

// TestAssemblyTimeoutIdleInput: the follower's idle mark reaches the
// decoder, so an event whose EOE never comes is still emitted (incomplete)
// about the assembly timeout after the input went quiet; the record that
// comes after that is dead-lettered as late_record.
func TestAssemblyTimeoutIdleInput(t *testing.T) {
	kcfg, _ := kafkatest.Start(t, 1)
	dir := t.TempDir()
	cfg := testConfig(t, kcfg, dir)
	cfg.AssemblyTimeout = 500 * time.Millisecond
	lines := strings.SplitAfter(sessionLines(1, 1), "\n")
	appendFile(t, cfg.Input.Path, lines[0]+lines[1])
	events := newConsumer(t, kcfg, schemas.TopicAudit, 1)
	dead := newConsumer(t, kcfg, schemas.TopicDeadLetter, 1)
	stop := startCollector(t, cfg, prometheus.NewRegistry())
	events.waitFor(t, "the incomplete event", 20*time.Second, atLeast(1))
	appendFile(t, cfg.Input.Path, lines[2])
	dead.waitFor(t, "the late record", 20*time.Second, atLeast(1))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := decodeAll(t, events.msgs)
	if len(got) != 1 || !strings.Contains(got[0].RawData, "type=EXECVE") || strings.Contains(got[0].RawData, "type=CWD") {
		t.Fatalf("events %+v, want one with the SYSCALL and EXECVE records only", got)
	}
	var d schemas.DeadLetter
	if err := json.Unmarshal(dead.msgs[0].Value, &d); err != nil {
		t.Fatal(err)
	}
	if d.Reason != ReasonLate || !strings.HasPrefix(d.Raw, "type=CWD") {
		t.Errorf("dead letter %+v, want the CWD record as %s", d, ReasonLate)
	}
}
