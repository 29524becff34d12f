package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/auditpipe/auditpipe/internal/backoff"
)

// TestClassify: which Kafka errors backoff.Retry tries again. The
// "failed to dial: context deadline exceeded" row catches a bug found in
// TestForwarderTargetSurvivesApacheKafka under load: a dial that timed out
// while the broker restarted was returned as the end of the context, not
// retried, and the forwarder stopped ("a module stopped by itself").
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		err                  error
		retryable, permanent bool
	}{
		{name: "nil", err: nil},
		{name: "cancelled", err: fmt.Errorf("fetch: %w", context.Canceled)},
		{name: "a dial that timed out", err: fmt.Errorf("kafka: group g: failed to dial: %w", context.DeadlineExceeded), retryable: true},
		{name: "connection refused", err: errors.New("dial tcp 127.0.0.1:9092: connect: connection refused"), retryable: true},
		{name: "not leader", err: fmt.Errorf("produce: %w", kafkago.NotLeaderForPartition), retryable: true},
		{name: "authentication", err: fmt.Errorf("sasl: %w", kafkago.SASLAuthenticationFailed), permanent: true},
		{name: "authorization", err: fmt.Errorf("join: %w", kafkago.GroupAuthorizationFailed), permanent: true},
		{name: "record too large", err: fmt.Errorf("produce: %w", kafkago.MessageSizeTooLarge)},
		{name: "already permanent", err: backoff.Permanent(errors.New("x")), permanent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.err)
			if r := backoff.IsRetryable(got); r != tc.retryable {
				t.Errorf("Classify(%v) retryable %v, want %v", tc.err, r, tc.retryable)
			}
			if p := errors.As(got, new(*backoff.PermanentError)); p != tc.permanent {
				t.Errorf("Classify(%v) permanent %v, want %v", tc.err, p, tc.permanent)
			}
			if tc.err != nil && !errors.Is(got, tc.err) {
				t.Errorf("Classify(%v) = %v: the error is lost", tc.err, got)
			}
			if tc.err == nil && got != nil {
				t.Errorf("Classify(nil) = %v", got)
			}
		})
	}
}
