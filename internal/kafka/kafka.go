// Package kafka holds the Kafka plumbing every component shares: broker
// configuration, writers that wait for all in-sync replicas, consumer-group
// readers that commit only when told, topic creation, and the embedded
// Kafka-protocol broker (kfake) that the all-in-one runs.
package kafka

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/auditpipe/auditpipe/internal/backoff"
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
	// SASL authenticates every connection (writers, readers, the
	// follower, readiness, topic administration). Default off.
	SASL SASLConfig `yaml:"sasl"`
	// DialTimeout bounds one connection attempt. Default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// Topics is how the targets create the topics they use.
	Topics TopicsConfig `yaml:"topics"`
}

// WithDefaults returns c with empty fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = "auditpipe"
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	c.Topics = c.Topics.withDefaults()
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
	if err := c.Topics.validate(prefix + ".topics"); err != nil {
		return err
	}
	if err := c.SASL.validate(prefix+".sasl", c.TLS.Enabled); err != nil {
		return err
	}
	return c.TLS.Validate(prefix + ".tls")
}

// security is what every connection to the brokers is built from: the
// TLS configuration and the SASL mechanism. transport and dialer, the only
// two places kafka-go connections are set up, both take it from here.
func (c Config) security() (*tls.Config, sasl.Mechanism, error) {
	tc, err := c.TLS.Build()
	if err != nil {
		return nil, nil, err
	}
	m, err := c.SASL.mechanism()
	if err != nil {
		return nil, nil, err
	}
	return tc, m, nil
}

// transport returns a transport for writers and kafka-go Client requests
// (metadata, offsets, topic and ACL administration).
func (c Config) transport() (*kafkago.Transport, error) {
	c = c.WithDefaults()
	tc, m, err := c.security()
	if err != nil {
		return nil, err
	}
	return &kafkago.Transport{
		ClientID:    c.ClientID,
		TLS:         tc,
		SASL:        m,
		DialTimeout: c.DialTimeout,
		IdleTimeout: 30 * time.Second,
		MetadataTTL: 10 * time.Second,
	}, nil
}

// dialer returns a dialer for readers, the consumer group and the
// follower.
func (c Config) dialer() (*kafkago.Dialer, error) {
	c = c.WithDefaults()
	tc, m, err := c.security()
	if err != nil {
		return nil, err
	}
	nd := &net.Dialer{Timeout: c.DialTimeout}
	return &kafkago.Dialer{
		ClientID: c.ClientID, Timeout: c.DialTimeout, TLS: tc, SASLMechanism: m,
		// kafka-go reads a connection through a 4 KiB buffer, so a 1 MiB
		// fetch cost hundreds of read system calls; a larger buffer
		// underneath makes that a few. kafka-go puts TLS on top of the
		// connection DialFunc returns, so the buffer holds ciphertext.
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

// MaxBatchBytes bounds the records of one produced record batch: below
// the brokers' default message.max.bytes (1048588), which refuses a larger
// batch with MESSAGE_TOO_LARGE. Larger writes are split into several
// batches; a single record larger than this is refused by the writer
// (an error that is not retryable) and must be cut or dead-lettered by the
// caller.
const MaxBatchBytes = 1_000_000

// Record is one Kafka record as auditpipe's packages see it: no kafka-go
// type crosses this package's boundary. A nil Value on a compacted topic
// is a tombstone (the key is deleted).
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	// Time is the record's timestamp (zero: the broker sets it).
	Time time.Time
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// Source names the record's place, "topic/partition/offset", as dead
// letters and logs cite it.
func (r *Record) Source() string {
	return r.Topic + "/" + strconv.Itoa(r.Partition) + "/" + strconv.FormatInt(r.Offset, 10)
}

func fromMessage(m *kafkago.Message) Record {
	r := Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Time}
	if len(m.Headers) > 0 {
		r.Headers = make([]Header, len(m.Headers))
		for i, h := range m.Headers {
			r.Headers[i] = Header{Key: h.Key, Value: h.Value}
		}
	}
	return r
}

func toMessage(r *Record) kafkago.Message {
	m := kafkago.Message{Key: r.Key, Value: r.Value, Time: r.Time}
	if len(r.Headers) > 0 {
		m.Headers = make([]kafkago.Header, len(r.Headers))
		for i, h := range r.Headers {
			m.Headers[i] = kafkago.Header{Key: h.Key, Value: h.Value}
		}
	}
	return m
}

// Writer produces records to one topic. It owns its transport: Close also
// closes the pooled connections, so no goroutine outlives it.
type Writer struct {
	w      *kafkago.Writer
	tr     *kafkago.Transport
	outage *backoff.Outage
}

// WriterOption adjusts a Writer.
type WriterOption func(*Writer)

// WithOutage reports the writer's failures and recovery to o (one line
// each per outage, see backoff.Outage).
func WithOutage(o *backoff.Outage) WriterOption { return func(w *Writer) { w.outage = o } }

// Topic is the topic the writer writes to.
func (w *Writer) Topic() string { return w.w.Topic }

// Write writes recs (their Topic, Partition and Offset are ignored) and
// returns once every one is acknowledged by all in-sync replicas. A
// retryable failure (the broker away, a leader election, the topic not
// created yet: see Classify) is retried with backoff, for the records not
// written yet only, until ctx ends; then, or on a failure that is not
// retryable, the error is returned, told briefly (see Brief). A record
// written before a failure may be written again by the retry: consumers
// dedup by event id.
func (w *Writer) Write(ctx context.Context, recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	msgs := make([]kafkago.Message, len(recs))
	for i := range recs {
		msgs[i] = toMessage(&recs[i])
	}
	err := backoff.Retry(ctx, backoff.Policy{Min: 50 * time.Millisecond, Max: 2 * time.Second, Outage: w.outage}, func(ctx context.Context) error {
		err := w.w.WriteMessages(ctx, msgs...)
		var we kafkago.WriteErrors
		if errors.As(err, &we) && len(we) == len(msgs) {
			// Retry only what was not written.
			left := msgs[:0:0]
			for i, e := range we {
				if e != nil {
					left = append(left, msgs[i])
				}
			}
			msgs = left
		}
		return Classify(Brief(err))
	})
	if err != nil {
		return fmt.Errorf("kafka: write to %s: %w", w.w.Topic, err)
	}
	return nil
}

// Brief shortens a kafka-go WriteErrors, which holds one error per
// message (a broker that went away made a log line of 100 identical
// errors): it tells how many messages were not written and each distinct
// error once, with its count. The result unwraps to err and to each
// distinct error; any other error is returned as it is.
func Brief(err error) error {
	var we kafkago.WriteErrors
	if !errors.As(err, &we) {
		return err
	}
	counts := map[string]int{}
	var distinct []string
	var errs []error
	for _, e := range we {
		if e == nil {
			continue
		}
		s := e.Error()
		if counts[s] == 0 {
			distinct = append(distinct, s)
			errs = append(errs, e)
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
	return &briefError{errs: append([]error{err}, errs...), msg: b.String()}
}

// briefError unwraps to the WriteErrors and to each distinct error in it,
// so that errors.Is and errors.As (and Classify) see what the messages
// failed with: a write refused for every message as not authorized is not
// retried.
type briefError struct {
	errs []error
	msg  string
}

func (e *briefError) Error() string   { return e.msg }
func (e *briefError) Unwrap() []error { return e.errs }

// Close flushes and closes the writer, then its connections.
func (w *Writer) Close() error {
	err := w.w.Close()
	w.tr.CloseIdleConnections()
	return err
}

// NewWriter returns a synchronous writer to topic that waits for all
// in-sync replicas (acks=all) and partitions by key hash, so one host's
// events stay in order on one partition. The caller batches; Write
// returns once the whole batch is acknowledged or has failed.
func (c Config) NewWriter(topic string, opts ...WriterOption) (*Writer, error) {
	tr, err := c.transport()
	if err != nil {
		return nil, fmt.Errorf("kafka: writer for %s: %w", topic, err)
	}
	w := &Writer{tr: tr, w: &kafkago.Writer{
		Addr:         kafkago.TCP(c.Brokers...),
		Topic:        topic,
		Balancer:     &kafkago.Hash{},
		RequiredAcks: kafkago.RequireAll,
		// Write retries, with backoff and only what failed.
		MaxAttempts:            1,
		BatchSize:              10000,
		BatchBytes:             MaxBatchBytes,
		BatchTimeout:           5 * time.Millisecond,
		Transport:              tr,
		AllowAutoTopicCreation: false,
	}}
	for _, o := range opts {
		o(w)
	}
	return w, nil
}

// HostPort joins host and port for a broker address.
func HostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
