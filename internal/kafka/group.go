package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/auditpipe/auditpipe/internal/backoff"
)

// GroupReader is a consumer-group member that reads each partition
// assigned to it in its own goroutine and hands its messages on a fetch at
// a time, where kafka-go's Reader hands them one by one through a channel
// (about half of its cost per message, measured with the forwarder), and
// fetches a partition's next batch while the handler works on the current
// one (so its memory is two fetches of MaxBytes per partition). It never
// commits on its own: the caller commits through the Generation of
// the batches it has finished with.
//
// Build it with Config.NewGroupReader, call Run, then Close.
type GroupReader struct {
	cfg     GroupReaderConfig
	dialer  *kafkago.Dialer
	group   *kafkago.ConsumerGroup
	brokers []string
	kafka   Config

	lags sync.Map // partitionKey -> *atomic.Int64
	// outages lasts across generations, so that a partition whose reader
	// failed in one generation logs its recovery when it is read again
	// in the next (a broker restart ends the generation).
	outages sync.Map // partitionKey -> *backoff.Outage
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

// Batch is what one fetch returned for one partition: records in offset
// order, none skipped.
type Batch struct {
	Topic     string
	Partition int
	Records   []Record
	// HighWaterMark is the partition's end as of the fetch: the offset
	// of the next record to be written.
	HighWaterMark int64
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
	d, err := c.dialer()
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
		// A topic created after the member joined (it started before
		// the topics existed) is noticed and its partitions assigned.
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 2 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("kafka: group %s: %w", cfg.Group, err)
	}
	return &GroupReader{cfg: cfg, dialer: d, group: g, brokers: c.Brokers, kafka: c}, nil
}

// unassigned returns how many partitions of the reader's topics no member
// of its group holds while the group is stable (0 while it rebalances).
func (r *GroupReader) unassigned(ctx context.Context) (int, error) {
	tr, err := r.kafka.transport()
	if err != nil {
		return 0, err
	}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(r.brokers...), Transport: tr, Timeout: 10 * time.Second}
	meta, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: r.cfg.Topics})
	if err != nil {
		return 0, fmt.Errorf("metadata: %w", err)
	}
	desc, err := cl.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: []string{r.cfg.Group}})
	if err != nil {
		return 0, fmt.Errorf("describe group: %w", err)
	}
	if len(desc.Groups) != 1 || desc.Groups[0].Error != nil || desc.Groups[0].GroupState != "Stable" {
		return 0, nil
	}
	held := map[partitionKey]bool{}
	for _, m := range desc.Groups[0].Members {
		for _, t := range m.MemberAssignments.Topics {
			for _, p := range t.Partitions {
				held[partitionKey{t.Topic, p}] = true
			}
		}
	}
	n := 0
	for _, t := range meta.Topics {
		if t.Error != nil {
			continue
		}
		for _, p := range t.Partitions {
			if !held[partitionKey{t.Name, p.ID}] {
				n++
			}
		}
	}
	return n, nil
}

// assignmentWatchInterval is how often a member checks that every
// partition of its topics is held by a member of its group.
const assignmentWatchInterval = 2 * time.Second

// watchAssignments returns, ending the generation gctx belongs to (so
// that the group rebalances), when partitions of the reader's topics are
// held by no member of the stable group on two checks in a row. That is
// a topic that came into being around the join: on Apache Kafka, kafka-go
// can assign a group without the partitions of a topic created (by a
// metadata request or by the target) just then, and its own partition
// watcher, whose baseline is read after the assignment, sees no change,
// so the topic was never read. When ctx ends it stops watching but keeps
// the generation, whose offsets may still be committed.
func (r *GroupReader) watchAssignments(ctx, gctx context.Context) {
	t := time.NewTicker(assignmentWatchInterval)
	defer t.Stop()
	seen := 0
	for {
		select {
		case <-gctx.Done():
			return
		case <-ctx.Done():
			<-gctx.Done()
			return
		case <-t.C:
		}
		n, err := r.unassigned(ctx)
		if err != nil || n == 0 {
			seen = 0 // the broker away: the partition readers say so
			continue
		}
		if seen++; seen >= 2 {
			r.cfg.Log.Info("partitions of the group's topics are held by no member; joining the group again", "group", r.cfg.Group, "unassigned", n)
			return
		}
	}
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
// returns. Broker and connection errors are retried with backoff, each
// outage logged once when it starts and once when it ends (see
// backoff.Outage). Run returns nil when ctx ends, the first error handle
// returned (as a *HandlerError), or a permanent error (an authorization
// failure) joining the group. This member stays in the group, so that what it read can
// still be committed, until Close.
func (r *GroupReader) Run(ctx context.Context, handle func(ctx context.Context, b Batch) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	join := backoff.NewOutage(r.cfg.Log, "joining the consumer group", "group", r.cfg.Group)
	for {
		var gen *kafkago.Generation
		err := backoff.Retry(ctx, backoff.Policy{Min: 100 * time.Millisecond, Max: 5 * time.Second, Outage: join}, func(ctx context.Context) error {
			g, err := r.group.Next(ctx)
			if err != nil {
				if errors.Is(err, kafkago.ErrGroupClosed) || ctx.Err() != nil {
					return err
				}
				return Classify(err)
			}
			gen = g
			return nil
		})
		if ctx.Err() != nil {
			if err := context.Cause(ctx); errors.As(err, new(*HandlerError)) {
				return err
			}
			return nil
		}
		if errors.Is(err, kafkago.ErrGroupClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("kafka: group %s: %w", r.cfg.Group, err)
		}
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
		gen.Start(func(gctx context.Context) { r.watchAssignments(ctx, gctx) })
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
// reconnecting with backoff; an outage is logged once when it starts and
// once when it ends. It returns only handle's error.
func (r *GroupReader) readPartition(ctx context.Context, g *Generation, topic string, partition int, offset int64, handle func(context.Context, Batch) error) error {
	lag := r.lag(topic, partition)
	defer lag.Store(0) // no longer this member's
	v, _ := r.outages.LoadOrStore(partitionKey{topic, partition}, backoff.NewOutage(r.cfg.Log, "reading the partition", "topic", topic, "partition", partition))
	outage := v.(*backoff.Outage)
	attempt := 0
	err := backoff.Retry(ctx, backoff.Policy{Min: 50 * time.Millisecond, Max: 2 * time.Second, Outage: outage}, func(ctx context.Context) error {
		broker := r.brokers[attempt%len(r.brokers)]
		attempt++
		conn, err := r.dialer.DialLeader(ctx, "tcp", broker, topic, partition)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return Classify(fmt.Errorf("connecting to the partition leader: %w", err))
		}
		// A fetch waiting on the broker ends when ctx does.
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		next, err := r.read(ctx, conn, g, topic, partition, offset, lag, outage, handle)
		stop()
		conn.Close()
		offset = next
		if he := (*HandlerError)(nil); errors.As(err, &he) {
			return he
		}
		if ctx.Err() != nil {
			return nil
		}
		return Classify(fmt.Errorf("reading from offset %d: %w", offset, err))
	})
	if he := (*HandlerError)(nil); errors.As(err, &he) {
		return he
	}
	if err != nil && ctx.Err() == nil {
		// Permanent (not authorized to read the topic): say so; the
		// partition is not read until the next generation.
		r.cfg.Log.Error("reading the partition stopped", "topic", topic, "partition", partition, "error", err)
	}
	return nil
}

// read fetches from offset (or the partition's first offset, when
// negative) on conn and hands each batch to handle. It returns the offset
// to go on from and why it stopped.
func (r *GroupReader) read(ctx context.Context, conn *kafkago.Conn, g *Generation, topic string, partition int, offset int64, lag *atomic.Int64, outage *backoff.Outage, handle func(context.Context, Batch) error) (int64, error) {
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
	// One fetch is read ahead: while handle works on a batch, the next
	// one is fetched into the other of two record buffers (the handler
	// does not keep a batch's records once it returned), so the handler
	// does not wait for the broker's answer between fetches. A batch read
	// ahead that is not handed on (ctx ended, handle failed) is dropped:
	// offset, where reading goes on from, is that of the last batch
	// handed on.
	fetch := func(recs []Record) fetched {
		if err := conn.SetReadDeadline(time.Now().Add(r.cfg.MaxWait + 10*time.Second)); err != nil {
			return fetched{recs: recs, err: err}
		}
		b := conn.ReadBatchWith(kafkago.ReadBatchConfig{MinBytes: 1, MaxBytes: r.cfg.MaxBytes, MaxWait: r.cfg.MaxWait})
		for {
			m, err := b.ReadMessage()
			if err != nil {
				break
			}
			recs = append(recs, fromMessage(&m))
		}
		hw := b.HighWaterMark()
		return fetched{recs: recs, hw: hw, err: idleFetch(b.Close())}
	}
	var spare []Record
	cur := fetch(nil)
	for {
		next := offset
		if len(cur.recs) > 0 {
			next = cur.recs[len(cur.recs)-1].Offset + 1
		}
		if cur.hw >= next {
			lag.Store(cur.hw - next)
		}
		if cur.err == nil || len(cur.recs) > 0 {
			outage.OK() // the broker answered
		}
		var ahead chan fetched
		if len(cur.recs) > 0 && cur.err == nil && ctx.Err() == nil {
			ahead = make(chan fetched, 1)
			buf := spare[:0]
			go func() { ahead <- fetch(buf) }()
		}
		if len(cur.recs) > 0 {
			if herr := handle(ctx, Batch{Topic: topic, Partition: partition, Records: cur.recs, HighWaterMark: cur.hw, Generation: g}); herr != nil {
				if ahead != nil {
					conn.Close() // ends the fetch ahead; the caller reconnects
					<-ahead
				}
				return offset, &HandlerError{herr}
			}
			offset = next
			clear(cur.recs) // the values are the handler's now
			spare = cur.recs
		}
		if cur.err != nil {
			if errors.Is(cur.err, kafkago.OffsetOutOfRange) {
				return r.resetOffset(conn, offset, cur.err)
			}
			return offset, cur.err
		}
		if ahead == nil {
			if ctx.Err() != nil {
				return offset, nil
			}
			// cur's buffer (its batch was empty) becomes the spare one:
			// the next fetch ahead must not fill the buffer of the batch
			// being handled.
			buf := spare[:0]
			spare = cur.recs[:0]
			cur = fetch(buf)
			continue
		}
		// ctx's end closes conn (see readPartition): the fetch ahead
		// returns.
		cur = <-ahead
		if ctx.Err() != nil {
			return offset, nil
		}
	}
}

// fetched is what one fetch of a partition returned.
type fetched struct {
	recs []Record
	hw   int64 // the partition's high-water mark as of the fetch
	err  error // nil when the fetch only found nothing new
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

// idleFetch returns err, or nil when err only says that a fetch found no
// new records within its wait: an idle partition is not a failure.
func idleFetch(err error) error {
	if errors.Is(err, kafkago.RequestTimedOut) || errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return err
}
