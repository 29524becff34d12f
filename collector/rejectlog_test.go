package collector

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/schemas"
)

// Regression: every rejected input line was logged, so 5 MB of garbage
// made about 20 000 warnings. Now the first few are logged one by one and
// the rest in one summary line per interval, while the reject counter
// counts every line and every line still gets its dead letter.
func TestRejectLogBounded(t *testing.T) {
	kcfg, _ := kafkatest.Start(t, 1)
	dir := t.TempDir()
	cfg := testConfig(t, kcfg, dir)
	var garbage strings.Builder
	lines := 0
	for garbage.Len() < 5<<20 {
		if lines%2 == 0 {
			fmt.Fprintf(&garbage, "garbage %06d %s\n", lines, strings.Repeat("x", 240))
		} else {
			fmt.Fprintf(&garbage, "type=SYSCALL msg=audit(not-a-time:%d): %s\n", lines, strings.Repeat("y", 220))
		}
		lines++
	}
	appendFile(t, cfg.Input.Path, garbage.String())
	dead := newConsumer(t, kcfg, schemas.TopicDeadLetter, 1)
	reg := prometheus.NewRegistry()
	logs := newLogRecorder(t)
	run := runCollector(t, cfg, reg, slog.New(logs))
	dead.waitFor(t, "a dead letter per line", 60*time.Second, atLeast(lines))
	dead.drain(t)
	if _, err := run.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	rejects := metricValue(t, reg, "auditpipe_collector_rejects_total", "reason", "no_type") +
		metricValue(t, reg, "auditpipe_collector_rejects_total", "reason", "bad_timestamp")
	if int(rejects) != lines {
		t.Errorf("auditpipe_collector_rejects_total{no_type,bad_timestamp} = %v, want %d", rejects, lines)
	}
	sources := map[string]bool{}
	for _, m := range dead.msgs {
		var d schemas.DeadLetter
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatal(err)
		}
		sources[d.Source] = true
	}
	if len(dead.msgs) != lines || len(sources) != lines {
		t.Errorf("%d dead letters for %d distinct lines, want one for each of %d", len(dead.msgs), len(sources), lines)
	}
	// The whole file is read within one interval: the burst, then one
	// summary (at the stop, if not at the end of the interval).
	one := logs.countExact("rejected input line")
	summaries := logs.count("more rejected input lines")
	if one != rejectLogBurst || summaries != 1 {
		t.Errorf("%d rejected lines logged one by one and %d summaries, want %d and 1 (%d lines rejected)", one, summaries, rejectLogBurst, lines)
	}
	if got := metricValue(t, reg, "auditpipe_collector_reject_logs_suppressed_total"); int(got) != lines-rejectLogBurst {
		t.Errorf("auditpipe_collector_reject_logs_suppressed_total = %v, want %d", got, lines-rejectLogBurst)
	}
}

// TestRejectLogIntervals: the burst is logged one by one in each interval,
// the rest in one summary line when the interval ends.
func TestRejectLogIntervals(t *testing.T) {
	logs := newLogRecorder(t)
	suppressed := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	l := newRejectLog(slog.New(logs), suppressed)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rej := Reject{Reason: "no_type", Err: fmt.Errorf("no type")}
	tests := []struct {
		at                time.Duration // since t0
		rejects           int
		wantOne, wantSumm int // log lines so far
	}{
		{0, 3, 3, 0},
		{time.Second, 100, rejectLogBurst, 0},
		{rejectLogInterval - time.Second, 5, rejectLogBurst, 0},
		{rejectLogInterval, 2, rejectLogBurst + 2, 1},
		{3 * rejectLogInterval, 0, rejectLogBurst + 2, 1}, // roll without skipped lines: no summary
	}
	for _, tt := range tests {
		now := t0.Add(tt.at)
		for range tt.rejects {
			l.reject(now, rej, "src")
		}
		l.roll(now)
		if one, summ := logs.countExact("rejected input line"), logs.count("more rejected"); one != tt.wantOne || summ != tt.wantSumm {
			t.Errorf("at %v: %d lines one by one and %d summaries, want %d and %d", tt.at, one, summ, tt.wantOne, tt.wantSumm)
		}
	}
}
