package forwarder

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/schemas"
)

// SendStats counts what Send did.
type SendStats struct {
	Events   int // events sent (each as one message or as parts)
	Messages int // syslog messages written, parts included, duplicates after a reconnect not
	Rejected int // input lines that were not valid contract events
}

// SendOptions tune Send.
type SendOptions struct {
	// Log receives structured logs. Default: discard.
	Log *slog.Logger
	// Registerer receives the metrics. Default: none.
	Registerer prometheus.Registerer
	// MaxAttempts bounds consecutive failed connection attempts. Default 5.
	MaxAttempts int
}

// sendBatch is how many events Send buffers before it flushes (when the
// input keeps coming; it flushes sooner when the input pauses).
const sendBatch = 1024

// Send writes the contract events in r (JSON, one per line; blank lines
// are skipped) to d and returns once the SIEM confirmed it read them all
// (it closed its side after our close). It is how events a SIEM missed are
// sent again: `auditpipe query … --output json | auditpipe forward …`.
// Lines that are not valid events are reported in the error, counted in
// Rejected, and skipped; everything else is still sent.
func Send(ctx context.Context, d Destination, r io.Reader, opts SendOptions) (SendStats, error) {
	var st SendStats
	if d.Name == "" {
		d.Name = "siem"
	}
	d = d.WithDefaults()
	if err := d.Validate("siem"); err != nil {
		return st, err
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 5
	}
	fm, err := newFormatter(d.format())
	if err != nil {
		return st, err
	}
	dl, err := d.newDialer()
	if err != nil {
		return st, err
	}
	sc := d.sinkConfig(dl)
	sc.maxAttempts = opts.MaxAttempts
	s := newSink(sc, log, newMetrics(opts.Registerer).forDestination(d.Name))
	if err := s.ensureConn(ctx); err != nil {
		return st, fmt.Errorf("connect: %s", Explain(err))
	}

	var bad []error
	pending := 0 // events added since the last flush
	br := bufio.NewReaderSize(r, 1<<20)
	// Frames and entries come from chunks, as the forwarder's renderers
	// take them (see renderer): no allocation per event of their own.
	var rd renderer
	var long []byte // a line longer than br's buffer, gathered
	for line := 1; ; line++ {
		b, rerr := readLine(br, &long)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return st, fmt.Errorf("read input: %w", rerr)
		}
		if b = bytes.TrimSpace(b); len(b) > 0 {
			var ev schemas.Event
			canon, err := ev.DecodeJSONCanonical(b)
			if err == nil {
				err = ev.Validate()
			}
			var frames [][]byte
			if err == nil && d.Filter.Match(&ev) {
				frames, err = rd.frames(fm, &ev, canonOf(b, canon))
			}
			if err != nil {
				st.Rejected++
				if len(bad) < 10 {
					bad = append(bad, fmt.Errorf("line %d: %w", line, err))
				}
			} else if len(frames) > 0 {
				e := rd.newEntry()
				e.frames, e.born = frames, time.Now()
				if err := s.add(ctx, e); err != nil {
					return st, fmt.Errorf("send: %s", Explain(err))
				}
				st.Events++
				st.Messages += len(frames)
				pending++
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		// Flush a batch of sendBatch events (the buffer writes 64 KiB TLS
		// records meanwhile), or before the next read may wait for input,
		// so that a slow producer's events never sit in the buffer: under
		// load writes stay large, idle the latency is one read.
		if pending >= sendBatch || (pending > 0 && br.Buffered() == 0) {
			if err := s.flush(ctx); err != nil {
				return st, fmt.Errorf("send: %s", Explain(err))
			}
			s.settled(time.Now())
			pending = 0
		}
	}
	if err := s.flush(ctx); err != nil {
		return st, fmt.Errorf("send: %s", Explain(err))
	}
	s.close(ctx)
	if n, _ := s.inFlight(); n > 0 {
		return st, fmt.Errorf("the SIEM did not confirm reading the last %d events in %s: they may be lost, send them again", n, d.CloseTimeout)
	}
	if st.Rejected > 0 {
		return st, fmt.Errorf("%d input lines rejected: %w", st.Rejected, errors.Join(bad...))
	}
	return st, nil
}

// readLine returns the next line of br, its newline included, valid until
// the next call; a line longer than br's buffer is gathered in *long.
func readLine(br *bufio.Reader, long *[]byte) ([]byte, error) {
	b, err := br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return b, err
	}
	*long = append((*long)[:0], b...)
	for errors.Is(err, bufio.ErrBufferFull) {
		b, err = br.ReadSlice('\n')
		*long = append(*long, b...)
	}
	return *long, err
}
