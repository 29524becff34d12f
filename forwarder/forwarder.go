package forwarder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/deadletter"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/schemas"
)

// Options are the forwarder's collaborators.
type Options struct {
	// Log receives structured logs. Default: discard.
	Log *slog.Logger
	// Registerer receives the metrics. Default: none registered.
	Registerer prometheus.Registerer
	// Source says which destinations run. Default: the configuration's
	// destinations, fixed.
	Source Source
}

// Forwarder consumes audit events from Kafka and sends them to each
// destination. Build it with New and run it with Run.
type Forwarder struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	source  Source
	// active is the set of running senders while Run runs.
	active atomic.Pointer[destinations]
}

// New validates cfg (defaults applied first) and returns a Forwarder.
// With a Source, the configuration's destinations may be empty: the
// source names them.
func New(cfg Config, opts Options) (*Forwarder, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil && (opts.Source == nil || len(cfg.Destinations) > 0) {
		return nil, fmt.Errorf("forwarder config: %w", err)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	src := opts.Source
	if src == nil {
		src = NewStaticSource(cfg.Destinations)
	}
	return &Forwarder{cfg: cfg, log: log, metrics: newMetrics(opts.Registerer), source: src}, nil
}

// Run runs the destinations the source names until ctx is cancelled or
// one of them fails, starting and stopping senders as the source changes;
// it returns after all of them stopped. An unreachable SIEM is not a
// failure: its destination retries, holding its offsets, forever. A set
// from the source that does not validate is logged and not applied.
func (f *Forwarder) Run(ctx context.Context) error {
	dlw, err := deadletter.Open(f.cfg.Kafka, f.cfg.DeadLetterTopic, "forwarder", f.log)
	if err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	defer dlw.Close()
	ds := &destinations{f: f, dlw: dlw, failed: make(chan error, 1), running: map[string]*running{}}
	f.active.Store(ds)
	defer f.active.Store(nil)

	sctx, cancelSource := context.WithCancel(ctx)
	updates := make(chan []Destination)
	srcDone := make(chan error, 1)
	go func() { srcDone <- f.source.Run(sctx, updates) }()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case want := <-updates:
			set, err := checkSet(want)
			if err != nil {
				f.log.Error("destinations not applied", "error", err)
				continue
			}
			ds.apply(ctx, set)
		case err := <-ds.failed:
			runErr = err
			break loop
		case err := <-srcDone:
			if err != nil {
				runErr = fmt.Errorf("forwarder: destination source: %w", err)
				break loop
			}
			srcDone = nil // the source is done; the senders go on
		}
	}
	cancelSource()
	if srcDone != nil {
		<-srcDone
	}
	return errors.Join(runErr, ds.stopAll())
}

// Groups returns the consumer groups of the destinations running now.
func (f *Forwarder) Groups() []string {
	if ds := f.active.Load(); ds != nil {
		return ds.groups()
	}
	var gs []string
	for _, d := range f.cfg.Destinations {
		gs = append(gs, d.Group)
	}
	return gs
}

// RunDestination runs one more destination with the forwarder's Kafka and
// dead-letter settings until ctx is cancelled: the seam through which the
// policy service runs a destination per resource assignment. d gets its
// defaults and is validated first.
func (f *Forwarder) RunDestination(ctx context.Context, d Destination) error {
	d = d.WithDefaults()
	if err := d.Validate("destination"); err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	dlw, err := deadletter.Open(f.cfg.Kafka, f.cfg.DeadLetterTopic, "forwarder", f.log)
	if err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	defer dlw.Close()
	return f.runDestination(ctx, d, dlw)
}

func (f *Forwarder) runDestination(ctx context.Context, d Destination, dlw *deadletter.Writer) error {
	log := f.log.With("destination", d.Name)
	fm, err := newFormatter(d.format())
	if err != nil {
		return fmt.Errorf("destination %s: %w", d.Name, err)
	}
	dl, err := d.newDialer()
	if err != nil {
		return err
	}
	if d.PlainTCP {
		log.Warn("sending to the SIEM in clear (plain_tcp is set)", "address", d.Address)
	}
	if d.TLS.InsecureSkipVerify {
		log.Warn("the SIEM's certificate is NOT verified (insecure_skip_verify is set)", "address", d.Address)
	}
	// Fetches of 1 MiB rather than the shared 16 MiB: a destination is
	// bounded by its SIEM, not by fetch size, and the embedded broker
	// (kfake) spends several times the CPU building 16 MiB responses
	// (profile of BenchmarkForwarderVsRaw, now BenchmarkSIEMThroughput).
	r, err := f.cfg.Kafka.NewGroupReader(kafka.GroupReaderConfig{
		Group: d.Group, Topics: d.Filter.topics(), MaxBytes: fetchMaxBytes, Log: log,
	})
	if err != nil {
		return fmt.Errorf("destination %s: %w", d.Name, err)
	}
	p := &pipeline{
		d: d, log: log, m: f.metrics.forDestination(d.Name), fm: fm, reader: r, dlw: dlw,
	}
	p.sink = newSink(d.sinkConfig(dl), log, p.m)
	log.Info("forwarding", "address", d.Address, "group", d.Group, "tls", !d.PlainTCP)
	err = p.run(ctx)
	// Leaving the group only now: the offsets the SIEM confirmed at the
	// stop were committed under the generation they were read in.
	if cerr := r.Close(); cerr != nil && err == nil {
		log.Warn("leaving the consumer group", "error", cerr)
	}
	return err
}

// fetchMaxBytes bounds one Kafka fetch of a destination's reader.
const fetchMaxBytes = 1 << 20

// groupReader is the part of a consumer-group member the pipeline uses.
type groupReader interface {
	Run(ctx context.Context, handle func(context.Context, kafka.Batch) error) error
	Lag() int64
}

// pipeline is one destination: the group reader's goroutines (one per
// assigned partition) decode, filter and render events, and the sending
// loop writes, settles and commits them.
type pipeline struct {
	d      Destination
	log    *slog.Logger
	m      *destMetrics
	fm     *formatter
	reader groupReader
	dlw    *deadletter.Writer
	sink   *sink

	renderers sync.Pool // of *renderer
}

// renderer is the rendering state of one partition's goroutine: entries,
// frame slices and frame bytes are taken from chunks, not allocated one by
// one.
type renderer struct {
	arena   arena
	entries []entry
	slots   [][]byte
}

// Chunk sizes of a renderer's entries and frame slices. A chunk is kept
// alive by any entry in it: entries settle in order, so that is at most a
// chunk more than the in-flight window, per partition.
const (
	entryChunk = 256
	slotChunk  = 1024
)

// newEntry returns a zeroed entry from the current chunk.
func (rd *renderer) newEntry() *entry {
	if len(rd.entries) == 0 {
		rd.entries = make([]entry, entryChunk)
	}
	e := &rd.entries[0]
	rd.entries = rd.entries[1:]
	return e
}

// slotsWithRoom returns the current chunk of frame slices, a new one when
// it has no room left: a chunk is only appended to, never grown for ever
// (it would keep every frame rendered since the start alive).
func (rd *renderer) slotsWithRoom() [][]byte {
	if cap(rd.slots)-len(rd.slots) < 1 {
		rd.slots = make([][]byte, 0, slotChunk)
	}
	return rd.slots
}

// keep makes slots, rd.slotsWithRoom() with an entry's frames appended from
// first on, the current chunk, and returns the entry's frames: its own part
// of the chunk (capacity capped), even when a split event made append move
// to a new array.
func (rd *renderer) keep(slots [][]byte, first int) [][]byte {
	rd.slots = slots
	return slots[first:len(slots):len(slots)]
}

// frames renders ev with fm into the renderer's chunks; cj is ev's
// canonical JSON when it is known (see appendFrames).
func (rd *renderer) frames(fm *formatter, ev *schemas.Event, cj canonJSON) ([][]byte, error) {
	chunk := rd.slotsWithRoom()
	slots, err := fm.appendFrames(chunk, &rd.arena, ev, cj)
	if err != nil {
		return nil, err
	}
	return rd.keep(slots, len(chunk)), nil
}

func (p *pipeline) run(ctx context.Context) error {
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	items := make(chan *entry, 4096)
	var wg sync.WaitGroup
	var fetchErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(items)
		fetchErr = p.reader.Run(fetchCtx, func(ctx context.Context, b kafka.Batch) error {
			return p.handle(ctx, b, items)
		})
	}()
	err := p.send(ctx, items)
	stopFetch()
	// Drain so the readers are never blocked on a full channel; entries
	// drained here were never written and are not committed.
	for range items {
	}
	wg.Wait()
	if err == nil && fetchErr != nil {
		err = fetchErr // the destination's name is added by the caller
	}
	return err
}

// handle renders one partition's batch and hands its entries on, in
// Kafka order.
func (p *pipeline) handle(ctx context.Context, b kafka.Batch, out chan<- *entry) error {
	rd, _ := p.renderers.Get().(*renderer)
	if rd == nil {
		rd = new(renderer)
	}
	defer p.renderers.Put(rd)
	for i := range b.Records {
		e, err := p.render(ctx, rd, b.Generation, &b.Records[i])
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopping or rebalancing during a dead-letter write: not committed
			}
			return err
		}
		select {
		case out <- e:
		case <-ctx.Done():
			return nil // stopping or rebalancing: not handed on, not committed
		}
	}
	return nil
}

// render turns a Kafka message into an entry: the frames to send, or none
// when the filter skips the event or it went to the dead-letter topic.
func (p *pipeline) render(ctx context.Context, rd *renderer, gen *kafka.Generation, msg *kafka.Record) (*entry, error) {
	e := rd.newEntry()
	e.ref = commitRef{gen: gen, topic: msg.Topic, partition: msg.Partition, offset: msg.Offset}
	e.born = msg.Time
	if msg.Topic == schemas.TopicLifecycle {
		return e, p.renderLifecycle(ctx, rd, e, msg)
	}
	var ev schemas.Event
	// Decoded directly: json.Unmarshal would scan the input once more
	// before. The collector writes each event's canonical bytes, which
	// are then hashed and quoted as they are (DecodeJSONCanonical).
	canon, err := ev.DecodeJSONCanonical(msg.Value)
	if err != nil {
		return e, p.deadLetter(ctx, msg, reasonDecode, err, "")
	}
	if err := ev.Validate(); err != nil {
		return e, p.deadLetter(ctx, msg, reasonInvalid, err, ev.Host)
	}
	if !p.d.Filter.Match(&ev) {
		p.m.filtered.Inc()
		return e, nil
	}
	frames, err := rd.frames(p.fm, &ev, canonOf(msg.Value, canon))
	if err != nil {
		reason := reasonRendering
		if errors.Is(err, ErrHeaderTooLarge) {
			reason = reasonOversize
		}
		return e, p.deadLetter(ctx, msg, reason, err, ev.Host)
	}
	e.frames = frames
	p.countSplit(frames)
	return e, nil
}

// renderLifecycle sets e's frames for a lifecycle event, none when the
// filter skips it or it went to the dead-letter topic.
func (p *pipeline) renderLifecycle(ctx context.Context, rd *renderer, e *entry, msg *kafka.Record) error {
	l, err := schemas.DecodeLifecycle(msg.Value)
	if err != nil {
		reason := reasonDecode
		var loose schemas.Lifecycle
		if json.Unmarshal(msg.Value, &loose) == nil && loose.Validate() != nil {
			reason = reasonInvalid
		}
		return p.deadLetter(ctx, msg, reason, err, string(msg.Key))
	}
	if !p.d.Filter.MatchLifecycle(&l) {
		p.m.filtered.Inc()
		return nil
	}
	chunk := rd.slotsWithRoom()
	slots, err := p.fm.lifecycleFrames(chunk, &l)
	if err != nil {
		reason := reasonRendering
		if errors.Is(err, ErrHeaderTooLarge) {
			reason = reasonOversize
		}
		return p.deadLetter(ctx, msg, reason, err, l.ResourceID)
	}
	e.frames = rd.keep(slots, len(chunk))
	p.countSplit(e.frames)
	return nil
}

// countSplit counts an event or lifecycle record sent as several parts.
func (p *pipeline) countSplit(frames [][]byte) {
	if len(frames) > 1 {
		p.m.split.Inc()
		p.m.parts.Add(float64(len(frames)))
	}
}

// deadLetter writes msg to the dead-letter topic, retrying until it is
// written or ctx ends: an event leaves the pipeline only through the SIEM
// or the dead-letter topic.
func (p *pipeline) deadLetter(ctx context.Context, msg *kafka.Record, reason string, cause error, host string) error {
	dl := p.dlw.Letter(reason, fmt.Errorf("destination %s: %w", p.d.Name, cause), msg.Value, host, msg.Source())
	p.log.Warn("event not sendable; written to the dead-letter topic", "reason", reason, "source", dl.Source, "error", cause)
	if err := p.dlw.Write(ctx, dl); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("destination %s: %w", p.d.Name, err)
	}
	p.m.deadLettered.WithLabelValues(reason).Inc()
	return nil
}

// flushDelay is how long written messages may wait in the buffer for
// more to join them in one write.
const flushDelay = 2 * time.Millisecond

// commitRef is what a settled entry needs to be committed.
type commitRef struct {
	gen       *kafka.Generation // under which the message was read
	topic     string
	partition int
	offset    int64
}

// send writes entries, settles them and commits their offsets, until ctx
// ends; then it closes the connection gracefully and commits what the SIEM
// confirmed.
func (p *pipeline) send(ctx context.Context, items <-chan *entry) error {
	tick := time.NewTicker(min(p.d.Settle/4, 50*time.Millisecond))
	defer tick.Stop()
	commitTick := time.NewTicker(p.d.CommitInterval)
	defer commitTick.Stop()
	type topicPartition struct {
		topic     string
		partition int
	}
	pending := map[topicPartition]commitRef{} // settled, not committed: newest per partition
	collect := func(es []*entry) {
		for _, e := range es {
			pending[topicPartition{e.ref.topic, e.ref.partition}] = e.ref
		}
	}
	// commit commits the pending offsets, each under the generation it
	// was read in. Those of a generation that ended (a rebalance) are
	// dropped: the partition's next owner reads them again.
	commit := func() {
		if len(pending) == 0 {
			return
		}
		byGen := map[*kafka.Generation]map[string]map[int]int64{}
		for _, ref := range pending {
			offs := byGen[ref.gen]
			if offs == nil {
				offs = map[string]map[int]int64{}
				byGen[ref.gen] = offs
			}
			if offs[ref.topic] == nil {
				offs[ref.topic] = map[int]int64{}
			}
			offs[ref.topic][ref.partition] = ref.offset + 1
		}
		for gen, offs := range byGen {
			err := gen.Commit(offs)
			if err == nil || gen.Ended() {
				if err != nil {
					p.log.Info("not committed: the consumer group rebalanced; the partitions' next owners send those events again", "error", err)
				}
				for tp, ref := range pending {
					if ref.gen == gen {
						delete(pending, tp)
					}
				}
				continue
			}
			p.m.commitErrors.Inc()
			p.log.Warn("committing offsets failed; retried with the next commit", "error", err)
		}
	}
	gauges := func(now time.Time) {
		if t := p.sink.oldest(); !t.IsZero() {
			p.m.oldestAge.Set(now.Sub(t).Seconds())
		} else {
			p.m.oldestAge.Set(0)
		}
	}
	flushTimer := time.NewTimer(time.Hour)
	flushTimer.Stop()
	defer flushTimer.Stop()
	flushArmed := false
	batch := make([]*entry, 0, 1024)
	// take adds, as one batch, what is ready on items (after first, when
	// set) while the window has room. closed reports that items is closed.
	take := func(first *entry) (closed bool, err error) {
		batch = batch[:0]
		n, b := p.sink.inFlight()
		if first != nil {
			batch = append(batch, first)
			n++
		}
		for ; n < p.d.MaxInFlight && b < p.d.MaxInFlightBytes.Bytes(); n++ {
			var e *entry
			select {
			case e, closed = <-items:
				closed = !closed
			default:
			}
			if e == nil {
				break
			}
			batch = append(batch, e)
			for _, f := range e.frames {
				b += len(f)
			}
		}
		if len(batch) > 0 {
			err = p.sink.add(ctx, batch...)
			clear(batch) // the entries are the sink's now
		}
		return closed, err
	}
	for {
		n, b := p.sink.inFlight()
		in := items
		if n >= p.d.MaxInFlight || b >= p.d.MaxInFlightBytes.Bytes() {
			in = nil // window full: wait for entries to settle
		}
		if flushArmed {
			// Linger: what arrives meanwhile is taken, in one batch,
			// when the flush timer fires, so the loop wakes up once per
			// flush rather than once per message.
			in = nil
		}
		select {
		case <-ctx.Done():
			return p.stop(ctx, collect, commit, nil)
		case e, ok := <-in:
			if !ok {
				return p.stop(ctx, collect, commit, nil)
			}
			closed, err := take(e)
			if err != nil || closed {
				return p.stop(ctx, collect, commit, err)
			}
			// Linger briefly before flushing so that messages go out in
			// full TLS records rather than one write per message.
			flushTimer.Reset(flushDelay)
			flushArmed = true
		case <-flushTimer.C:
			flushArmed = false
			closed, err := take(nil)
			if err != nil || closed {
				return p.stop(ctx, collect, commit, err)
			}
			if err := p.sink.flush(ctx); err != nil {
				return p.stop(ctx, collect, commit, err)
			}
		case now := <-tick.C:
			if err := p.sink.flush(ctx); err != nil {
				return p.stop(ctx, collect, commit, err)
			}
			collect(p.sink.settled(now))
			if p.sink.conn == nil && len(p.sink.unsettled) > 0 {
				// The connection broke while idle: repair it now.
				if err := p.sink.ensureConn(ctx); err != nil {
					return p.stop(ctx, collect, commit, err)
				}
			}
			gauges(now)
		case <-commitTick.C:
			commit()
			p.m.lag.Set(float64(p.reader.Lag()))
		}
	}
}

// stop settles what the SIEM confirms on a graceful close and commits it
// (the group reader is still a member of the group: the generation lasts).
// It returns cause, the sender's error that stopped it, unless ctx ended:
// the sink's errors are then ctx's, a stop that was asked for.
func (p *pipeline) stop(ctx context.Context, collect func([]*entry), commit func(), cause error) error {
	collect(p.sink.close(ctx))
	commit()
	p.m.inFlight.Set(0)
	if ctx.Err() != nil {
		return nil
	}
	return cause
}
