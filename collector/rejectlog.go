package collector

import (
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The rate at which rejected input lines are logged one by one.
const (
	rejectLogBurst    = 10
	rejectLogInterval = time.Minute
)

// rejectLog logs rejected input lines at a bounded rate: the first
// rejectLogBurst of each rejectLogInterval one by one, then, at the end of
// the interval, one line with the number not logged, by reason. Every
// rejected line is still counted in auditpipe_collector_rejects_total and
// dead-lettered: only the log is bounded (5 MB of garbage made about
// 20 000 warnings). It is used by one goroutine.
type rejectLog struct {
	log        *slog.Logger
	suppressed prometheus.Counter

	start   time.Time // of the current interval
	logged  int       // one by one in the current interval
	skipped map[string]int
}

func newRejectLog(log *slog.Logger, suppressed prometheus.Counter) *rejectLog {
	return &rejectLog{log: log, suppressed: suppressed, skipped: map[string]int{}}
}

// reject logs rej, read at source, unless the interval's burst is spent.
func (l *rejectLog) reject(now time.Time, rej Reject, source string) {
	l.roll(now)
	if l.logged < rejectLogBurst {
		l.logged++
		l.log.Warn("rejected input line", "reason", rej.Reason, "err", rej.Err, "source", source)
		return
	}
	l.skipped[rej.Reason]++
	l.suppressed.Inc()
}

// roll ends the current interval when it is over, logging its summary.
func (l *rejectLog) roll(now time.Time) {
	if now.Sub(l.start) < rejectLogInterval {
		return
	}
	l.summarize()
	l.start, l.logged = now, 0
}

// summarize logs the lines not logged one by one since the last summary,
// if any.
func (l *rejectLog) summarize() {
	if len(l.skipped) == 0 {
		return
	}
	total := 0
	var by []any
	for _, reason := range slices.Sorted(maps.Keys(l.skipped)) {
		total += l.skipped[reason]
		by = append(by, slog.Int(reason, l.skipped[reason]))
	}
	l.log.Warn("more rejected input lines, not logged one by one (all counted in auditpipe_collector_rejects_total and dead-lettered)",
		"lines", total, slog.Group("by_reason", by...), "since", l.start.Format(time.RFC3339))
	clear(l.skipped)
}
