package collector

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/collector/assemble"
	"github.com/auditpipe/auditpipe/collector/auditlog"
	"github.com/auditpipe/auditpipe/collector/builder"
	"github.com/auditpipe/auditpipe/collector/checkpoint"
	"github.com/auditpipe/auditpipe/collector/netlinksrc"
	"github.com/auditpipe/auditpipe/collector/spool"
	"github.com/auditpipe/auditpipe/collector/tail"
	"github.com/auditpipe/auditpipe/internal/backoff"
	"github.com/auditpipe/auditpipe/internal/deadletter"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// Collector reads audit records from one input and pushes contract events
// to Kafka. Create it with New and run it with Run.
//
// Delivery: a batch is pushed every FlushInterval or when full; after Kafka
// acknowledges it (or after it is written to the spool while Kafka is
// away), the checkpoint records the file position of the oldest event
// still being assembled, the events already delivered past that position
// (so a restart does not send them again) and the per-host sequence
// numbers. A stop by context cancellation therefore delivers every event
// exactly once. A crash between Kafka's acknowledgement and the checkpoint
// write can send the last batch again: downstream dedups by event_id.
type Collector struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	stdin  io.Reader
	grants *GrantTable
	// chainKey signs the chain checkpoints; nil: unsigned.
	chainKey ed25519.PrivateKey
	// keys verify the grants followed on the topic.
	keys *sign.Keyring
	// ready is closed when the grants that existed at start are known.
	ready chan struct{}
}

// Deps are the collector's collaborators; zero values are fine.
type Deps struct {
	Log      *slog.Logger
	Registry prometheus.Registerer
	// Stdin is read for input type stdin. Default os.Stdin.
	Stdin io.Reader
}

// New validates cfg and returns a collector.
func New(cfg Config, deps Deps) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Host == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nil, fmt.Errorf("collector.host: not set, and the hostname is unknown: %v", err)
		}
		cfg.Host = h
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Stdin == nil {
		deps.Stdin = os.Stdin
	}
	var key ed25519.PrivateKey
	if cfg.ChainKeyFile != "" {
		k, err := sign.LoadPrivateKey(cfg.ChainKeyFile)
		if err != nil {
			return nil, fmt.Errorf("collector.chain_key_file: %w", err)
		}
		key = k
	}
	keys, err := loadGrantKeys(cfg)
	if err != nil {
		return nil, err
	}
	static := staticGrants(cfg.Grants)
	return &Collector{
		cfg:      cfg,
		log:      deps.Log.With("component", "collector"),
		m:        newMetrics(deps.Registry),
		stdin:    deps.Stdin,
		grants:   NewGrantTable(static),
		keys:     keys,
		chainKey: key,
		ready:    make(chan struct{}),
	}, nil
}

// staticGrants turns the configuration's login → req_auth_id bindings
// into grants (keystrokes audited too).
func staticGrants(m map[string]string) map[string]schemas.Grant {
	static := make(map[string]schemas.Grant, len(m))
	for login, id := range m {
		static[login] = schemas.Grant{LoginID: login, ReqAuthID: id, AuditType: schemas.AuditCommandKeystroke}
	}
	return static
}

// ReloadGrants replaces the configured static grants while the collector
// runs (SIGHUP); events read from then on are attributed with them.
func (c *Collector) ReloadGrants(grants map[string]string) error {
	for login, id := range grants {
		if login == "" || id == "" {
			return fmt.Errorf("collector.grants: %q: %q: login and req_auth_id must not be empty", login, id)
		}
	}
	c.grants.SetStatic(staticGrants(grants))
	c.log.Info("static grants reloaded", "grants", len(grants))
	return nil
}

// Grants returns the collector's grant table.
func (c *Collector) Grants() *GrantTable { return c.grants }

// state is the checkpoint.
type state struct {
	Position tail.Position     `json:"position"`
	Seq      map[string]uint64 `json:"seq"`
	// Chain is each host's hash-chain head after the last event delivered
	// (see Decoder.Heads). Absent in checkpoints written before the chain:
	// the next event then starts a chain (prev_hash "").
	Chain map[string]string `json:"chain,omitempty"`
	// Skip lists events already delivered whose records lie after
	// Position (they completed while an older event was still open).
	Skip []string `json:"skip,omitempty"`
}

// spoolMeta rides with each spooled batch.
type spoolMeta struct {
	DeadLetters int `json:"dead_letters"` // the last N messages go to the dead-letter topic
}

// inLine is one input line handed from the reader goroutine, or, when idle
// is set, the mark that the input had nothing more to read then.
type inLine struct {
	data    []byte
	start   tail.Position
	end     tail.Position
	tooLong *tail.LineTooLongError
	idle    time.Time
}

// emitted is an event handed over, with the tag of its last line: a
// restart from a checkpoint before that line would read (part of) it again.
type emitted struct {
	id   string
	last uint64
}

// run holds the state of one Run.
type run struct {
	c          *Collector
	dec        *Decoder
	ckpt       *checkpoint.File
	sp         *spool.Spool
	events     *kafka.Writer
	dead       *deadletter.Writer
	outage     *backoff.Outage // of the pushes to Kafka
	batch      []kafka.Record
	batchBytes int
	dl         []kafka.Record
	nextTag    uint64
	starts     []tagPos // start positions of lines still needed for the checkpoint
	lastEnd    tail.Position
	delivered  []emitted // delivered events that a restart from the checkpoint would re-read
	pending    []emitted // events in the current batch
	// source is the file position of the line being decoded (file input),
	// formatted only for a reject or dead letter (see sourceName).
	source    tail.Position
	hasSource bool
	lastLine  time.Time // when the last line was handed to the decoder
	ehost     string
	st        state
	dirty     bool
	// spoolFault and ckptFault pause input while the spool or the
	// checkpoint cannot be written.
	spoolFault, ckptFault *fault
	// sentOldest is the number of messages of the oldest spooled batch
	// already in Kafka but not yet acknowledged in the spool; 0 when none.
	sentOldest int
	rejectLog  *rejectLog
	chained    chainBatch // what the current batch chained, per host
}

type tagPos struct {
	tag uint64
	pos tail.Position
}

// Run collects until ctx is cancelled (or, for stdin, until end of input),
// then pushes what is complete, saves the checkpoint and returns.
func (c *Collector) Run(ctx context.Context) error {
	cfg := c.cfg
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("collector: state dir: %w", err)
	}
	names, err := builder.LoadNames(cfg.Passwd, cfg.Group)
	if err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	r := &run{
		c:          c,
		ckpt:       checkpoint.New(filepath.Join(cfg.StateDir, "checkpoint.json")),
		spoolFault: c.m.newFault(opSpool, c.log),
		ckptFault:  c.m.newFault(opCheckpoint, c.log),
		rejectLog:  newRejectLog(c.log, c.m.rejectLogs),
	}
	defer r.rejectLog.summarize()
	r.spoolFault.onPause = func(reason string) {
		if reason == opSpool+"_full" {
			c.m.spoolFull.Inc()
		}
	}
	if _, err := r.ckpt.Load(&r.st); err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	r.sp, err = spool.Open(filepath.Join(cfg.StateDir, "spool"), spool.Options{
		MaxBytes: int64(cfg.SpoolMaxBytes), MaxAge: cfg.SpoolMaxAge, Logger: c.log,
		OnCorrupt: func(e *spool.CorruptError) {
			c.m.spoolCorrupt.Inc()
			c.log.Error("spool: damaged data cut off: audit data lost", "err", e)
		},
		OnExpired: func(n int, b int64) {
			c.m.spoolExpired.Add(float64(n))
			c.log.Error("spool: batches expired unsent: audit data lost", "batches", n, "bytes", b, "max_age", cfg.SpoolMaxAge)
		},
	})
	if err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	defer r.sp.Close()
	if r.events, err = cfg.Kafka.NewWriter(cfg.Topic); err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	defer r.events.Close()
	if r.dead, err = deadletter.Open(cfg.Kafka, cfg.DeadLetterTopic, "collector", c.log); err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	defer r.dead.Close()
	r.outage = backoff.NewOutage(c.log, "pushing to Kafka (batches go to the spool meanwhile)")

	r.dec = NewDecoder(builder.Config{
		Layer: cfg.Layer, Host: cfg.Host, AllUsers: cfg.AllUsers, LogoutFromSessionClose: cfg.LogoutFromSessionClose, Names: names, Grants: c.grants,
		RawDataInBuffer: true, // onEvent sends the canonical bytes only
	}, assemble.Options{Timeout: cfg.AssemblyTimeout}, r.onEvent, r.onReject)
	r.dec.SetGrantGrace(cfg.GrantGrace)
	r.dec.SetSeq(r.st.Seq)
	r.dec.SetHeads(r.st.Chain)
	r.dec.SetSkip(r.st.Skip)
	r.lastEnd = r.st.Position

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	if cfg.FollowGrants == nil || *cfg.FollowGrants {
		f, err := c.grantsFollower(cfg.Kafka, schemas.TopicGrants)
		if err != nil {
			return fmt.Errorf("collector: %w", err)
		}
		c.log.Info("following grants: only those signed by a trusted key apply", "topic", schemas.TopicGrants, "trusted_keys", c.keys.IDs(),
			"replay_memory", filepath.Join(cfg.StateDir, GrantsStateFile))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.runGrants(ctx, f); err != nil {
				c.log.Error("grants: follower stopped", "err", err)
			}
		}()
		if err := c.waitGrants(ctx); err != nil {
			return nil // cancelled while waiting: nothing read, nothing to save
		}
	} else {
		close(c.ready)
	}
	c.m.grants.Set(float64(c.grants.Len()))

	lines := make(chan []inLine, 4)
	inErr := make(chan error, 1)
	// quit tells the reader that nobody takes lines any more (Run is
	// returning); until then, lines read before a stop are still handed
	// over, since stdin and netlink cannot read them again.
	quit := make(chan struct{})
	defer close(quit)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(lines)
		inErr <- c.readInput(ctx, r.st.Position, lines, quit)
	}()

	flushT := time.NewTicker(cfg.FlushInterval)
	defer flushT.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	c.log.Info("collecting", "input", cfg.Input.Type, "path", cfg.Input.Path, "from", r.st.Position.String(), "flush_interval", cfg.FlushInterval)
	for {
		select {
		case chunk, ok := <-lines:
			if !ok {
				err := <-inErr
				if cfg.Input.Type != InputFile && err == nil {
					r.dec.Flush() // end of a stream: nothing more can complete the open events
				}
				// ctx is done, unless the input ended: then the last
				// batch is retried until it is durable or ctx ends.
				ferr := r.flush(ctx, true)
				if err != nil && ctx.Err() == nil {
					return errors.Join(fmt.Errorf("collector: input: %w", err), ferr)
				}
				return ferr
			}
			now := time.Now()
			for i := range chunk {
				r.line(&chunk[i], now)
				if len(r.pending) >= cfg.BatchMaxEvents || r.batchBytes >= cfg.BatchMaxBytes.Bytes() {
					r.pruneStarts()
					if err := r.flush(ctx, false); err != nil {
						return err
					}
				}
			}
			r.pruneStarts()
			c.m.sync(r.dec)
			c.m.queueDepth.Set(float64(len(r.pending)))
		case now := <-tick.C:
			r.rejectLog.roll(now)
			if cfg.Input.Type == InputStdin && now.Sub(r.lastLine) >= time.Second {
				// A pipe tells no idleness apart from a slow reader:
				// a second without a line counts as idle.
				r.dec.Idle(r.lastLine)
			}
			r.dec.Tick(now)
			c.m.sync(r.dec)
			c.m.grants.Set(float64(c.grants.Len()))
		case <-flushT.C:
			if err := r.flush(ctx, false); err != nil {
				return err
			}
		}
	}
}

// waitGrants waits until the grants that existed at start are known,
// saying so once if that takes long, and once when it is over.
func (c *Collector) waitGrants(ctx context.Context) error {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	waited := false
	for {
		select {
		case <-c.ready:
			if waited {
				c.log.Info("grants known: reading audit records")
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			waited = true
			c.log.Warn("waiting for the grants topic before reading audit records (events cannot be attributed without it)")
		}
	}
}

// beforeRead calls before ahead of each read of r; when before returns
// false, Read returns errInputStopped.
type beforeRead struct {
	r      io.Reader
	before func() bool
}

// errInputStopped ends reading stdin when nobody takes lines any more.
var errInputStopped = errors.New("collector: input stopped")

func (b *beforeRead) Read(p []byte) (int, error) {
	if !b.before() {
		return 0, errInputStopped
	}
	return b.r.Read(p)
}

// errPollSkip is how a line source tells readInput's poll loop that it met
// a loss it has already counted and logged, and that reading goes on.
var errPollSkip = errors.New("collector: input loss counted, reading on")

// readInput sends chunks of lines until ctx is done or the input ends.
// With stdin input a read blocked on the pipe does not see ctx: Run then
// returns when auditd closes the pipe (it does, after its SIGTERM).
func (c *Collector) readInput(ctx context.Context, from tail.Position, out chan<- []inLine, quit <-chan struct{}) error {
	const chunkLines = 512
	var chunk []inLine
	send := func() bool {
		if len(chunk) == 0 {
			return ctx.Err() == nil
		}
		select {
		case out <- chunk:
			chunk = nil
			return ctx.Err() == nil
		case <-quit:
			return false
		}
	}
	// poll reads lines with next until ctx ends, handing them over when a
	// chunk is full and whenever the source has been idle for idle, with
	// the mark that it was (once per idle spell: the decoder's assembly
	// timeout counts wall-clock time only from then on). next returns
	// errPollSkip for a loss it has counted and logged.
	//
	// One deadline serves every line read within idle of its start (a
	// context per line cost more than reading the line): a deadline that
	// passes while lines flow is replaced and the wait starts again, so
	// only a whole idle period without a line counts as idle.
	poll := func(idle time.Duration, next func(context.Context) (inLine, error)) error {
		var lctx context.Context
		stop := func() {}
		defer func() { stop() }()
		fresh, marked := false, false
		for {
			if lctx == nil || !fresh && lctx.Err() != nil {
				stop()
				var cancel context.CancelFunc
				lctx, cancel = context.WithTimeout(ctx, idle)
				stop, fresh = cancel, true
			}
			l, err := next(lctx)
			switch {
			case err != nil && ctx.Err() != nil:
				send()
				return nil
			case errors.Is(err, context.DeadlineExceeded) && !fresh:
				continue // the deadline of an earlier wait: wait anew
			case errors.Is(err, context.DeadlineExceeded):
				lctx = nil
				if !marked {
					chunk = append(chunk, inLine{idle: time.Now()})
					marked = true
				}
				if !send() {
					return nil
				}
				continue
			case errors.Is(err, errPollSkip):
				continue
			case err != nil:
				send()
				return err
			}
			fresh, marked = false, false
			chunk = append(chunk, l)
			if len(chunk) >= chunkLines && !send() {
				return nil
			}
		}
	}
	switch c.cfg.Input.Type {
	case InputFile:
		return c.followFile(ctx, from, poll)
	case InputStdin:
		// What was read is handed over whenever the reader needs more
		// input, not only in full chunks: the next read may wait on a
		// quiet pipe (lines used to wait there until 512 had come).
		in := &beforeRead{r: c.stdin, before: send}
		err := ReadLines(in, c.cfg.Input.MaxLineBytes.Bytes(), func(line []byte, err error) error {
			var tl *LineTooLongError
			if errors.As(err, &tl) {
				chunk = append(chunk, inLine{tooLong: &tail.LineTooLongError{Len: int64(tl.Len), Limit: tl.Limit, Prefix: bytes.Clone(tl.Prefix)}})
			} else {
				chunk = append(chunk, inLine{data: append([]byte(nil), line...)})
			}
			if len(chunk) >= chunkLines && !send() {
				return ctx.Err()
			}
			return nil
		})
		send()
		if ctx.Err() != nil || errors.Is(err, errInputStopped) {
			return nil
		}
		return err
	case InputNetlink:
		src, err := netlinksrc.Open(netlinksrc.Options{Logger: c.log})
		if err != nil {
			return err
		}
		defer src.Close()
		return poll(100*time.Millisecond, func(ctx context.Context) (inLine, error) {
			l, err := src.Next(ctx)
			if errors.Is(err, netlinksrc.ErrOverrun) {
				c.m.inputGaps.Inc()
				c.log.Error("netlink: the kernel dropped audit messages", "err", err)
				return inLine{}, errPollSkip
			}
			if err != nil {
				return inLine{}, err
			}
			return inLine{data: append([]byte(nil), l...)}, nil
		})
	}
	return fmt.Errorf("unknown input type %q", c.cfg.Input.Type)
}

// followFile follows the audit log from position from with poll. The
// path is opened only when it is a regular file. When it cannot be opened
// or read (a FIFO or a directory at the path, a rotated file without read
// permission, an I/O error) input pauses: the fault is logged once and
// counted, and the file is opened again with backoff at the end of the
// last line read, so nothing is lost or read twice; the recovery is
// logged once. Only the end of ctx stops it.
func (c *Collector) followFile(ctx context.Context, from tail.Position, poll func(time.Duration, func(context.Context) (inLine, error)) error) error {
	inFault := c.m.newFault(opInput, c.log)
	at := from
	opts := tail.Options{
		PollInterval: c.cfg.Input.PollInterval, MaxLineBytes: c.cfg.Input.MaxLineBytes.Bytes(), Logger: c.log,
		OnGap: func(g tail.Gap) {
			c.m.inputGaps.Inc()
			c.log.Error("input gap: audit data lost before the collector read it", "at", g.At.String(), "bytes", g.Bytes, "reason", g.Reason)
		},
	}
	err := inFault.retry(ctx, func() error {
		f, err := tail.Open(c.cfg.Input.Path, at, opts)
		if err != nil {
			return err
		}
		defer f.Close()
		// poll returns nil only when ctx is done, having handed over
		// what it read; on an error too, after handing it over.
		return poll(c.cfg.Input.PollInterval, func(ctx context.Context) (inLine, error) {
			l, err := f.Next(ctx)
			var tl *tail.LineTooLongError
			switch {
			case errors.As(err, &tl):
				inFault.cleared()
				at = tl.End
				return inLine{start: tl.Start, end: tl.End, tooLong: tl}, nil
			case errors.Is(err, context.DeadlineExceeded):
				inFault.cleared() // open and idle: readable
				return inLine{}, err
			case err != nil:
				return inLine{}, err
			}
			inFault.cleared()
			at = l.End
			return inLine{data: append([]byte(nil), l.Data...), start: l.Start, end: l.End}, nil
		})
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// line feeds one input line, read by now, to the decoder; an idle mark
// tells the decoder that the input had nothing more to read.
func (r *run) line(l *inLine, now time.Time) {
	if !l.idle.IsZero() {
		r.dec.Idle(l.idle)
		return
	}
	tag := r.nextTag
	r.nextTag++
	r.dirty = true
	r.lastLine = now
	if r.c.cfg.Input.Type == InputFile {
		r.starts = append(r.starts, tagPos{tag, l.start})
		r.source, r.hasSource = l.start, true
	}
	if l.tooLong != nil {
		r.dec.RejectLine(auditlog.ReasonTooLong, l.tooLong, l.tooLong.Prefix, tag)
	} else {
		r.dec.Line(l.data, tag, now)
	}
	r.lastEnd = l.end
}

// sourceName is the position of the line being decoded, for rejects and
// dead letters ("" for other inputs).
func (r *run) sourceName() string {
	if !r.hasSource {
		return ""
	}
	return r.source.String()
}

func (r *run) onEvent(e *schemas.Event, ev *assemble.Event) {
	val := append(make([]byte, 0, len(r.dec.Canonical())), r.dec.Canonical()...)
	r.pending = append(r.pending, emitted{e.EventID, ev.LastTag})
	r.chained.add(e, r.dec.Head(e.Host))
	if len(val) > r.c.cfg.MaxEventBytes.Bytes() {
		err := fmt.Errorf("event %s of %d bytes is over max_event_bytes (%d)", e.EventID, len(val), r.c.cfg.MaxEventBytes.Bytes())
		r.c.m.rejects.WithLabelValues(ReasonEventTooLarge).Inc()
		r.deadLetter(ReasonEventTooLarge, err, val, e.Host)
		return
	}
	r.batch = append(r.batch, kafka.Record{Key: []byte(e.Host), Value: val})
	r.batchBytes += len(val)
}

func (r *run) onReject(rej Reject) {
	r.rejectLog.reject(time.Now(), rej, r.sourceName())
	r.deadLetter(rej.Reason, rej.Err, rej.Line, r.c.cfg.Host)
}

// deadLetter queues a dead letter with the current batch.
func (r *run) deadLetter(reason string, cause error, raw []byte, host string) {
	rec, err := deadletter.Record(r.dead.Letter(reason, cause, raw, host, r.sourceName()))
	if err != nil {
		r.c.log.Error("dead letter: encode", "err", err)
		return
	}
	r.dl = append(r.dl, rec)
	r.batchBytes += len(rec.Value)
}

// pruneStarts forgets line positions that no future checkpoint needs: the
// checkpoint is always at or after the oldest open event's first line.
func (r *run) pruneStarts() {
	keep := r.nextTag
	if t, ok := r.dec.OldestOpenTag(); ok {
		keep = t
	}
	i := 0
	for i < len(r.starts) && r.starts[i].tag < keep {
		i++
	}
	if i > 0 {
		r.starts = append(r.starts[:0], r.starts[i:]...)
	}
}

// checkpointState computes the state to save once the current batch is
// durable.
func (r *run) checkpointState() state {
	st := state{Seq: r.dec.Seq(), Chain: r.dec.Heads(), Position: r.lastEnd}
	keep := r.nextTag
	if t, ok := r.dec.OldestOpenTag(); ok {
		keep = t
		for _, sp := range r.starts {
			if sp.tag == t {
				st.Position = sp.pos
				break
			}
		}
	}
	all := append(r.delivered, r.pending...)
	r.delivered = r.delivered[:0]
	for _, e := range all {
		if e.last >= keep {
			r.delivered = append(r.delivered, e)
			st.Skip = append(st.Skip, e.id)
		}
	}
	if r.c.cfg.Input.Type != InputFile {
		st.Position = tail.Position{}
		st.Skip = nil
	}
	return st
}

// flush makes the current batch durable (in Kafka, else in the spool),
// saves the checkpoint, then tries to drain the spool. final is the last
// flush before Run returns: it does not drain. While the spool or the
// checkpoint cannot be written, flush retries with backoff (input pauses:
// the audit log buffers) until it can or ctx ends; then it returns an
// error, and the checkpoint stays where it was.
func (r *run) flush(ctx context.Context, final bool) error {
	c := r.c
	r.dec.Tick(time.Now())
	c.m.sync(r.dec)
	if len(r.batch) == 0 && len(r.dl) == 0 && !r.dirty {
		return r.drainRetry(ctx)
	}
	r.batch = append(r.batch, r.chained.checkpoints(r.c.chainKey, r.c.cfg.Layer)...)
	msgs := append(r.batch, r.dl...)
	meta := spoolMeta{DeadLetters: len(r.dl)}
	st := r.checkpointState()
	if len(msgs) > 0 {
		if err := r.store(ctx, msgs, meta); err != nil {
			return fmt.Errorf("collector: batch not saved, the checkpoint is not advanced (it is read again at restart): %w", err)
		}
		c.m.batchEvents.Observe(float64(len(r.batch)))
	}
	r.batch, r.dl, r.pending, r.batchBytes, r.dirty = nil, nil, nil, 0, false
	r.chained.reset()
	c.m.queueDepth.Set(0)
	if err := r.ckptFault.retry(ctx, func() error { return r.ckpt.Save(st) }); err != nil {
		return fmt.Errorf("collector: save checkpoint (the last batch is sent again at restart): %w", err)
	}
	if final {
		return nil
	}
	return r.drainRetry(ctx)
}

// store makes one batch durable: in Kafka when the spool is empty and
// Kafka takes it, else in the spool (order is kept). While the spool
// cannot take it (full, or its disk full or read-only) store retries with
// backoff, draining the spool between attempts; nothing is dropped.
func (r *run) store(ctx context.Context, msgs []kafka.Record, meta spoolMeta) error {
	e := spool.Entry{Messages: make([]spool.Message, len(msgs))}
	for i, m := range msgs {
		e.Messages[i] = spool.Message{Key: m.Key, Value: m.Value}
	}
	e.Meta, _ = json.Marshal(meta)
	retrying := false
	return r.spoolFault.retry(ctx, func() error {
		if retrying {
			if err := r.drain(ctx); err != nil {
				return err
			}
		}
		retrying = true
		if r.sp.Entries() == 0 && r.produce(ctx, msgs, meta) == nil {
			return nil
		}
		err := r.sp.Append(e)
		r.spoolGauges()
		if err != nil {
			return fmt.Errorf("collector: spool: %w", err)
		}
		return nil
	})
}

// drainRetry drains the spool, retrying while the spool cannot be read or
// its progress saved.
func (r *run) drainRetry(ctx context.Context) error {
	if err := r.spoolFault.retry(ctx, func() error { return r.drain(ctx) }); err != nil {
		return fmt.Errorf("collector: drain spool: %w", err)
	}
	return nil
}

func (r *run) spoolGauges() {
	r.c.m.spoolBytes.Set(float64(r.sp.Bytes()))
	r.c.m.spoolEntries.Set(float64(r.sp.Entries()))
}

// produce pushes one batch: events to the audit topic, then dead letters.
// A push in flight is not cancelled with ctx: cut short, it might have
// reached Kafka anyway and be sent again from the spool. It is bounded by
// ProduceTimeout instead.
func (r *run) produce(ctx context.Context, msgs []kafka.Record, meta spoolMeta) error {
	c := r.c
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.ProduceTimeout)
	defer cancel()
	t0 := time.Now()
	n := len(msgs) - meta.DeadLetters
	var err error
	if n > 0 {
		err = r.events.Write(ctx, msgs[:n]...)
	}
	if err == nil && meta.DeadLetters > 0 {
		err = r.dead.WriteRecords(ctx, msgs[n:]...)
		if err == nil {
			c.m.deadLetters.Add(float64(meta.DeadLetters))
		}
	}
	c.m.produceSeconds.Observe(time.Since(t0).Seconds())
	if err != nil {
		c.m.produceErrors.Inc()
		r.outage.Fail(err) // logged once per outage, not per batch
		return fmt.Errorf("collector: produce: %w", err)
	}
	r.outage.OK()
	c.m.produced.Add(float64(len(msgs)))
	return nil
}

// drain sends spooled batches in order until the spool is empty or Kafka
// fails again (not an error: the next flush tries again). An error is the
// spool's own (reading it, or saving its progress).
func (r *run) drain(ctx context.Context) error {
	for r.sp.Entries() > 0 {
		if r.sentOldest == 0 {
			e, ok, err := r.sp.Oldest()
			if err != nil {
				return fmt.Errorf("collector: spool: %w", err)
			}
			if !ok {
				break
			}
			var meta spoolMeta
			if err := json.Unmarshal(e.Meta, &meta); err != nil {
				return fmt.Errorf("collector: spool entry meta: %w", err)
			}
			msgs := make([]kafka.Record, len(e.Messages))
			for i, m := range e.Messages {
				msgs[i] = kafka.Record{Key: m.Key, Value: m.Value}
			}
			if err := r.produce(ctx, msgs, meta); err != nil {
				return nil // Kafka still away: try again at the next flush
			}
			r.sentOldest = len(msgs)
		}
		// Kafka has the batch: should Ack fail, the retry acks it
		// without sending it again.
		if err := r.sp.Ack(); err != nil {
			return fmt.Errorf("collector: spool ack: %w", err)
		}
		r.spoolGauges()
		r.c.log.Debug("spooled batch delivered", "messages", r.sentOldest, "left", r.sp.Entries())
		r.sentOldest = 0
		if r.sp.Entries() == 0 {
			r.c.log.Info("spool drained: every spooled batch is in Kafka")
		}
	}
	return nil
}
