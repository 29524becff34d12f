package kafka

import (
	"context"
	"errors"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/auditpipe/auditpipe/internal/backoff"
)

// ErrUnknownTopic is what a read of a topic that does not exist is (also)
// reported as: errors.Is(err, ErrUnknownTopic).
var ErrUnknownTopic = kafkago.UnknownTopicOrPartition

// The refusals of a secured broker, for errors.Is: wrong or missing
// credentials (a broker may also just close the connection of a client
// that does not authenticate), and a principal whose ACLs do not allow
// the operation on the topic, the consumer group or the cluster.
var (
	ErrSASLAuthenticationFailed   = kafkago.SASLAuthenticationFailed
	ErrTopicAuthorizationFailed   = kafkago.TopicAuthorizationFailed
	ErrGroupAuthorizationFailed   = kafkago.GroupAuthorizationFailed
	ErrClusterAuthorizationFailed = kafkago.ClusterAuthorizationFailed
)

// Classify marks err for backoff.Retry: an authorization or
// authentication failure is permanent (backoff.PermanentError); a failure
// about the request itself (a record too large, an invalid topic name) is
// returned as it is, not retryable; a cancellation is returned as it is;
// anything else — the broker away or restarting, a leader election
// (NotLeaderForPartition), a topic not created yet, a timeout — is
// retryable (backoff.RetryableError). nil stays nil.
//
// A context.DeadlineExceeded is a timeout like any other: kafka-go's
// dialer and requests run under deadlines of their own ("failed to dial:
// context deadline exceeded" while the broker restarts), which must not end
// the caller; when it is the caller's context that ended, backoff.Retry
// stops on it anyway.
func Classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	if backoff.IsRetryable(err) || errors.As(err, new(*backoff.PermanentError)) {
		return err // already classified
	}
	var ke kafkago.Error
	if errors.As(err, &ke) {
		switch {
		case ke.Temporary():
			return backoff.Retryable(err)
		case permanentCodes[ke]:
			return backoff.Permanent(err)
		case requestCodes[ke]:
			return err
		}
		return backoff.Retryable(err)
	}
	if errors.As(err, new(kafkago.MessageTooLargeError)) {
		return err
	}
	return backoff.Retryable(err)
}

// permanentCodes are the Kafka errors no retry fixes: the client is not
// allowed, or not who it says.
var permanentCodes = map[kafkago.Error]bool{
	kafkago.TopicAuthorizationFailed:           true,
	kafkago.GroupAuthorizationFailed:           true,
	kafkago.ClusterAuthorizationFailed:         true,
	kafkago.TransactionalIDAuthorizationFailed: true,
	kafkago.DelegationTokenAuthorizationFailed: true,
	kafkago.SASLAuthenticationFailed:           true,
	kafkago.UnsupportedSASLMechanism:           true,
	kafkago.IllegalSASLState:                   true,
	kafkago.SecurityDisabled:                   true,
}

// requestCodes are the Kafka errors about the request itself: sending it
// again fails the same way; the caller must change it.
var requestCodes = map[kafkago.Error]bool{
	kafkago.MessageSizeTooLarge:      true,
	kafkago.RecordListTooLarge:       true,
	kafkago.InvalidTopic:             true,
	kafkago.InvalidRecord:            true,
	kafkago.InvalidRequiredAcks:      true,
	kafkago.InvalidPartitionNumber:   true,
	kafkago.InvalidReplicationFactor: true,
	kafkago.InvalidConfiguration:     true,
	kafkago.PolicyViolation:          true,
	kafkago.UnsupportedVersion:       true,
}
