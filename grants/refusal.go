package grants

import (
	"errors"
	"log/slog"
	"sync"
	"time"
)

// The rate at which a RefusalLog logs refused records one by one.
const (
	RefusalLogBurst    = 10
	RefusalLogInterval = time.Minute
)

// Reason returns the refusal reason of an error of Decode or
// DecodeAssignment (or of a consumer's own *RefusedError), and
// ReasonMalformed for any other error.
func Reason(err error) string {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ReasonMalformed
}

// RefusalLog logs the refused records of a signed topic at a bounded
// rate: the first RefusalLogBurst of each RefusalLogInterval one by one,
// then, when the interval is over (or at Summarize), one line with the
// number not logged. Its consumers still count every refusal and
// dead-letter it: only the log is bounded, so that a flood of forgeries
// cannot flood the log. The collector uses it for grants, the forwarder
// for assignments. It is safe for concurrent use (a follower applies each
// partition from its own goroutine).
type RefusalLog struct {
	log    *slog.Logger
	what   string // "grant", "assignment": the records' name in the log
	metric string // the counter that counts every refusal

	mu      sync.Mutex
	start   time.Time
	logged  int
	skipped int
}

// NewRefusalLog returns a log of refused records of what ("grant",
// "assignment"), whose every refusal the consumer counts in metric.
func NewRefusalLog(log *slog.Logger, what, metric string) *RefusalLog {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &RefusalLog{log: log, what: what, metric: metric}
}

// Refused logs one refused record, read at source, unless the interval's
// burst is spent.
func (l *RefusalLog) Refused(now time.Time, reason string, err error, source string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= RefusalLogInterval {
		l.summarizeLocked()
		l.start, l.logged = now, 0
	}
	if l.logged < RefusalLogBurst {
		l.logged++
		l.log.Error(l.what+" record refused: it changes nothing", "reason", reason, "err", err, "source", source)
		return
	}
	l.skipped++
}

// Summarize logs the refusals not logged one by one, if any: at the end
// of an interval, and when the consumer stops.
func (l *RefusalLog) Summarize() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.summarizeLocked()
}

func (l *RefusalLog) summarizeLocked() {
	if l.skipped == 0 {
		return
	}
	l.log.Error("more "+l.what+" records refused, not logged one by one (all counted in "+l.metric+" and dead-lettered)",
		"records", l.skipped, "since", l.start.Format(time.RFC3339))
	l.skipped = 0
}
