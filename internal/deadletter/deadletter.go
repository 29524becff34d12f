// Package deadletter is the one way components put aside input they
// cannot process: a schemas.DeadLetter (component, reason, error, source,
// the input capped at schemas.MaxDeadLetterRaw) written to the dead-letter
// topic, keyed by component, retried until it is written: nothing leaves
// the pipeline silently.
package deadletter

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/auditpipe/auditpipe/internal/backoff"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/schemas"
)

// New builds a dead letter of component for raw, which came from source
// (file and offset, or topic/partition/offset) and host, when known.
func New(component, reason string, cause error, raw []byte, host, source string, now time.Time) schemas.DeadLetter {
	d := schemas.NewDeadLetter(component, reason, cause, raw, now)
	d.Host = host
	d.Source = source
	return d
}

// Record encodes d as a record of the dead-letter topic, keyed by its
// component (the topic's key, see DESIGN.md).
func Record(d schemas.DeadLetter) (kafka.Record, error) {
	v, err := json.Marshal(d)
	if err != nil {
		return kafka.Record{}, fmt.Errorf("dead letter: encode: %w", err)
	}
	return kafka.Record{Key: []byte(d.Component), Value: v}, nil
}

// RecordWriter is where dead letters go: a *kafka.Writer of the
// dead-letter topic.
type RecordWriter interface {
	Write(ctx context.Context, recs ...kafka.Record) error
}

// Writer writes one component's dead letters.
type Writer struct {
	component string
	w         RecordWriter
	closer    func() error
	outage    *backoff.Outage
	policy    backoff.Policy
}

// Open returns a writer of component's dead letters to topic.
func Open(kc kafka.Config, topic, component string, log *slog.Logger) (*Writer, error) {
	kw, err := kc.NewWriter(topic)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	w := NewWriter(component, kw, log)
	w.closer = kw.Close
	return w, nil
}

// NewWriter returns a writer of component's dead letters to w; the
// outages of w are logged to log, once each and their end.
func NewWriter(component string, w RecordWriter, log *slog.Logger) *Writer {
	o := backoff.NewOutage(log, "writing dead letters")
	return &Writer{component: component, w: w, outage: o, policy: backoff.Policy{Min: 100 * time.Millisecond, Max: 5 * time.Second, Outage: o}}
}

// SetBackoff sets the delays between attempts (default 100ms to 5s).
func (w *Writer) SetBackoff(lo, hi time.Duration) { w.policy.Min, w.policy.Max = lo, hi }

// Letter builds a dead letter of the writer's component, now.
func (w *Writer) Letter(reason string, cause error, raw []byte, host, source string) schemas.DeadLetter {
	return New(w.component, reason, cause, raw, host, source, time.Now())
}

// Write writes ds, retrying with backoff until they are written, a
// permanent error, or ctx ends.
func (w *Writer) Write(ctx context.Context, ds ...schemas.DeadLetter) error {
	recs := make([]kafka.Record, 0, len(ds))
	for _, d := range ds {
		r, err := Record(d)
		if err != nil {
			return err
		}
		recs = append(recs, r)
	}
	return w.WriteRecords(ctx, recs...)
}

// WriteRecords writes dead letters already encoded with Record (the
// collector spools them with its batch), retrying as Write does.
func (w *Writer) WriteRecords(ctx context.Context, recs ...kafka.Record) error {
	if len(recs) == 0 {
		return nil
	}
	err := backoff.Retry(ctx, w.policy, func(ctx context.Context) error {
		return kafka.Classify(w.w.Write(ctx, recs...))
	})
	if err != nil {
		return fmt.Errorf("dead letters: %w", err)
	}
	return nil
}

// Close closes the underlying writer when Open made it.
func (w *Writer) Close() error {
	if w.closer == nil {
		return nil
	}
	return w.closer()
}
