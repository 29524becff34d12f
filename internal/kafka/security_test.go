package kafka_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/tlsconfig"
)

// Regression (issue 9): anyone who reached the embedded broker's port
// could produce to it: a copy of a real event with its event_id, or a
// forged grant on opctl.grants.v1. Now the broker serves TLS only,
// authenticates with SASL/SCRAM-SHA-512 and checks each principal's ACLs:
// without credentials, with a wrong password, in plaintext, or outside its
// role, a client is refused, and nothing it sent lands.
func TestEmbeddedBrokerRefuses(t *testing.T) {
	checkRefusals(t, kafkatest.StartSecure(t, 1), false)
}

// checkRefusals runs the attacks against a secured broker. apache: the
// broker answers a wrong password with SASL_AUTHENTICATION_FAILED (kfake
// closes the connection instead, as both do for a client that sends no
// credentials or no TLS).
func checkRefusals(t *testing.T, s kafkatest.Secured, apache bool) {
	t.Helper()
	role := s.Client
	write := func(c kafka.Config, topic string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		w, err := c.NewWriter(topic)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		return w.Write(ctx, kafka.Record{Key: []byte("forged"), Value: []byte(`{"forged":true}`)})
	}
	follow := func(c kafka.Config, topic string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f, err := c.NewFollower(kafka.FollowerConfig{Topic: topic, Apply: func(kafka.Record) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		return f.Run(ctx)
	}
	group := func(c kafka.Config, name, topic string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g, err := c.NewGroupReader(kafka.GroupReaderConfig{Group: name, Topics: []string{topic}})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		return g.Run(ctx, func(context.Context, kafka.Batch) error { return nil })
	}
	// Control: the collector writes the audit topic, the policy service
	// the grants topic.
	if err := write(role(kafka.RoleCollector), kafka.TopicAudit); err != nil {
		t.Fatalf("the collector writing the audit topic: %v", err)
	}
	if err := write(role(kafka.RolePolicy), kafka.TopicGrants); err != nil {
		t.Fatalf("the policy service writing the grants topic: %v", err)
	}
	// Target host's one principal writes what its agent reports.
	if err := write(role(kafka.RoleHost), kafka.TopicAgent); err != nil {
		t.Fatalf("the host writing the agent topic: %v", err)
	}

	anonymous := role(kafka.RoleCollector)
	anonymous.SASL = kafka.SASLConfig{}
	wrong := role(kafka.RoleCollector)
	wrong.SASL.PasswordFile, wrong.SASL.Password = "", "not-the-password"
	plaintext := role(kafka.RoleCollector)
	plaintext.TLS = tlsconfig.Config{}
	closed := func(err error) bool {
		return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
	}
	wrongPassword := closed
	if apache {
		wrongPassword = func(err error) bool { return errors.Is(err, kafka.ErrSASLAuthenticationFailed) }
	}
	topicDenied := func(err error) bool { return errors.Is(err, kafka.ErrTopicAuthorizationFailed) }
	for _, tc := range []struct {
		name string
		try  func() error
		want func(error) bool
		says string
	}{
		{"a producer without credentials", func() error { return write(anonymous, kafka.TopicAudit) }, closed, "the connection closed by the broker"},
		{"a producer with a wrong password", func() error { return write(wrong, kafka.TopicAudit) }, wrongPassword, "SASL authentication failed"},
		{"a producer in plaintext", func() error { return write(plaintext, kafka.TopicAudit) }, closed, "the connection closed by the broker"},
		{"the collector producing a grant", func() error { return write(role(kafka.RoleCollector), kafka.TopicGrants) }, topicDenied, "TOPIC_AUTHORIZATION_FAILED"},
		{"the collector consuming the audit topic", func() error { return follow(role(kafka.RoleCollector), kafka.TopicAudit) }, topicDenied, "TOPIC_AUTHORIZATION_FAILED"},
		{"the collector in the indexer's group", func() error { return group(role(kafka.RoleCollector), "auditpipe-indexer", kafka.TopicAudit) },
			func(err error) bool { return errors.Is(err, kafka.ErrGroupAuthorizationFailed) }, "GROUP_AUTHORIZATION_FAILED"},
		{"the indexer producing an event", func() error { return write(role(kafka.RoleIndexer), kafka.TopicAudit) }, topicDenied, "TOPIC_AUTHORIZATION_FAILED"},
		{"the forwarder producing an assignment", func() error { return write(role(kafka.RoleForwarder), kafka.TopicAssignments) }, topicDenied, "TOPIC_AUTHORIZATION_FAILED"},
		{"the agent producing a grant", func() error { return write(role(kafka.RoleAgent), kafka.TopicGrants) }, topicDenied, "TOPIC_AUTHORIZATION_FAILED"},
		{"the host producing a grant", func() error { return write(role(kafka.RoleHost), kafka.TopicGrants) }, topicDenied, "TOPIC_AUTHORIZATION_FAILED"},
		{"the host producing a dispatch", func() error { return write(role(kafka.RoleHost), kafka.TopicDispatch) }, topicDenied, "TOPIC_AUTHORIZATION_FAILED"},
		{"the host consuming the audit topic", func() error { return follow(role(kafka.RoleHost), kafka.TopicAudit) }, topicDenied, "TOPIC_AUTHORIZATION_FAILED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.try()
			if err == nil {
				t.Fatal("not refused")
			}
			if !tc.want(err) {
				t.Fatalf("refused with %v, want %s", err, tc.says)
			}
		})
	}
	// Nothing refused landed: one record on each topic, the controls'.
	for _, topic := range []string{kafka.TopicAudit, kafka.TopicGrants, kafka.TopicAssignments} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n, err := s.Admin().Lag(ctx, "nobody-reads-this", topic)
		cancel()
		want := int64(1)
		if topic == kafka.TopicAssignments {
			want = 0
		}
		if err != nil || n != want {
			t.Errorf("%s holds %d records (%v), want %d", topic, n, err, want)
		}
	}
	// The indexer reads what the collector wrote.
	recs := kafkatest.Read(t, role(kafka.RoleIndexer), kafka.TopicAudit, 1, 10*time.Second)
	if string(recs[0].Key) != "forged" {
		t.Fatalf("the indexer read %q", recs[0].Key)
	}
}

// TestEmbeddedBrokerCredentials: the secured broker's files are its
// owner's only and kept across restarts (the same password works after a
// restart); a password file deleted is made anew at the next start, the
// old password refused from then on (rotation).
func TestEmbeddedBrokerCredentials(t *testing.T) {
	dir := t.TempDir()
	cfg := kafka.EmbeddedConfig{
		Partitions:     1,
		DataDir:        filepath.Join(dir, "kafka"),
		CredentialsDir: filepath.Join(dir, "kafka-credentials"),
		TLSDir:         filepath.Join(dir, "kafka-tls"),
	}
	start := func() *kafka.Embedded {
		t.Helper()
		e, err := kafka.NewEmbedded(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Admin().EnsureTopics(ctx, kafka.PipelineTopics(1)...); err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := start()
	old, err := os.ReadFile(e.PasswordFile(kafka.RoleCollector))
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(e.CAFile())
	writeAs := func(e *kafka.Embedded, c kafka.Config) error {
		c.Brokers = e.Brokers()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		w, err := c.NewWriter(kafka.TopicAudit)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		return w.Write(ctx, kafka.Record{Value: []byte("x")})
	}
	if err := writeAs(e, e.Client(kafka.RoleCollector)); err != nil {
		t.Fatal(err)
	}
	e.Close()
	// What kfake writes in its log directory it creates 0644 (the
	// all-in-one runs with umask 077; internal/app tests that): the
	// directory itself is private.
	if fi, err := os.Stat(cfg.DataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v %v, want 0700", cfg.DataDir, fi.Mode().Perm(), err)
	}
	checkPrivate(t, cfg.CredentialsDir)
	checkPrivate(t, cfg.TLSDir)

	e = start()
	if again, _ := os.ReadFile(e.CAFile()); string(again) != string(ca) {
		t.Fatal("the restart made a new CA")
	}
	if again, _ := os.ReadFile(e.PasswordFile(kafka.RoleCollector)); string(again) != string(old) {
		t.Fatal("the restart made a new password")
	}
	if err := writeAs(e, e.Client(kafka.RoleCollector)); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	e.Close()

	// Rotation: delete the file, restart.
	if err := os.Remove(e.PasswordFile(kafka.RoleCollector)); err != nil {
		t.Fatal(err)
	}
	e = start()
	defer e.Close()
	stale := e.Client(kafka.RoleCollector)
	stale.SASL.PasswordFile, stale.SASL.Password = "", config.Secret(strings.TrimSpace(string(old)))
	if err := writeAs(e, stale); err == nil {
		t.Fatal("the rotated-out password still works")
	}
	if err := writeAs(e, e.Client(kafka.RoleCollector)); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	checkPrivate(t, cfg.CredentialsDir)
}

// checkPrivate fails the test for any file under dir that others than its
// owner may read (mode not 0600 for files, 0700 for directories).
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || path == dir {
			return err
		}
		n++
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, readable by others than its owner", path, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no files under %s", dir)
	}
}

// TestApacheBrokerRefuses: the same attacks against a real Apache Kafka
// with a SASL_SSL listener, SCRAM-SHA-512, StandardAuthorizer and the
// roles' ACLs (kafkatest.StartApache).
func TestApacheBrokerRefuses(t *testing.T) {
	_, a := kafkatest.StartApache(t, 1)
	checkRefusals(t, a, true)
}

// TestEmbeddedBrokerWithGivenCertificate: a certificate from the
// configuration (embedded.kafka_tls) replaces the one the broker makes;
// its clients trust the CA given with it.
func TestEmbeddedBrokerWithGivenCertificate(t *testing.T) {
	dir := t.TempDir()
	ss, _, err := tlsconfig.EnsureSelfSigned(filepath.Join(dir, "pki"), "given", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := kafka.NewEmbedded(kafka.EmbeddedConfig{Partitions: 1, CredentialsDir: filepath.Join(dir, "credentials"),
		CertFile: ss.CertFile, KeyFile: ss.KeyFile, CAFile: ss.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.CAFile() != ss.CAFile {
		t.Fatalf("clients trust %s, want %s", e.CAFile(), ss.CAFile)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Admin().EnsureTopics(ctx, kafka.PipelineTopics(1)...); err != nil {
		t.Fatal(err)
	}
	w := collectorWriter(t, e)
	if err := w.Write(ctx, kafka.Record{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
}
