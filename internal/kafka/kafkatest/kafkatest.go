// Package kafkatest starts an in-process Kafka-protocol broker (kfake) for
// tests, with the pipeline's topics created.
package kafkatest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
)

// Start starts a broker for the test, creates the pipeline topics with the
// given number of partitions for the audit topic, and returns a Kafka
// configuration pointing at it. The broker stops when the test ends.
func Start(t testing.TB, partitions int) (kafka.Config, *kafka.Embedded) {
	t.Helper()
	e, err := kafka.StartEmbedded(0, "", partitions)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(e.Close)
	cfg := kafka.Config{Brokers: e.Brokers()}.WithDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cfg.EnsureTopics(ctx, kafka.PipelineTopics(partitions)...); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return cfg, e
}

// Secured is a broker that authenticates and authorizes, embedded or
// Apache Kafka: its superuser's configuration, and each role's.
type Secured interface {
	// Admin is the superuser's configuration (topics, ACLs, reading
	// everything back).
	Admin() kafka.Config
	// Client is the configuration of role's principal: TLS, SASL/SCRAM-SHA-512.
	Client(role kafka.Role) kafka.Config
}

// StartSecure starts an in-process broker as the all-in-one runs it: TLS
// only (a CA and certificate made in a temporary directory), SASL/SCRAM-SHA-512
// with one principal per role, the roles' ACLs, and the pipeline topics.
// It returns the broker, whose Admin and Client give the configurations;
// it stops when the test ends.
func StartSecure(t testing.TB, partitions int) *kafka.Embedded {
	t.Helper()
	dir := t.TempDir()
	e, err := kafka.NewEmbedded(kafka.EmbeddedConfig{
		Partitions:     partitions,
		CredentialsDir: filepath.Join(dir, "credentials"),
		TLSDir:         filepath.Join(dir, "tls"),
	})
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(e.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Admin().EnsureTopics(ctx, kafka.PipelineTopics(partitions)...); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return e
}
