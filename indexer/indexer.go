// Package indexer moves auditpipe's Kafka topics into ClickHouse.
//
// The Indexer is a consumer group on opctl.audit.v1, opctl.lifecycle.v1
// (and the other configured topics) that batches messages by rows, bytes
// and time, inserts each batch into a clickhouse.Engine — a ClickHouse
// server through clickhouse-go/v2 or embedded chDB — and commits the Kafka
// offsets only after the insert succeeded. Audit events go to
// audit_events and the policy service's lifecycle events to
// lifecycle_events, each in typed columns, the first stored copy of an
// event_id winning; other topics go to pipeline_messages whole. A batch
// that is inserted again after a crash does not show twice: every insert
// carries a deduplication token derived from its rows, and the tables are
// ReplacingMergeTrees keyed by event_id, read with FINAL (see
// schemas/clickhouse). Messages that cannot be indexed go to the
// dead-letter topic with the reason, without stopping their batch. Load is
// the same path for files of audit events (`auditpipe index`).
//
// Wiring, for the all-in-one:
//
//	eng, err := clickhouse.Open(ctx, cfg.Store) // once per process
//	defer eng.Close()
//	ix, err := indexer.New(cfg, indexer.Deps{Engine: eng, Log: log, Registry: reg})
//	// run ix.Run(ctx) in the process's run group, and serve
//	// queryapi.NewQueryHandler(eng.(queryapi.FormatQuerier), log, queryapi.QueryHandlerOptions{})
//	// over HTTP; queryapi.PrintNamedQueries(ctx, eng, os.Stdout, "table")
//	// prints the auditor's answers.
package indexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/backoff"
	"github.com/auditpipe/auditpipe/internal/deadletter"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// Deps are what an Indexer needs besides its configuration.
type Deps struct {
	// Engine is where rows go; required. The Indexer does not close it.
	Engine clickhouse.Engine
	// Log receives structured logs; nil discards them.
	Log *slog.Logger
	// Registry receives the indexer's metrics; nil registers nothing.
	Registry prometheus.Registerer
	// Instances, when set, binds each inventory to its host: an inventory
	// whose instance the policy knows as another host's, or does not know,
	// is refused (inventory_instance_mismatch, inventory_unknown_instance).
	// Nil: inventories are stored as their signed host names them.
	Instances InstanceHosts
}

// Indexer is a consumer group member that indexes Kafka topics into
// ClickHouse. Create it with New and run it with Run.
type Indexer struct {
	cfg Config
	eng clickhouse.Engine
	// hosts are the enrolled host keys inventories are verified against.
	hosts *sign.KeyDir
	// instances binds inventories to hosts (Deps.Instances); nil: unbound.
	instances InstanceHosts
	// invSeqs refuses an inventory written again (grants.Seqs, by host;
	// kept in StateDir when set).
	invSeqs *grants.Seqs
	log     *slog.Logger
	m       *metrics
	now     func() time.Time
	// storeFull reports the pauses while the store's disk is full.
	storeFull *backoff.Outage

	// beforeCommit, when set (tests), runs after a batch was inserted and
	// before its offsets are committed; an error ends Run as a crash would.
	beforeCommit func() error
}

// New checks cfg and returns an Indexer; it connects to nothing yet.
func New(cfg Config, d Deps) (*Indexer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Engine == nil {
		return nil, errors.New("indexer: no engine")
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var state string
	if cfg.StateDir != "" {
		state = filepath.Join(cfg.StateDir, InventoryStateFile)
	}
	invSeqs, err := grants.OpenSeqs("host", state, log)
	if err != nil {
		return nil, fmt.Errorf("indexer.state_dir: %w", err)
	}
	invSeqs.Defer() // written once a batch, before its commit
	ix := &Indexer{cfg: cfg, eng: d.Engine, hosts: sign.NewKeyDir(cfg.HostKeysDir), instances: d.Instances, invSeqs: invSeqs,
		log: log, m: newMetrics(d.Registry), now: time.Now}
	if d.Instances == nil {
		log.Info("inventories are not bound to the policy's instances in this process (no scheduler store): each is stored as its signed host names it")
	}
	ix.storeFull = backoff.NewOutage(log, "inserting into ClickHouse (store disk full: the batch is held, fetching paused, nothing committed)",
		"reason", pauseStoreDiskFull)
	return ix, nil
}

// item is one fetched record, decoded, with the generation it was read
// under (its offset is committed through it).
type item struct {
	msg kafka.Record
	gen *kafka.Generation
	ev  *clickhouse.EventRow
	lc  *clickhouse.LifecycleRow
	mr  *clickhouse.MessageRow
	inv *inventoryReport
	dl  *schemas.DeadLetter
}

// Run applies the migrations, then consumes until ctx is cancelled. On
// cancellation it stops fetching, inserts and commits the batch it holds
// (bounded by ShutdownTimeout) and returns nil. It returns an error when
// the migrations fail, or when the consumer fails for good.
func (ix *Indexer) Run(ctx context.Context) error {
	if _, err := clickhouse.MigrateLayout(ctx, ix.eng, ix.cfg.Store.Layout(), ix.cfg.Store.RetentionDays, ix.log); err != nil {
		return err
	}
	reader, err := ix.cfg.Kafka.NewGroupReader(kafka.GroupReaderConfig{Group: ix.cfg.Group, Topics: ix.cfg.Topics, MaxBytes: 4 << 20, Log: ix.log})
	if err != nil {
		return fmt.Errorf("indexer: %w", err)
	}
	dlw, err := deadletter.Open(ix.cfg.Kafka, ix.cfg.DeadLetterTopic, "indexer", ix.log)
	if err != nil {
		_ = reader.Close()
		return fmt.Errorf("indexer: %w", err)
	}

	// flushCtx outlives ctx by ShutdownTimeout, so the last batch can be
	// inserted and committed after a SIGTERM, and a flush stuck retrying
	// against a dead store still ends.
	flushCtx, cancelFlush := context.WithCancel(context.WithoutCancel(ctx))
	var timerMu sync.Mutex
	var shutdownTimer *time.Timer
	stopAfter := context.AfterFunc(ctx, func() {
		timerMu.Lock()
		shutdownTimer = time.AfterFunc(ix.cfg.ShutdownTimeout, cancelFlush)
		timerMu.Unlock()
	})

	fetchCtx, cancelFetch := context.WithCancel(ctx)
	items := make(chan item, ix.cfg.Batch.MaxRows)
	fetchErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { fetchErr <- ix.fetch(fetchCtx, reader, items) })

	defer func() {
		cancelFetch()
		wg.Wait()
		stopAfter()
		timerMu.Lock()
		if shutdownTimer != nil {
			shutdownTimer.Stop()
		}
		timerMu.Unlock()
		cancelFlush()
		if err := dlw.Close(); err != nil {
			ix.log.Warn("close dead-letter writer", "err", err)
		}
		if err := reader.Close(); err != nil {
			ix.log.Warn("close reader", "err", err)
		}
	}()

	ix.log.Info("indexer running", "group", ix.cfg.Group, "topics", ix.cfg.Topics)
	var (
		b       batch
		timer   = time.NewTimer(time.Hour)
		timeout <-chan time.Time
	)
	timer.Stop()
	defer timer.Stop()
	flush := func() error {
		timer.Stop()
		timeout = nil
		err := ix.flush(flushCtx, dlw, &b)
		b.reset()
		ix.m.pendingRows.Set(0)
		return err
	}
	for {
		select {
		case it := <-items:
			if b.len() == 0 {
				timer.Reset(ix.cfg.Batch.MaxWait)
				timeout = timer.C
			}
			b.add(it)
			ix.m.pendingRows.Set(float64(b.len()))
			if b.len() >= ix.cfg.Batch.MaxRows || b.bytes >= ix.cfg.Batch.MaxBytes {
				if err := flush(); err != nil {
					return ix.stopErr(ctx, err)
				}
			}
		case <-timeout:
			if err := flush(); err != nil {
				return ix.stopErr(ctx, err)
			}
		case err := <-fetchErr:
			if ctx.Err() != nil {
				continue // shutting down: the ctx.Done case flushes
			}
			ferr := flush()
			return errors.Join(fmt.Errorf("indexer: fetch: %w", err), ferr)
		case <-ctx.Done():
			// Stop fetching, take what was already fetched, flush it.
			cancelFetch()
			wg.Wait()
			for drained := false; !drained; {
				select {
				case it := <-items:
					b.add(it)
				default:
					drained = true
				}
			}
			if b.len() > 0 {
				ix.log.Info("flushing last batch", "rows", b.len())
			}
			if err := flush(); err != nil {
				return ix.stopErr(ctx, err)
			}
			return nil
		}
	}
}

// stopErr turns a flush error into Run's result.
func (ix *Indexer) stopErr(ctx context.Context, err error) error {
	if errors.Is(err, errCrash) {
		return err
	}
	if ctx.Err() != nil {
		ix.m.batches.WithLabelValues("aborted").Inc()
		ix.log.Warn("last batch not committed at shutdown; it will be redelivered", "err", err)
		return nil
	}
	return err
}

// fetch reads records through the group reader, decodes them, and hands
// them over until ctx ends. The reader retries the broker (an outage is
// logged once, and its end); fetch returns only a permanent failure.
func (ix *Indexer) fetch(ctx context.Context, r *kafka.GroupReader, out chan<- item) error {
	return r.Run(ctx, func(ctx context.Context, b kafka.Batch) error {
		ix.m.consumed.WithLabelValues(b.Topic).Add(float64(len(b.Records)))
		last := b.Records[len(b.Records)-1]
		ix.m.lag.WithLabelValues(b.Topic, strconv.Itoa(b.Partition)).Set(float64(max(b.HighWaterMark-last.Offset-1, 0)))
		for i := range b.Records {
			it := ix.decode(ctx, b.Records[i])
			if ctx.Err() != nil {
				return nil // stopped while the policy store was away: not handed on, not committed
			}
			it.gen = b.Generation
			select {
			case out <- it:
			case <-ctx.Done():
				return nil // stopping or rebalancing: not handed on, not committed
			}
		}
		return nil
	})
}

func (ix *Indexer) decode(ctx context.Context, m kafka.Record) item {
	it := item{msg: m}
	if m.Topic == schemas.TopicAudit {
		row, err := DecodeEvent(m.Value, ix.cfg.MaxRowBytes)
		if err != nil {
			it.dl = ix.deadLetter(RejectReason(err), err, m.Value, string(m.Key), m.Source())
			return it
		}
		row.Partition, row.Offset = int32(m.Partition), m.Offset
		it.ev = &row
		return it
	}
	if m.Topic == schemas.TopicLifecycle {
		row, err := DecodeLifecycle(m.Value, ix.cfg.MaxRowBytes)
		if err != nil {
			it.dl = ix.deadLetter(RejectReason(err), err, m.Value, string(m.Key), m.Source())
			return it
		}
		row.Partition, row.Offset = int32(m.Partition), m.Offset
		it.lc = &row
		return it
	}
	if m.Topic == schemas.TopicAgent && isInventory(m.Value) {
		am, err := openInventory(m.Key, m.Value, ix.hosts)
		if err != nil {
			it.dl = ix.deadLetter(RejectReason(err), err, m.Value, string(m.Key), m.Source())
			return it
		}
		rows, err := DecodeInventory(am.Payload, ix.cfg.MaxRowBytes)
		if err == nil {
			err = ix.bindInstance(ctx, am.Host, rows[0].InstanceID)
		}
		if err == nil { // last: only an inventory that is stored moves the memory
			err = admitInventory(am, m.Partition, m.Offset, ix.invSeqs)
		}
		if err != nil {
			it.dl = ix.deadLetter(RejectReason(err), err, m.Value, string(m.Key), m.Source())
			return it
		}
		for i := range rows {
			rows[i].Partition, rows[i].Offset = int32(m.Partition), m.Offset
		}
		it.inv = &inventoryReport{rows: rows, payload: m.Value, host: string(m.Key), source: m.Source()}
		return it
	}
	if err := decodeMessage(m.Topic, m.Value, ix.cfg.MaxRowBytes); err != nil {
		if m.Topic == ix.cfg.DeadLetterTopic {
			// A dead letter of a dead letter would loop: keep it, lossy.
			ix.log.Warn("dead-letter message stored with invalid bytes replaced", "source", m.Source(), "err", err)
			m.Value = []byte(strings.ToValidUTF8(string(m.Value), "\uFFFD"))
		} else {
			it.dl = ix.deadLetter(RejectReason(err), err, m.Value, string(m.Key), m.Source())
			return it
		}
	}
	ts := m.Time
	if ts.IsZero() {
		ts = ix.now()
	}
	it.mr = &clickhouse.MessageRow{Topic: m.Topic, Partition: int32(m.Partition), Offset: m.Offset, Key: string(m.Key), TS: ts.UTC(), Payload: m.Value}
	return it
}

func (ix *Indexer) deadLetter(reason string, err error, raw []byte, host, source string) *schemas.DeadLetter {
	d := deadletter.New("indexer", reason, err, raw, host, source, ix.now())
	return &d
}

// batch is what the indexer inserts and commits at once.
type batch struct {
	events    []clickhouse.EventRow
	lifecycle []clickhouse.LifecycleRow
	messages  []clickhouse.MessageRow
	inventory []inventoryReport
	dead      []*schemas.DeadLetter
	last      map[topicPartition]item // last record per topic/partition
	n         int
	bytes     int
}

// topicPartition is a key of batch.last (a struct, not a string built
// for every record).
type topicPartition struct {
	topic     string
	partition int
}

func (b *batch) len() int { return b.n }

func (b *batch) add(it item) {
	switch {
	case it.ev != nil:
		b.events = append(b.events, *it.ev)
	case it.lc != nil:
		b.lifecycle = append(b.lifecycle, *it.lc)
	case it.mr != nil:
		b.messages = append(b.messages, *it.mr)
	case it.inv != nil:
		b.inventory = append(b.inventory, *it.inv)
	case it.dl != nil:
		b.dead = append(b.dead, it.dl)
	}
	if b.last == nil {
		b.last = make(map[topicPartition]item)
	}
	k := topicPartition{it.msg.Topic, it.msg.Partition}
	if prev, ok := b.last[k]; !ok || it.gen != prev.gen || it.msg.Offset > prev.msg.Offset {
		b.last[k] = item{msg: kafka.Record{Topic: it.msg.Topic, Partition: it.msg.Partition, Offset: it.msg.Offset}, gen: it.gen}
	}
	b.n++
	b.bytes += len(it.msg.Value)
}

func (b *batch) reset() {
	b.events = b.events[:0]
	b.lifecycle = b.lifecycle[:0]
	b.messages = b.messages[:0]
	b.inventory = b.inventory[:0]
	b.dead = b.dead[:0]
	clear(b.last)
	b.n, b.bytes = 0, 0
}

// errCrash is returned when the test hook simulates a crash.
var errCrash = errors.New("indexer: simulated crash before commit")

// flush inserts the batch, writes its dead letters, then commits its
// offsets. Each step is retried with backoff until it succeeds or ctx ends;
// the offsets are committed only when everything before succeeded.
func (ix *Indexer) flush(ctx context.Context, dlw *deadletter.Writer, b *batch) error {
	if b.len() == 0 {
		return nil
	}
	ix.m.batchRows.Observe(float64(b.len()))
	if len(b.events) > 0 {
		fresh, err := ix.firstWriteWins(ctx, b.events)
		if err != nil {
			return err
		}
		if len(fresh) > 0 {
			rejected, err := ix.insertEvents(ctx, fresh)
			if err != nil {
				return err
			}
			b.dead = append(b.dead, rejected...)
		}
	}
	if len(b.lifecycle) > 0 {
		fresh, conflicts, err := ix.firstWriteWinsLifecycle(ctx, b.lifecycle)
		if err != nil {
			return err
		}
		b.dead = append(b.dead, conflicts...)
		if len(fresh) > 0 {
			rejected, err := ix.insertLifecycle(ctx, fresh)
			if err != nil {
				return err
			}
			b.dead = append(b.dead, rejected...)
		}
	}
	if len(b.messages) > 0 {
		rejected, err := ix.insertMessages(ctx, b.messages)
		if err != nil {
			return err
		}
		b.dead = append(b.dead, rejected...)
	}
	if len(b.inventory) > 0 {
		rejected, err := ix.insertInventory(ctx, b.inventory)
		if err != nil {
			return err
		}
		b.dead = append(b.dead, rejected...)
	}
	if len(b.dead) > 0 {
		ds := make([]schemas.DeadLetter, len(b.dead))
		for i, d := range b.dead {
			ds[i] = *d
		}
		if err := dlw.Write(ctx, ds...); err != nil {
			ix.m.commitErrors.Inc()
			return fmt.Errorf("indexer: %w", err)
		}
		for _, d := range b.dead {
			ix.m.deadLetters.WithLabelValues(d.Reason).Inc()
			ix.log.Warn("message dead-lettered", "reason", d.Reason, "source", d.Source, "err", d.Error)
		}
	}
	if ix.beforeCommit != nil {
		if err := ix.beforeCommit(); err != nil {
			return errCrash
		}
	}
	// The inventories' replay memory is written before their offsets are
	// committed: once committed they are not read again, and a restart
	// must compare what comes next with them. (A failure is logged.)
	_ = ix.invSeqs.Flush()
	if err := ix.commit(ctx, b); err != nil {
		return err
	}
	ix.m.batches.WithLabelValues("ok").Inc()
	ix.log.Debug("batch indexed", "events", len(b.events), "lifecycle", len(b.lifecycle), "messages", len(b.messages), "inventories", len(b.inventory), "dead_letters", len(b.dead))
	return nil
}

// pauseStoreDiskFull is the reason label of auditpipe_indexer_paused
// while the store's disk is full.
const pauseStoreDiskFull = "store_disk_full"

// insert runs one insert f, timed. While the store's disk is full
// (clickhouse.IsDiskFull) that is a fault of the store's machine, not of
// the rows: the indexer pauses. It holds the batch (the fetcher stops once
// the bounded queue of fetched records is full), commits nothing, logs the
// pause once, sets auditpipe_indexer_paused{reason="store_disk_full"}, and
// calls f again, the same rows with the same deduplication token, with
// backoff until the disk has room; the recovery is logged once. Any other
// outcome is f's to report. It returns f's last error when ctx ends first.
func (ix *Indexer) insert(ctx context.Context, f func() error) error {
	paused := ix.m.paused.WithLabelValues(pauseStoreDiskFull)
	return backoff.Retry(ctx, ix.retryPolicy(""), func(context.Context) error {
		start := time.Now()
		err := f()
		ix.m.insertDuration.Observe(time.Since(start).Seconds())
		if clickhouse.IsDiskFull(err) {
			ix.m.insertErrors.Inc()
			ix.storeFull.Fail(err)
			paused.Set(1)
			return backoff.Retryable(err)
		}
		// The disk has room (whatever f says of the rows).
		ix.storeFull.OK()
		paused.Set(0)
		return err
	})
}

// firstWriteWins returns the rows of the batch whose event ids are not
// stored yet (see splitStored), after keeping the conflicting copies in
// event_conflicts; each step is retried like an insert.
func (ix *Indexer) firstWriteWins(ctx context.Context, rows []clickhouse.EventRow) ([]clickhouse.EventRow, error) {
	var (
		fresh     []clickhouse.EventRow
		dups      int
		conflicts []conflict[clickhouse.EventRow]
	)
	if err := backoff.Retry(ctx, ix.retryPolicy("looking up stored events"), func(ctx context.Context) (err error) {
		fresh, dups, conflicts, err = splitStored(ctx, ix.eng, "audit_events", rows, eventKey, inEventIDs)
		if err != nil {
			ix.m.insertErrors.Inc()
			return backoff.Retryable(err)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("indexer: look up stored events: %w", err)
	}
	if len(conflicts) > 0 {
		if err := backoff.Retry(ctx, ix.retryPolicy("inserting event conflicts"), func(ctx context.Context) error {
			if err := ix.eng.Exec(ctx, conflictsInsert(conflicts)); err != nil {
				ix.m.insertErrors.Inc()
				return backoff.Retryable(err)
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("indexer: insert event conflicts: %w", err)
		}
		for _, c := range conflicts {
			e := &c.row.Event
			ix.log.Warn("event conflict: a different copy of a stored event was kept apart, the stored one stays",
				"event_id", e.EventID, "host", e.Host, "seq", e.Seq, "stored_hash", c.firstHash, "conflict_hash", c.row.ContentHash,
				"source", fmt.Sprintf("%s/%d/%d", schemas.TopicAudit, c.row.Partition, c.row.Offset))
		}
		ix.m.conflicts.Add(float64(len(conflicts)))
	}
	ix.m.duplicates.Add(float64(dups))
	return fresh, nil
}

// insertEvents inserts rows. When ClickHouse refuses the insert, it splits
// the rows in halves until it finds the rows that it refuses alone; those
// come back as dead letters and the rest is inserted. When every row is
// refused, the cause is the store rather than the rows, and the whole
// insert is retried with backoff instead.
func (ix *Indexer) insertEvents(ctx context.Context, rows []clickhouse.EventRow) ([]*schemas.DeadLetter, error) {
	var rejected []*schemas.DeadLetter
	err := backoff.Retry(ctx, ix.retryPolicy("inserting events"), func(ctx context.Context) error {
		rejected = nil
		err := ix.insertSplit(ctx, rows, &rejected)
		if err == nil && (len(rejected) < len(rows) || len(rows) == 1) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("every row refused, first: %s", rejected[0].Error)
		}
		ix.m.insertErrors.Inc()
		return backoff.Retryable(fmt.Errorf("%d rows: %w", len(rows), err))
	})
	if err != nil {
		return nil, fmt.Errorf("indexer: insert batch: %w", err)
	}
	return rejected, nil
}

// insertSplit inserts rows, bisecting on refusals; it returns an error
// only for failures that are not about the rows (connection, context).
func (ix *Indexer) insertSplit(ctx context.Context, rows []clickhouse.EventRow, rejected *[]*schemas.DeadLetter) error {
	err := ix.insert(ctx, func() error { return ix.eng.InsertEvents(ctx, clickhouse.EventsToken(rows), rows) })
	if err == nil {
		ix.m.rowsInserted.WithLabelValues("audit_events").Add(float64(len(rows)))
		return nil
	}
	if !clickhouse.IsRowError(err) || ctx.Err() != nil {
		return err
	}
	ix.m.insertErrors.Inc()
	if len(rows) == 1 {
		r := &rows[0]
		*rejected = append(*rejected, ix.deadLetter(ReasonInsertRejected, err, r.JSON, r.Event.Host,
			fmt.Sprintf("%s/%d/%d", schemas.TopicAudit, r.Partition, r.Offset)))
		return nil
	}
	mid := len(rows) / 2
	if err := ix.insertSplit(ctx, rows[:mid], rejected); err != nil {
		return err
	}
	return ix.insertSplit(ctx, rows[mid:], rejected)
}

// insertMessages inserts rows into pipeline_messages, as insertEach does.
func (ix *Indexer) insertMessages(ctx context.Context, rows []clickhouse.MessageRow) ([]*schemas.DeadLetter, error) {
	return insertEach(ctx, ix, "pipeline_messages", rows,
		func(rs []clickhouse.MessageRow) error {
			return ix.eng.InsertMessages(ctx, clickhouse.MessagesToken(rs), rs)
		},
		func(r *clickhouse.MessageRow, err error) *schemas.DeadLetter {
			return ix.deadLetter(ReasonInsertRejected, err, r.Payload, r.Key, fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset))
		})
}

// insertEach inserts rows into table with insert (which gives each call
// its deduplication token); when the store refuses the insert, it inserts
// them one by one and returns those it refuses alone as dead letters
// (letter). When every row is refused, the store is at fault rather than
// the rows: the whole insert is retried with backoff.
func insertEach[R any](ctx context.Context, ix *Indexer, table string, rows []R, insert func([]R) error, letter func(*R, error) *schemas.DeadLetter) ([]*schemas.DeadLetter, error) {
	var rejected []*schemas.DeadLetter
	err := backoff.Retry(ctx, ix.retryPolicy("inserting into "+table), func(ctx context.Context) error {
		rejected = nil
		err := ix.insert(ctx, func() error { return insert(rows) })
		if err == nil {
			ix.m.rowsInserted.WithLabelValues(table).Add(float64(len(rows)))
			return nil
		}
		ix.m.insertErrors.Inc()
		if clickhouse.IsRowError(err) && ctx.Err() == nil {
			for i := range rows {
				one := rows[i : i+1]
				if err1 := ix.insert(ctx, func() error { return insert(one) }); err1 != nil {
					if !clickhouse.IsRowError(err1) {
						err = err1
						break
					}
					rejected = append(rejected, letter(&one[0], err1))
				}
			}
			if len(rejected) < len(rows) || len(rows) == 1 {
				ix.m.rowsInserted.WithLabelValues(table).Add(float64(len(rows) - len(rejected)))
				return nil
			}
		}
		return backoff.Retryable(fmt.Errorf("%d rows: %w", len(rows), err))
	})
	if err != nil {
		return nil, fmt.Errorf("indexer: insert into %s: %w", table, err)
	}
	return rejected, nil
}

// commit commits the batch's offsets, each under the generation it was
// read in, retrying with backoff. Those of a generation that ended (a
// rebalance) are not committed: the partition's next owner reads them
// again, and the insert's deduplication token keeps them from counting
// twice.
func (ix *Indexer) commit(ctx context.Context, b *batch) error {
	byGen := map[*kafka.Generation]map[string]map[int]int64{}
	for _, it := range b.last {
		offs := byGen[it.gen]
		if offs == nil {
			offs = map[string]map[int]int64{}
			byGen[it.gen] = offs
		}
		if offs[it.msg.Topic] == nil {
			offs[it.msg.Topic] = map[int]int64{}
		}
		offs[it.msg.Topic][it.msg.Partition] = it.msg.Offset + 1
	}
	for gen, offs := range byGen {
		err := backoff.Retry(ctx, ix.retryPolicy("committing offsets"), func(context.Context) error {
			if gen.Ended() {
				return nil
			}
			err := gen.Commit(offs)
			if err != nil {
				ix.m.commitErrors.Inc()
			}
			return kafka.Classify(err)
		})
		if gen.Ended() {
			ix.log.Info("not committed: the consumer group rebalanced; the partitions' next owners index those records again (deduplicated)")
			continue
		}
		if err != nil {
			return fmt.Errorf("indexer: commit offsets: %w", err)
		}
	}
	return nil
}

// retryPolicy is the backoff of the indexer's retries of what, whose
// outages are logged once, and their end ("": the caller reports them).
func (ix *Indexer) retryPolicy(what string) backoff.Policy {
	p := backoff.Policy{Min: ix.cfg.RetryBackoff, Max: ix.cfg.RetryBackoffMax}
	if what != "" {
		p.Outage = backoff.NewOutage(ix.log, what)
	}
	return p
}
