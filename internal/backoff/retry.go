package backoff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// RetryableError marks an error worth trying again after a pause: a broker
// that is away, a leader election in progress, a topic that does not exist
// yet. Retry retries only errors that are (or wrap) one.
type RetryableError struct{ Err error }

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// Retryable marks err as retryable; nil stays nil.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &RetryableError{Err: err}
}

// PermanentError marks an error that no retry can fix: an authorization
// failure, a topic that does not exist after creating it failed. It wins
// over a RetryableError that it wraps or that wraps it.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent error (not retried): " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsRetryable reports whether Retry would try err again: it is a
// RetryableError and not a PermanentError.
func IsRetryable(err error) bool {
	var p *PermanentError
	if errors.As(err, &p) {
		return false
	}
	var r *RetryableError
	return errors.As(err, &r)
}

// Policy says how Retry waits between attempts and when it gives up.
type Policy struct {
	// Min is the first delay, doubled per attempt up to Max (with
	// jitter, see Delay). Defaults 100ms and 5s.
	Min, Max time.Duration
	// MaxElapsed, when positive, ends the retries once that much time
	// has passed since the first failure; the last error is returned.
	MaxElapsed time.Duration
	// Outage, when set, is told of each failure and of the success that
	// ends them: it logs the first failure and the recovery, once each.
	Outage *Outage
}

func (p Policy) withDefaults() Policy {
	if p.Min <= 0 {
		p.Min = 100 * time.Millisecond
	}
	if p.Max < p.Min {
		p.Max = max(5*time.Second, p.Min)
	}
	return p
}

// Retry calls fn until it returns nil, an error that is not retryable (see
// IsRetryable), or ctx ends, waiting with backoff between attempts. It
// returns nil, fn's last error (after ctx ended or MaxElapsed passed:
// joined with the reason the retries stopped).
func Retry(ctx context.Context, p Policy, fn func(ctx context.Context) error) error {
	p = p.withDefaults()
	var first time.Time
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			p.Outage.OK()
			return nil
		}
		if !IsRetryable(err) {
			if errors.As(err, new(*PermanentError)) {
				p.Outage.Fail(err)
			}
			return err // the caller's to handle
		}
		p.Outage.Fail(err)
		if first.IsZero() {
			first = time.Now()
		}
		if p.MaxElapsed > 0 && time.Since(first) >= p.MaxElapsed {
			return fmt.Errorf("gave up after %d attempts in %s: %w", attempt+1, time.Since(first).Round(time.Millisecond), err)
		}
		if !Sleep(ctx, Delay(attempt, p.Min, p.Max)) {
			return errors.Join(err, ctx.Err())
		}
	}
}

// Outage logs a run of failures of one thing as two lines: the first
// failure (at warning level) and the success that ends the run (at info
// level, with how long it lasted and how many failures it held), never a
// line per retry. A PermanentError is logged at error level each time: it
// is not retried. A nil *Outage logs nothing.
// It is safe for concurrent use.
type Outage struct {
	log  *slog.Logger
	what string
	args []any

	mu       sync.Mutex
	since    time.Time
	failures int
}

// NewOutage returns an outage reporter for what (e.g. "writing to Kafka")
// logging to log with args added to each line.
func NewOutage(log *slog.Logger, what string, args ...any) *Outage {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outage{log: log, what: what, args: args}
}

// Fail records a failure; the first of a run is logged.
func (o *Outage) Fail(err error) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var perm *PermanentError
	if errors.As(err, &perm) {
		o.log.Error(o.what+" failed; not retried", append(o.args, "err", err)...)
		return
	}
	o.failures++
	if o.failures > 1 {
		return
	}
	o.since = time.Now()
	o.log.Warn(o.what+" failed; retrying with backoff (logged once until it recovers)", append(o.args, "err", err)...)
}

// OK records a success; the one that ends a run of failures is logged.
func (o *Outage) OK() {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failures == 0 {
		return
	}
	o.log.Info(o.what+" recovered", append(o.args, "failures", o.failures, "down_for", time.Since(o.since).Round(time.Millisecond))...)
	o.failures = 0
}

// Down reports whether the last attempt failed.
func (o *Outage) Down() bool {
	if o == nil {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failures > 0
}
