package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/auditpipe/auditpipe/internal/backoff"
)

// FollowerConfig is what a Follower reads and whom it tells.
type FollowerConfig struct {
	// Topic is the (compacted) topic to follow. Required.
	Topic string
	// Apply is called with each record, in offset order per partition,
	// from one goroutine per partition. A nil Value is a tombstone: the
	// key is deleted. An error is logged with the record's place and the
	// record skipped: a bad record does not stop the follower.
	Apply func(Record) error
	// MaxWait bounds how long a fetch waits for data. Default 500ms.
	MaxWait time.Duration
	// Log receives outages (once each, and their end) and bad records.
	// Default: discard.
	Log *slog.Logger
}

// Follower reads a compacted topic from its start and keeps following
// it: the state a policy service publishes (grants, assignments,
// dispatch). It retries a broker that is away and a topic that does not
// exist yet with backoff. Build it with Config.NewFollower and call Run.
type Follower struct {
	cfg      FollowerConfig
	dialer   *kafkago.Dialer
	kafka    Config
	caught   chan struct{}
	caughtMu sync.Once
}

// NewFollower returns a follower of cfg.Topic.
func (c Config) NewFollower(cfg FollowerConfig) (*Follower, error) {
	if cfg.Topic == "" || cfg.Apply == nil {
		return nil, errors.New("kafka: follower: a topic and an Apply function are required")
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 500 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Log = cfg.Log.With("topic", cfg.Topic)
	d, err := c.dialer()
	if err != nil {
		return nil, fmt.Errorf("kafka: follower of %s: %w", cfg.Topic, err)
	}
	return &Follower{cfg: cfg, dialer: d, kafka: c.WithDefaults(), caught: make(chan struct{})}, nil
}

// CaughtUp is closed once every record that existed when Run started has
// been applied; at once when the topic did not exist then (nothing to
// catch up with: it is followed from its start once it appears).
func (f *Follower) CaughtUp() <-chan struct{} { return f.caught }

func (f *Follower) markCaughtUp() { f.caughtMu.Do(func() { close(f.caught) }) }

// Run follows the topic until ctx ends; it returns nil then, or a
// permanent error (not authorized to read the topic).
func (f *Follower) Run(ctx context.Context) error {
	outage := backoff.NewOutage(f.cfg.Log, "reading the topic's partitions")
	var ends map[int]int64
	unknownSaid := false
	err := backoff.Retry(ctx, backoff.Policy{Min: 200 * time.Millisecond, Max: 5 * time.Second, Outage: outage}, func(ctx context.Context) error {
		var err error
		ends, err = f.ends(ctx)
		if errors.Is(err, ErrUnknownTopic) {
			if !unknownSaid {
				f.cfg.Log.Info("the topic does not exist yet: nothing to catch up with; it is followed once it appears")
				unknownSaid = true
			}
			f.markCaughtUp()
		}
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("kafka: follow %s: %w", f.cfg.Topic, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	pending := len(ends)
	if pending == 0 {
		f.markCaughtUp()
	}
	done := func() {
		mu.Lock()
		defer mu.Unlock()
		if pending--; pending == 0 {
			f.markCaughtUp()
		}
	}
	errc := make(chan error, len(ends))
	for p, end := range ends {
		wg.Go(func() { errc <- f.partition(ctx, p, end, done) })
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ends returns each partition's end offset (of the next record written).
func (f *Follower) ends(ctx context.Context) (map[int]int64, error) {
	tr, err := f.kafka.transport()
	if err != nil {
		return nil, backoff.Permanent(err)
	}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(f.kafka.Brokers...), Transport: tr, Timeout: f.kafka.DialTimeout + 10*time.Second}
	meta, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{f.cfg.Topic}})
	if err != nil {
		return nil, Classify(fmt.Errorf("metadata: %w", err))
	}
	var reqs []kafkago.OffsetRequest
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, Classify(fmt.Errorf("metadata: %w", t.Error))
		}
		for _, p := range t.Partitions {
			reqs = append(reqs, kafkago.LastOffsetOf(p.ID))
		}
	}
	if len(reqs) == 0 {
		return nil, Classify(fmt.Errorf("metadata: no partitions: %w", ErrUnknownTopic))
	}
	offs, err := cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{f.cfg.Topic: reqs}})
	if err != nil {
		return nil, Classify(fmt.Errorf("list offsets: %w", err))
	}
	ends := map[int]int64{}
	for _, p := range offs.Topics[f.cfg.Topic] {
		if p.Error != nil {
			return nil, Classify(fmt.Errorf("list offsets of partition %d: %w", p.Partition, p.Error))
		}
		ends[p.Partition] = p.LastOffset
	}
	return ends, nil
}

// partition follows one partition from its first offset; done is called
// once the records before end are applied (or the partition has been
// read to its end).
func (f *Follower) partition(ctx context.Context, p int, end int64, done func()) error {
	log := f.cfg.Log.With("partition", p)
	outage := backoff.NewOutage(log, "following the partition")
	offset := int64(-1) // the first
	caught := false
	catchUp := func() {
		if !caught {
			caught = true
			done()
		}
	}
	attempt := 0
	err := backoff.Retry(ctx, backoff.Policy{Min: 100 * time.Millisecond, Max: 5 * time.Second, Outage: outage}, func(ctx context.Context) error {
		broker := f.kafka.Brokers[attempt%len(f.kafka.Brokers)]
		attempt++
		conn, err := f.dialer.DialLeader(ctx, "tcp", broker, f.cfg.Topic, p)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return Classify(fmt.Errorf("connecting to the partition leader: %w", err))
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer func() { stop(); conn.Close() }()
		if offset < 0 {
			first, err := conn.ReadFirstOffset()
			if err != nil {
				return Classify(fmt.Errorf("first offset: %w", err))
			}
			offset = first
		}
		if offset >= end {
			catchUp()
		}
		if _, err := conn.Seek(offset, kafkago.SeekAbsolute|kafkago.SeekDontCheck); err != nil {
			return Classify(fmt.Errorf("seek %d: %w", offset, err))
		}
		for ctx.Err() == nil {
			if err := conn.SetReadDeadline(time.Now().Add(f.cfg.MaxWait + 10*time.Second)); err != nil {
				return Classify(err)
			}
			b := conn.ReadBatchWith(kafkago.ReadBatchConfig{MinBytes: 1, MaxBytes: 4 << 20, MaxWait: f.cfg.MaxWait})
			n := 0
			for {
				m, err := b.ReadMessage()
				if err != nil {
					break
				}
				n++
				rec := fromMessage(&m)
				if err := f.cfg.Apply(rec); err != nil {
					log.Error("bad record skipped", "offset", m.Offset, "error", err)
				}
				offset = m.Offset + 1
				if offset >= end {
					catchUp()
				}
			}
			err := idleFetch(b.Close())
			if err != nil {
				if errors.Is(err, kafkago.OffsetOutOfRange) {
					offset = -1 // compacted or deleted below us: from the first again
				}
				if ctx.Err() != nil {
					return nil
				}
				return Classify(fmt.Errorf("fetch from offset %d: %w", offset, err))
			}
			outage.OK()
			if n == 0 {
				// A fetch that waited and found nothing: this is the
				// end, whatever compaction left of the records before.
				catchUp()
			}
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("kafka: follow %s/%d: %w", f.cfg.Topic, p, err)
	}
	return nil
}
