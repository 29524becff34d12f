package forwarder

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/auditpipe/auditpipe/internal/backoff"
)

// entry is one unit of delivery: the framed messages of one event (none for
// an event the filter skipped) and what the caller needs once it settled.
type entry struct {
	frames [][]byte
	bytes  int
	ref    commitRef // the Kafka message to commit once settled (the pipeline's)
	born   time.Time // when the event entered the pipeline (Kafka timestamp)

	// pos and written describe the entry on the current connection only:
	// when that connection is dropped, unwrite resets them, since nothing
	// written to it is known to have been read.
	pos     int64     // wire position after the flush that carried it; -1 until flushed
	written time.Time // when that flush returned
}

// sinkConfig is what a sink needs from its destination.
type sinkConfig struct {
	name         string
	dialer       *dialer
	settle       time.Duration
	writeTimeout time.Duration
	backoffMin   time.Duration
	backoffMax   time.Duration
	closeTimeout time.Duration
	// maxAttempts bounds consecutive failed connection attempts; 0 retries
	// forever (the long-running forwarder), the CLI gives up.
	maxAttempts int
}

// sink delivers entries to one SIEM at least once. It keeps every entry
// that is not settled yet; after a broken connection it reconnects with
// exponential backoff and jitter and writes those entries again, in order,
// before anything new. An entry settles when it was flushed, the peer's TCP
// stack acknowledged its bytes (where the platform can tell), and the
// connection stayed up for the settle time after the flush. Without a
// connection no entry with frames settles: what was written to a dropped
// connection counts as not written at all.
type sink struct {
	cfg sinkConfig
	log *slog.Logger
	m   *destMetrics

	conn       *conn
	unsettled  []*entry
	unflushed  int // entries at the tail of unsettled not flushed yet
	inFlightB  int
	hadConnErr bool
}

func newSink(cfg sinkConfig, log *slog.Logger, m *destMetrics) *sink {
	return &sink{cfg: cfg, log: log, m: m}
}

// inFlight returns the number and bytes of entries not settled yet.
func (s *sink) inFlight() (int, int) { return len(s.unsettled), s.inFlightB }

// oldest returns the entry-time of the oldest entry not settled, or zero.
func (s *sink) oldest() time.Time {
	if len(s.unsettled) == 0 {
		return time.Time{}
	}
	return s.unsettled[0].born
}

// add writes the entries (buffered), in order. It returns an error only
// when ctx ends or maxAttempts connection attempts failed; a broken
// connection is repaired on the way.
func (s *sink) add(ctx context.Context, es ...*entry) error {
	frames := false
	for _, e := range es {
		e.pos = -1
		e.bytes = 0
		for _, f := range e.frames {
			e.bytes += len(f)
		}
		s.inFlightB += e.bytes
		frames = frames || len(e.frames) > 0
	}
	s.unsettled = append(s.unsettled, es...)
	s.unflushed += len(es)
	s.m.inFlight.Set(float64(len(s.unsettled)))
	if !frames {
		return nil
	}
	if s.conn != nil {
		err := s.conn.writeEntries(es, s.cfg.writeTimeout)
		if err == nil {
			return nil
		}
		s.broken(err)
	}
	// A new connection starts with every unsettled entry, es included.
	return s.ensureConn(ctx)
}

// flush writes what is buffered. Like add, it fails only when ctx ends.
func (s *sink) flush(ctx context.Context) error {
	if s.unflushed == 0 {
		return nil
	}
	for {
		if s.hasFrames() {
			if err := s.ensureConn(ctx); err != nil {
				return err
			}
		}
		start := time.Now()
		var pos int64
		if s.conn != nil {
			var err error
			pos, err = s.conn.flush(s.cfg.writeTimeout)
			if err != nil {
				s.broken(err)
				continue
			}
			s.m.writeSeconds.Observe(time.Since(start).Seconds())
		}
		s.flushed(pos)
		return nil
	}
}

// flushed marks the unflushed entries as flushed up to wire position pos.
func (s *sink) flushed(pos int64) {
	now := time.Now()
	frames, bytes := 0, 0
	for _, e := range s.unsettled[len(s.unsettled)-s.unflushed:] {
		e.pos, e.written = pos, now
		frames += len(e.frames)
		bytes += e.bytes
	}
	if frames > 0 {
		s.m.sent.Add(float64(frames))
		s.m.bytes.Add(float64(bytes))
	}
	s.unflushed = 0
}

func (s *sink) hasFrames() bool {
	for _, e := range s.unsettled[len(s.unsettled)-s.unflushed:] {
		if len(e.frames) > 0 {
			return true
		}
	}
	return false
}

// settled removes and returns the entries at the head of the window that
// have settled, in order. With no connection only entries without frames
// (skipped events) can settle: there is nothing to confirm the others.
func (s *sink) settled(now time.Time) []*entry {
	if err := s.checkAlive(); err != nil {
		s.broken(err)
		return nil
	}
	acked, ackKnown := int64(0), false
	if s.conn != nil {
		acked, ackKnown = s.conn.acked()
	}
	n := 0
	for _, e := range s.unsettled {
		if e.pos < 0 {
			break
		}
		if len(e.frames) > 0 {
			if s.conn == nil {
				// Written, if at all, to a connection that is gone
				// (broken resets pos; this guards the invariant).
				break
			}
			if now.Sub(e.written) < s.cfg.settle {
				break
			}
			if ackKnown && e.pos > acked {
				break
			}
		}
		n++
	}
	if n == 0 {
		return nil
	}
	out := make([]*entry, n)
	copy(out, s.unsettled[:n])
	for _, e := range out {
		s.inFlightB -= e.bytes
	}
	s.unsettled = append(s.unsettled[:0], s.unsettled[n:]...)
	s.m.inFlight.Set(float64(len(s.unsettled)))
	return out
}

func (s *sink) checkAlive() error {
	if s.conn == nil {
		return nil
	}
	return s.conn.alive()
}

// close flushes and closes the connection gracefully. When the SIEM
// confirms it read everything (it closes its side cleanly in time, see
// conn.closeGracefully), every entry is settled and returned; otherwise only
// those settled already are. With no connection (the SIEM is down) nothing
// with frames is returned: only skipped entries at the head of the window.
func (s *sink) close(ctx context.Context) []*entry {
	if s.conn == nil {
		if s.hasFramesAny() {
			return s.settled(time.Now())
		}
		// Only skipped entries: nothing to deliver.
		out := s.unsettled
		s.unsettled, s.unflushed, s.inFlightB = nil, 0, 0
		return out
	}
	if err := s.flushOnce(); err != nil {
		s.log.Warn("final flush failed; unsettled messages are sent again after restart", "destination", s.cfg.name, "error", err)
		s.drop()
		return nil
	}
	pre := s.settled(time.Now())
	if s.conn == nil { // broke while settling
		return pre
	}
	if s.conn.closeGracefully(s.cfg.closeTimeout) {
		out := append(pre, s.unsettled...)
		s.unsettled, s.unflushed, s.inFlightB = nil, 0, 0
		s.conn = nil
		return out
	}
	s.drop() // closed already by closeGracefully
	s.log.Warn("SIEM did not confirm the close in time; unsettled messages are sent again after restart",
		"destination", s.cfg.name, "unsettled", len(s.unsettled))
	_ = ctx
	return pre
}

func (s *sink) hasFramesAny() bool {
	for _, e := range s.unsettled {
		if len(e.frames) > 0 {
			return true
		}
	}
	return false
}

// flushOnce flushes without reconnecting: used when stopping.
func (s *sink) flushOnce() error {
	if s.unflushed == 0 {
		return nil
	}
	pos, err := s.conn.flush(s.cfg.writeTimeout)
	if err != nil {
		return err
	}
	s.flushed(pos)
	return nil
}

// broken drops the connection after err; the unsettled entries are
// written again by the next ensureConn.
func (s *sink) broken(err error) {
	s.drop()
	frames := 0
	for _, e := range s.unsettled {
		frames += len(e.frames)
	}
	s.m.failed.Add(float64(frames))
	s.log.Warn("SIEM connection lost; unsettled messages will be sent again",
		"destination", s.cfg.name, "error", Explain(err), "unsettled_messages", frames)
	s.hadConnErr = true
}

// drop closes the connection, if any, and marks every unsettled entry as
// not written: the SIEM may have read none of what went to that connection
// (its TCP stack acknowledging bytes in its receive buffer says nothing of
// that), so neither the settle time nor an acknowledgement from it may ever
// settle them. They are all flushed again on the next connection.
func (s *sink) drop() {
	if s.conn != nil {
		s.conn.close()
		s.conn = nil
	}
	s.unwrite()
}

// unwrite marks every unsettled entry as buffered, not flushed.
func (s *sink) unwrite() {
	for _, e := range s.unsettled {
		e.pos, e.written = -1, time.Time{}
	}
	s.unflushed = len(s.unsettled)
}

// ensureConn connects when there is no connection, with exponential
// backoff and full jitter, and writes every unsettled entry again. It
// returns only ctx's error.
func (s *sink) ensureConn(ctx context.Context) error {
	attempt := 0
	for s.conn == nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := s.cfg.dialer.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.m.connectErrors.Inc()
			if s.cfg.maxAttempts > 0 && attempt+1 >= s.cfg.maxAttempts {
				return fmt.Errorf("giving up after %d attempts: %w", attempt+1, err)
			}
			d := backoff.Delay(attempt, s.cfg.backoffMin, s.cfg.backoffMax)
			attempt++
			s.log.Warn("cannot reach SIEM; retrying", "destination", s.cfg.name, "error", Explain(err), "retry_in", d.Round(time.Millisecond))
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			continue
		}
		if s.hadConnErr {
			s.m.reconnects.Inc()
			s.log.Info("SIEM connection restored", "destination", s.cfg.name)
		}
		s.conn = c
		// Write the window again, in order, before anything new.
		frames := 0
		for _, e := range s.unsettled {
			frames += len(e.frames)
		}
		werr := c.writeEntries(s.unsettled, s.cfg.writeTimeout)
		if werr == nil {
			// The whole window is buffered on the new connection: an
			// entry is flushed, and may settle, only once that buffer is.
			s.unwrite()
		}
		if werr != nil {
			s.broken(werr)
			continue
		}
		if frames > 0 && s.hadConnErr {
			s.m.resent.Add(float64(frames))
		}
	}
	return nil
}
