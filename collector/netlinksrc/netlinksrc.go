// Package netlinksrc reads audit records straight from the kernel over the
// audit netlink socket, using go-libaudit's client, and renders each one as
// a line in auditd's own log format ("type=SYSCALL msg=audit(…): …"), so
// the collector parses netlink input and log-file input alike.
//
// By default the source joins the kernel's read-only multicast group, which
// needs CAP_AUDIT_READ and coexists with a running auditd. With
// Options.Unicast it registers itself as the audit daemon instead, which
// needs CAP_AUDIT_CONTROL and no other audit daemon.
package netlinksrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	libaudit "github.com/elastic/go-libaudit/v2"
	"github.com/elastic/go-libaudit/v2/auparse"
)

// DefaultPollInterval is the default for Options.PollInterval.
const DefaultPollInterval = 10 * time.Millisecond

// ErrOverrun is returned by Next when the kernel reported that audit
// messages were dropped because the socket's receive buffer was full. The
// number lost is unknown. The Source remains usable: count the overrun and
// call Next again.
var ErrOverrun = errors.New("netlinksrc: kernel dropped audit messages (receive buffer overrun)")

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("netlinksrc: source closed")

// Options tune a Source. The zero value is usable.
type Options struct {
	// Unicast registers this process as the kernel's audit daemon
	// (AUDIT_SET pid) instead of joining the multicast group. Default
	// false.
	Unicast bool
	// PollInterval is how long Next sleeps when no message is waiting.
	// Keep it short: the kernel drops messages when the socket buffer
	// fills. Default 10ms.
	PollInterval time.Duration
	// Logger receives notices about the connection. Default: none.
	Logger *slog.Logger
}

// receiver is the part of libaudit.AuditClient the Source uses.
type receiver interface {
	Receive(nonBlocking bool) (*libaudit.RawAuditMessage, error)
	Close() error
}

// Source yields audit lines from the kernel. It is not safe for concurrent
// use, except that Close may be called while Next is blocked.
type Source struct {
	rx   receiver
	opts Options
	log  *slog.Logger
	line []byte
	done chan struct{}
}

// Open connects to the kernel's audit netlink socket. It fails when the
// kernel has no audit support or the process lacks the capability; the
// error says which.
func Open(opts Options) (*Source, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		client *libaudit.AuditClient
		err    error
	)
	if opts.Unicast {
		client, err = libaudit.NewAuditClient(nil)
	} else {
		client, err = libaudit.NewMulticastAuditClient(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("netlinksrc: opening audit netlink socket: %w", err)
	}
	if opts.Unicast {
		if err := client.SetPID(libaudit.WaitForReply); err != nil {
			client.Close()
			return nil, fmt.Errorf("netlinksrc: registering as the audit daemon (is auditd running?): %w", err)
		}
	}
	log.Info("reading audit records from the kernel", "unicast", opts.Unicast)
	return newSource(client, opts), nil
}

func newSource(rx receiver, opts Options) *Source {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{rx: rx, opts: opts, log: log, done: make(chan struct{})}
}

// Next returns the next audit record as one line in auditd's log format,
// without a trailing newline: "type=NAME msg=audit(SEC.MSEC:SERIAL): …".
// Unknown record types are named UNKNOWN[N], as auditd names them. The
// line is valid until the next call. Next blocks until a record arrives or
// ctx is done. It returns ErrOverrun, which is not fatal, when the kernel
// dropped records; any other error is fatal.
func (s *Source) Next(ctx context.Context) ([]byte, error) {
	for {
		select {
		case <-s.done:
			return nil, ErrClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		msg, err := s.rx.Receive(true)
		switch {
		case err == nil:
			// Only audit records; netlink replies and control messages
			// (below 1100) are not log lines.
			if msg.Type < auparse.AUDIT_USER_AUTH || msg.Type > auparse.AUDIT_LAST_USER_MSG2 {
				continue
			}
			s.line = formatLine(s.line[:0], msg)
			return s.line, nil
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK):
			t := time.NewTimer(s.opts.PollInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-s.done:
				t.Stop()
				return nil, ErrClosed
			case <-t.C:
			}
		case errors.Is(err, syscall.EINTR):
		case errors.Is(err, syscall.ENOBUFS):
			s.log.Warn("kernel dropped audit records: receive buffer overrun")
			return nil, ErrOverrun
		default:
			select {
			case <-s.done:
				return nil, ErrClosed // the socket was closed under Receive
			default:
			}
			return nil, fmt.Errorf("netlinksrc: receiving: %w", err)
		}
	}
}

// formatLine appends the log line for msg to dst.
func formatLine(dst []byte, msg *libaudit.RawAuditMessage) []byte {
	data := bytes.TrimRight(msg.Data, "\x00\n")
	dst = append(dst, "type="...)
	dst = append(dst, msg.Type.String()...)
	dst = append(dst, " msg="...)
	return append(dst, data...)
}

// Close closes the netlink socket (and, with Options.Unicast, unregisters
// this process as the audit daemon).
func (s *Source) Close() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	close(s.done)
	if err := s.rx.Close(); err != nil {
		return fmt.Errorf("netlinksrc: closing: %w", err)
	}
	return nil
}
