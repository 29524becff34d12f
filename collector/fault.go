package collector

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/collector/spool"
	"github.com/auditpipe/auditpipe/collector/tail"
	"github.com/auditpipe/auditpipe/internal/backoff"
)

// Backoff bounds of the retries of a paused operation.
const (
	retryMinDelay = 100 * time.Millisecond
	retryMaxDelay = 5 * time.Second
)

// Operations a local fault can pause; each is the prefix of its reasons.
const (
	opSpool      = "spool"
	opCheckpoint = "checkpoint"
	opInput      = "input"
)

// faultSays is what the log says of a class of fault.
func faultSays(class string) string {
	switch class {
	case "full":
		return "full (spool_max_bytes) until Kafka takes the backlog"
	case "disk_full":
		return "disk full"
	case "read_only":
		return "cannot write (read-only file system or permission denied)"
	case "not_regular":
		return "the audit log path is not a regular file, refused"
	case "unreadable":
		return "cannot read the audit log (permission denied)"
	}
	return "I/O error"
}

// faultReasons lists the reason label values of the fault metrics, so that
// they are exported at zero before the first fault.
func faultReasons() []string {
	return []string{
		opSpool + "_full", opSpool + "_disk_full", opSpool + "_read_only", opSpool + "_io_error",
		opCheckpoint + "_disk_full", opCheckpoint + "_read_only", opCheckpoint + "_io_error",
		opInput + "_not_regular", opInput + "_unreadable", opInput + "_io_error",
	}
}

// faultClass names what kind of local fault err is.
func faultClass(op string, err error) string {
	var nr *tail.NotRegularError
	switch {
	case errors.Is(err, spool.ErrFull), errors.Is(err, spool.ErrTooLarge):
		return "full"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "disk_full"
	case errors.As(err, &nr):
		return "not_regular"
	case op == opInput && errors.Is(err, fs.ErrPermission):
		return "unreadable"
	case errors.Is(err, syscall.EROFS), errors.Is(err, fs.ErrPermission):
		return "read_only"
	}
	return "io_error"
}

// fault is one operation of the collector that a local fault (a full disk,
// a read-only state directory, an audit log path that cannot be read) may
// stop for a while. While it fails, what depends on it pauses: the first
// failure is logged once, auditpipe_collector_paused{reason} is 1, every
// failed attempt is counted, and the operation is retried with backoff.
// The recovery is logged once. A fault is used by one goroutine.
type fault struct {
	op     string
	log    *slog.Logger
	paused *prometheus.GaugeVec
	errs   *prometheus.CounterVec
	// onPause, if set, is called at the start of each pause with its reason.
	onPause func(reason string)

	reason   string // of the pause in progress; "" when none
	attempts int
	since    time.Time
}

func (m *metrics) newFault(op string, log *slog.Logger) *fault {
	return &fault{op: op, log: log, paused: m.paused, errs: m.faultErrors}
}

// failed records a failed attempt and returns how long to wait before
// the next one.
func (f *fault) failed(err error) time.Duration {
	class := faultClass(f.op, err)
	reason := f.op + "_" + class
	f.errs.WithLabelValues(reason).Inc()
	if f.reason == "" {
		f.reason, f.since = reason, time.Now()
		f.paused.WithLabelValues(reason).Set(1)
		f.log.Error(fmt.Sprintf("%s: %s, pausing input", f.op, faultSays(class)), "reason", reason, "err", err)
		if f.onPause != nil {
			f.onPause(reason)
		}
	}
	d := backoff.Delay(f.attempts, retryMinDelay, retryMaxDelay)
	f.attempts++
	return d
}

// cleared ends the pause in progress, if any.
func (f *fault) cleared() {
	if f.reason == "" {
		return
	}
	f.log.Info(fmt.Sprintf("%s: recovered, input resumed", f.op), "reason", f.reason,
		"paused_for", time.Since(f.since).Round(time.Millisecond), "failed_attempts", f.attempts)
	f.paused.WithLabelValues(f.reason).Set(0)
	f.reason, f.attempts = "", 0
}

// retry runs op until it succeeds, retrying with backoff and reporting the
// pause through f. When ctx ends first it returns op's last error.
func (f *fault) retry(ctx context.Context, op func() error) error {
	for {
		err := op()
		if err == nil {
			f.cleared()
			return nil
		}
		if !backoff.Sleep(ctx, f.failed(err)) {
			return fmt.Errorf("stopped while paused: %w", err)
		}
	}
}
