package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/auditpipe/auditpipe/internal/backoff"
)

// GroupReader is a consumer-group member that reads each partition
// assigned to it in its own goroutine and hands its messages on a fetch at
// a time, where kafka-go's Reader hands them one by one through a channel
// (about half of its cost per message, measured with the forwarder). It
// never commits on its own: the caller commits through the Generation of
// the batches it has finished with.
//
// Build it with Config.NewGroupReader, call Run, then Close.
type GroupReader struct {
	cfg     GroupReaderConfig
	dialer  *kafkago.Dialer
	group   *kafkago.ConsumerGroup
	brokers []string

	lags sync.Map // partitionKey -> *atomic.Int64
}

// GroupReaderConfig is what a GroupReader needs beyond the brokers.
type GroupReaderConfig struct {
	Group  string
	Topics []string
	// MaxBytes bounds one fetch of one partition. Default 1 MiB.
	MaxBytes int
	// MaxWait bounds how long a fetch waits for data. Default 500ms.
	MaxWait time.Duration
	// Log receives reconnections and offset resets. Default: discard.
	Log *slog.Logger
}

// Batch is what one fetch returned for one partition: messages in offset
// order, none skipped.
type Batch struct {
	Topic     string
	Partition int
	Messages  []kafkago.Message
	// Generation is the assignment under which the batch was read: its
	// offsets are committed through it.
	Generation *Generation
}

// Generation is one assignment of partitions to this member. Offsets
// read under it can be committed only while it lasts: after a rebalance
// the partition's next owner reads them again (at least once).
type Generation struct {
	gen   *kafkago.Generation
	ended chan struct{}
}

// Commit commits, for each topic and partition, the offset of the next
// message to read (the last one finished with, plus one).
func (g *Generation) Commit(offsets map[string]map[int]int64) error {
	if g.Ended() {
		return fmt.Errorf("kafka: commit: %w", kafkago.ErrGenerationEnded)
	}
	if err := g.gen.CommitOffsets(offsets); err != nil {
		return fmt.Errorf("kafka: commit: %w", err)
	}
	return nil
}

// Ended reports whether the generation is over (a rebalance, or Close).
func (g *Generation) Ended() bool {
	select {
	case <-g.ended:
		return true
	default:
		return false
	}
}

// NewGroupReader returns a member of group cfg.Group. A group without
// committed offsets starts at the earliest.
func (c Config) NewGroupReader(cfg GroupReaderConfig) (*GroupReader, error) {
	d, err := c.Dialer()
	if err != nil {
		return nil, fmt.Errorf("kafka: group %s: %w", cfg.Group, err)
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 1 << 20
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 500 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	g, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                cfg.Group,
		Brokers:           c.Brokers,
		Dialer:            d,
		Topics:            cfg.Topics,
		StartOffset:       kafkago.FirstOffset,
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("kafka: group %s: %w", cfg.Group, err)
	}
	return &GroupReader{cfg: cfg, dialer: d, group: g, brokers: c.Brokers}, nil
}

// HandlerError wraps what the handler passed to Run returned.
type HandlerError struct{ Err error }

func (e *HandlerError) Error() string { return e.Err.Error() }
func (e *HandlerError) Unwrap() error { return e.Err }

// Run takes part in the group until ctx ends, reading every partition
// assigned to this member in a goroutine of its own and calling handle
// with each batch, in offset order per partition; calls for different
// partitions run concurrently. handle must return promptly once its
// context ends (a rebalance, or ctx); it must not keep b.Messages after it
// returns. Broker and connection errors are retried with backoff. Run
// returns nil when ctx ends, or the first error handle returned (as a
// *HandlerError). This member stays in the group, so that what it read can
// still be committed, until Close.
func (r *GroupReader) Run(ctx context.Context, handle func(ctx context.Context, b Batch) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	for attempt := 0; ; attempt++ {
		gen, err := r.group.Next(ctx)
		if ctx.Err() != nil {
			if err := context.Cause(ctx); errors.As(err, new(*HandlerError)) {
				return err
			}
			return nil
		}
		if err != nil {
			if errors.Is(err, kafkago.ErrGroupClosed) {
				return nil
			}
			d := backoff.Delay(attempt, 100*time.Millisecond, 5*time.Second)
			r.cfg.Log.Warn("joining the consumer group failed; retrying", "group", r.cfg.Group, "error", err, "retry_in", d)
			if !backoff.Sleep(ctx, d) {
				return nil
			}
			continue
		}
		attempt = 0
		g := &Generation{gen: gen, ended: make(chan struct{})}
		genCtx, genCancel := context.WithCancel(ctx)
		var parts sync.WaitGroup
		for topic, assigned := range gen.Assignments {
			for _, a := range assigned {
				parts.Add(1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer parts.Done()
					if err := r.readPartition(genCtx, g, topic, a.ID, a.Offset, handle); err != nil {
						cancel(err)
					}
				}()
			}
		}
		// kafka-go ends a generation when a function started on it
		// returns, and joins the next one only after all of them have:
		// this one returns when the generation ends (a rebalance or
		// Close), after the partition readers have stopped. Stopping the
		// readers because ctx ended does not end the generation, so that
		// their offsets can still be committed.
		gen.Start(func(gctx context.Context) {
			<-gctx.Done()
			close(g.ended)
			genCancel()
			parts.Wait()
		})
		select {
		case <-ctx.Done():
			// Stop reading, stay in the group until Close.
			genCancel()
			parts.Wait()
			if err := context.Cause(ctx); errors.As(err, new(*HandlerError)) {
				return err
			}
			return nil
		case <-g.ended:
		}
	}
}

// Lag is how many messages of the assigned partitions were not fetched
// yet, as of each partition's last fetch.
func (r *GroupReader) Lag() int64 {
	var n int64
	r.lags.Range(func(_, v any) bool {
		n += v.(*atomic.Int64).Load()
		return true
	})
	return n
}

// Close leaves the group; it ends the current generation.
func (r *GroupReader) Close() error {
	if err := r.group.Close(); err != nil {
		return fmt.Errorf("kafka: group %s: close: %w", r.cfg.Group, err)
	}
	return nil
}

type partitionKey struct {
	topic     string
	partition int
}

func (r *GroupReader) lag(topic string, partition int) *atomic.Int64 {
	v, _ := r.lags.LoadOrStore(partitionKey{topic, partition}, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// readPartition reads one partition from offset until ctx ends,
// reconnecting with backoff. It returns only handle's error.
func (r *GroupReader) readPartition(ctx context.Context, g *Generation, topic string, partition int, offset int64, handle func(context.Context, Batch) error) error {
	lag := r.lag(topic, partition)
	defer lag.Store(0) // no longer this member's
	log := r.cfg.Log.With("topic", topic, "partition", partition)
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !backoff.Sleep(ctx, backoff.Delay(attempt-1, 50*time.Millisecond, time.Second)) {
			return nil
		}
		broker := r.brokers[attempt%len(r.brokers)]
		conn, err := r.dialer.DialLeader(ctx, "tcp", broker, topic, partition)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("connecting to the partition leader failed; retrying", "error", err)
			continue
		}
		// A fetch waiting on the broker ends when ctx does.
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		next, err := r.read(ctx, conn, g, topic, partition, offset, lag, handle)
		stop()
		conn.Close()
		if next > offset {
			attempt = 0 // progress: the next failure starts the backoff over
		}
		offset = next
		if he := (*HandlerError)(nil); errors.As(err, &he) {
			return he
		}
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("reading the partition failed; reconnecting", "offset", offset, "error", err)
	}
}

// read fetches from offset (or the partition's first offset, when
// negative) on conn and hands each batch to handle. It returns the offset
// to go on from and why it stopped.
func (r *GroupReader) read(ctx context.Context, conn *kafkago.Conn, g *Generation, topic string, partition int, offset int64, lag *atomic.Int64, handle func(context.Context, Batch) error) (int64, error) {
	if offset < 0 {
		first, err := conn.ReadFirstOffset()
		if err != nil {
			return offset, fmt.Errorf("first offset: %w", err)
		}
		offset = first
	}
	if _, err := conn.Seek(offset, kafkago.SeekAbsolute|kafkago.SeekDontCheck); err != nil {
		return offset, fmt.Errorf("seek %d: %w", offset, err)
	}
	var msgs []kafkago.Message
	for ctx.Err() == nil {
		if err := conn.SetReadDeadline(time.Now().Add(r.cfg.MaxWait + 10*time.Second)); err != nil {
			return offset, err
		}
		b := conn.ReadBatchWith(kafkago.ReadBatchConfig{MinBytes: 1, MaxBytes: r.cfg.MaxBytes, MaxWait: r.cfg.MaxWait})
		msgs = msgs[:0]
		for {
			m, err := b.ReadMessage()
			if err != nil {
				break
			}
			msgs = append(msgs, m)
		}
		hw := b.HighWaterMark()
		err := b.Close()
		next := offset
		if len(msgs) > 0 {
			next = msgs[len(msgs)-1].Offset + 1
		}
		if hw >= next {
			lag.Store(hw - next)
		}
		if len(msgs) > 0 {
			if herr := handle(ctx, Batch{Topic: topic, Partition: partition, Messages: msgs, Generation: g}); herr != nil {
				return offset, &HandlerError{herr}
			}
			offset = next
			clear(msgs) // the values are the handler's now
		}
		if err != nil {
			if errors.Is(err, kafkago.OffsetOutOfRange) {
				return r.resetOffset(conn, offset, err)
			}
			return offset, err
		}
	}
	return offset, nil
}

// resetOffset handles an offset the partition no longer (or not yet)
// holds: below the first offset (retention deleted what this group had
// not read), reading goes on from the first offset, with an error logged
// by the caller; otherwise it stays, to be retried.
func (r *GroupReader) resetOffset(conn *kafkago.Conn, offset int64, cause error) (int64, error) {
	first, err := conn.ReadFirstOffset()
	if err != nil {
		return offset, fmt.Errorf("%w (first offset: %v)", cause, err)
	}
	if offset < first {
		return first, fmt.Errorf("offset %d is gone (retention): going on from %d, the first offset: %w", offset, first, cause)
	}
	return offset, cause
}
