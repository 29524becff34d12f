// Package kafka holds the Kafka plumbing every component shares: broker
// configuration, writers that wait for all in-sync replicas, consumer-group
// readers that commit only when told, topic creation, and the embedded
// Kafka-protocol broker (kfake) that the all-in-one runs.
package kafka

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/auditpipe/auditpipe/internal/tlsconfig"
)

// Config is the Kafka part of a component's configuration.
type Config struct {
	// Brokers are the bootstrap addresses, host:port. No default: required.
	Brokers []string `yaml:"brokers"`
	// ClientID names this client to the brokers. Default "auditpipe".
	ClientID string `yaml:"client_id"`
	// TLS for the broker connections. Default off.
	TLS tlsconfig.Config `yaml:"tls"`
	// DialTimeout bounds one connection attempt. Default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
}

// WithDefaults returns c with empty fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = "auditpipe"
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	return c
}

// Validate names the first bad field; prefix is the enclosing field, e.g. "kafka".
func (c Config) Validate(prefix string) error {
	if len(c.Brokers) == 0 {
		return fmt.Errorf("%s.brokers: at least one broker address is required", prefix)
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("%s.brokers: %q: %w", prefix, b, err)
		}
	}
	return c.TLS.Validate(prefix + ".tls")
}

func (c Config) transport() (*kafkago.Transport, error) {
	c = c.WithDefaults()
	tc, err := c.TLS.Build()
	if err != nil {
		return nil, err
	}
	return &kafkago.Transport{
		ClientID:    c.ClientID,
		TLS:         tc,
		DialTimeout: c.DialTimeout,
		IdleTimeout: 30 * time.Second,
		MetadataTTL: 10 * time.Second,
	}, nil
}

// Dialer returns a dialer for readers and admin connections.
func (c Config) Dialer() (*kafkago.Dialer, error) {
	c = c.WithDefaults()
	tc, err := c.TLS.Build()
	if err != nil {
		return nil, err
	}
	nd := &net.Dialer{Timeout: c.DialTimeout}
	return &kafkago.Dialer{
		ClientID: c.ClientID, Timeout: c.DialTimeout, TLS: tc,
		// kafka-go reads a connection through a 4 KiB buffer, so a 1 MiB
		// fetch cost hundreds of read system calls; a larger buffer
		// underneath makes that a few.
		DialFunc: func(ctx context.Context, network, address string) (net.Conn, error) {
			conn, err := nd.DialContext(ctx, network, address)
			if err != nil {
				return nil, err
			}
			return &bufferedConn{Conn: conn, r: bufio.NewReaderSize(conn, readBufferSize)}, nil
		},
	}, nil
}

// readBufferSize is the read buffer under each reader connection.
const readBufferSize = 256 << 10

// bufferedConn is a connection whose reads go through a buffer. kafka-go
// also sets a read deadline before every message it parses; a deadline
// only matters to a read that may block, so one set while the buffer holds
// data is applied to the connection only when the buffer runs dry (or at
// once, if a read is blocked on the connection right then).
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu       sync.Mutex
	deadline time.Time // the latest read deadline asked for
	applied  bool      // deadline is the connection's
	blocked  bool      // a Read is waiting on the connection
}

func (c *bufferedConn) Read(b []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(b)
	}
	c.mu.Lock()
	if !c.applied {
		if err := c.Conn.SetReadDeadline(c.deadline); err != nil {
			c.mu.Unlock()
			return 0, err
		}
		c.applied = true
	}
	c.blocked = true
	c.mu.Unlock()
	n, err := c.r.Read(b)
	c.mu.Lock()
	c.blocked = false
	c.mu.Unlock()
	return n, err
}

// SetReadDeadline records t, applying it now only if a read is waiting on
// the connection.
func (c *bufferedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	if c.blocked {
		c.applied = true
		return c.Conn.SetReadDeadline(t)
	}
	c.applied = false
	return nil
}

// SetDeadline is SetReadDeadline and the connection's SetWriteDeadline.
func (c *bufferedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// MaxBatchBytes bounds the messages of one produced record batch: below
// the brokers' default message.max.bytes (1048588), which refuses a larger
// batch with MESSAGE_TOO_LARGE. Larger writes are split into several
// batches; a single message larger than this is refused by the writer
// (kafkago.MessageTooLargeError) and must be cut or dead-lettered by the
// caller.
const MaxBatchBytes = 1_000_000

// Writer is a kafka-go writer that owns its transport: Close also closes
// the transport's pooled connections, so no goroutine outlives it.
type Writer struct {
	*kafkago.Writer
	tr *kafkago.Transport
}

// WriteMessages is kafka-go's, with a failure told briefly (see Brief).
func (w *Writer) WriteMessages(ctx context.Context, msgs ...kafkago.Message) error {
	return Brief(w.Writer.WriteMessages(ctx, msgs...))
}

// Brief shortens a kafka-go kafkago.WriteErrors, which holds one error per
// message (a broker that went away made a log line of 100 identical
// errors): it tells how many messages were not written and each distinct
// error once, with its count. The result unwraps to err; any other error
// is returned as it is.
func Brief(err error) error {
	var we kafkago.WriteErrors
	if !errors.As(err, &we) {
		return err
	}
	counts := map[string]int{}
	var distinct []string
	for _, e := range we {
		if e == nil {
			continue
		}
		s := e.Error()
		if counts[s] == 0 {
			distinct = append(distinct, s)
		}
		counts[s]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d messages not written: ", we.Count(), len(we))
	for i, s := range distinct {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s)
		if counts[s] > 1 {
			fmt.Fprintf(&b, " (%d times)", counts[s])
		}
	}
	return &briefError{err: err, msg: b.String()}
}

type briefError struct {
	err error
	msg string
}

func (e *briefError) Error() string { return e.msg }
func (e *briefError) Unwrap() error { return e.err }

// Close flushes and closes the writer, then its connections.
func (w *Writer) Close() error {
	err := w.Writer.Close()
	w.tr.CloseIdleConnections()
	return err
}

// NewWriter returns a synchronous writer to topic that waits for all
// in-sync replicas (acks=all) and partitions by key hash, so one host's
// events stay in order on one partition. The caller batches; WriteMessages
// returns once the whole batch is acknowledged or has failed.
func (c Config) NewWriter(topic string) (*Writer, error) {
	tr, err := c.transport()
	if err != nil {
		return nil, fmt.Errorf("kafka: writer for %s: %w", topic, err)
	}
	return &Writer{tr: tr, Writer: &kafkago.Writer{
		Addr:                   kafkago.TCP(c.Brokers...),
		Topic:                  topic,
		Balancer:               &kafkago.Hash{},
		RequiredAcks:           kafkago.RequireAll,
		MaxAttempts:            3,
		WriteBackoffMin:        50 * time.Millisecond,
		WriteBackoffMax:        time.Second,
		BatchSize:              10000,
		BatchBytes:             MaxBatchBytes,
		BatchTimeout:           5 * time.Millisecond,
		Transport:              tr,
		AllowAutoTopicCreation: false,
	}}, nil
}

// ReaderConfig is what a consumer group member needs beyond the brokers.
type ReaderConfig struct {
	Group  string
	Topics []string
	// MaxBytes bounds one fetch. Default 16 MiB.
	MaxBytes int
	// MaxWait bounds how long a fetch waits for data. Default 500ms.
	MaxWait time.Duration
}

// NewReader returns a consumer-group reader that never commits on its own:
// the caller commits with CommitMessages after its sink has the data. A new
// group starts at the earliest offset.
func (c Config) NewReader(rc ReaderConfig) (*kafkago.Reader, error) {
	d, err := c.Dialer()
	if err != nil {
		return nil, fmt.Errorf("kafka: reader for group %s: %w", rc.Group, err)
	}
	if rc.MaxBytes == 0 {
		rc.MaxBytes = 16 << 20
	}
	if rc.MaxWait == 0 {
		rc.MaxWait = 500 * time.Millisecond
	}
	return kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:           c.Brokers,
		GroupID:           rc.Group,
		GroupTopics:       rc.Topics,
		Dialer:            d,
		MinBytes:          1,
		MaxBytes:          rc.MaxBytes,
		MaxWait:           rc.MaxWait,
		CommitInterval:    0, // synchronous, explicit commits only
		StartOffset:       kafkago.FirstOffset,
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    time.Second,
	}), nil
}

// Topic describes a topic to create.
type Topic struct {
	Name       string
	Partitions int
	// Compacted sets cleanup.policy=compact (the grants topic).
	Compacted bool
}

// PipelineTopics are the topics auditpipe uses, with their layouts.
func PipelineTopics(partitions int) []Topic {
	return []Topic{
		{Name: "opctl.audit.v1", Partitions: partitions},
		{Name: "opctl.deadletter.v1", Partitions: 1},
		{Name: "opctl.grants.v1", Partitions: 1, Compacted: true},
		{Name: "opctl.lifecycle.v1", Partitions: 1},
		{Name: "opctl.dispatch.v1", Partitions: partitions},
	}
}

// EnsureTopics creates the topics that do not exist yet; existing topics
// are left as they are.
func (c Config) EnsureTopics(ctx context.Context, topics ...Topic) error {
	tr, err := c.transport()
	if err != nil {
		return fmt.Errorf("kafka: ensure topics: %w", err)
	}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Transport: tr, Timeout: 30 * time.Second}
	req := &kafkago.CreateTopicsRequest{}
	for _, t := range topics {
		tc := kafkago.TopicConfig{Topic: t.Name, NumPartitions: t.Partitions, ReplicationFactor: -1}
		if t.Compacted {
			tc.ConfigEntries = []kafkago.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := cl.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("kafka: create topics: %w", err)
	}
	var errs []error
	for name, e := range resp.Errors {
		if e != nil && !errors.Is(e, kafkago.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("kafka: create topic %s: %w", name, e))
		}
	}
	return errors.Join(errs...)
}

// HostPort joins host and port for a broker address.
func HostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
