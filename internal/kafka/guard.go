package kafka

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/auditpipe/auditpipe/internal/backoff"
	"github.com/auditpipe/auditpipe/internal/connlimit"
)

// Defaults of the embedded broker's connection bounds.
const (
	// DefaultEmbeddedMaxConnections is EmbeddedConfig.MaxConnections by
	// default.
	DefaultEmbeddedMaxConnections = 512
	// DefaultEmbeddedAuthTimeout is EmbeddedConfig.AuthTimeout by
	// default.
	DefaultEmbeddedAuthTimeout = 10 * time.Second
	// DefaultEmbeddedIdleTimeout is EmbeddedConfig.IdleTimeout by
	// default: Kafka's connections.max.idle.ms.
	DefaultEmbeddedIdleTimeout = 10 * time.Minute
)

// preAuthMaxFrame bounds a request read before the connection is known
// to be authenticated: the broker allocates what a request's size field
// says before it looks at the request. Kafka's own bound on SASL frames
// (sasl.server.max.receive.size) is 512 KiB; the first request past SASL
// may be a produce of up to MaxBatchBytes of records.
const preAuthMaxFrame = 4 << 20

// Kafka API keys a client sends before and during SASL authentication.
const (
	keySASLHandshake    = 17
	keyAPIVersions      = 18
	keySASLAuthenticate = 36
)

// guardListener is the embedded broker's listener: at most max
// connections (connlimit), each of which must get past TLS and SASL
// within authTimeout, with TLS (when tc is set) terminated here so the
// connection's requests can be seen.
type guardListener struct {
	*connlimit.Listener
	tc          *tls.Config
	authTimeout time.Duration
	idleTimeout time.Duration
	log         *slog.Logger
}

// Accept implements net.Listener. kfake stops serving for good at the
// first error Accept returns, so a failure that may pass (EMFILE when the
// process is out of descriptors) is retried after a pause, as net/http
// does; only a closed listener ends it.
func (l *guardListener) Accept() (net.Conn, error) {
	for n := 0; ; {
		nc, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			d := backoff.Delay(n, 5*time.Millisecond, time.Second)
			l.log.Warn("kafka: embedded broker: accept failed; retrying", "err", err, "retry_in", d)
			time.Sleep(d)
			n++
			continue
		}
		n = 0
		if err := nc.SetDeadline(time.Now().Add(l.authTimeout)); err != nil {
			nc.Close()
			continue
		}
		lc := connlimit.Of(nc)
		if l.tc != nil {
			nc = tls.Server(nc, l.tc)
		}
		return &authConn{Conn: nc, lc: lc, idle: l.idleTimeout}, nil
	}
}

// authConn watches the requests of a connection until the first one that
// a broker with SASL refuses before authentication (anything but
// ApiVersions, SaslHandshake and SaslAuthenticate): from then on the
// connection is authenticated (kfake closes it otherwise), so its
// deadline is lifted and it is no longer evictable; it is closed when it
// sends nothing for idle (Kafka's connections.max.idle.ms): a holder of
// credentials cannot keep connections open for ever, and clients
// reconnect. Read and Write run in different goroutines; only Read
// touches the parsing state.
type authConn struct {
	net.Conn
	lc   *connlimit.Conn
	idle time.Duration

	idleSet time.Time // when the idle deadline was last moved
	authed  bool
	hdr     [6]byte // a request's size (4) and API key (2)
	hn      int     // bytes of hdr read
	left    int64   // bytes of the current request after hdr
}

// Read implements net.Conn.
func (c *authConn) Read(p []byte) (int, error) {
	if c.authed {
		// Moved at most once an eighth of idle (a second at most): a
		// busy connection reads often.
		if now := time.Now(); now.Sub(c.idleSet) >= min(time.Second, c.idle/8) {
			if err := c.Conn.SetReadDeadline(now.Add(c.idle)); err != nil {
				return 0, fmt.Errorf("kafka: embedded broker: set idle deadline: %w", err)
			}
			c.idleSet = now
		}
	}
	n, err := c.Conn.Read(p)
	if c.authed || n == 0 {
		return n, err
	}
	if perr := c.watch(p[:n]); perr != nil {
		return 0, perr
	}
	return n, err
}

func (c *authConn) watch(b []byte) error {
	for len(b) > 0 && !c.authed {
		if c.left > 0 {
			k := min(c.left, int64(len(b)))
			c.left -= k
			b = b[k:]
			continue
		}
		k := copy(c.hdr[c.hn:], b)
		c.hn += k
		b = b[k:]
		if c.hn < len(c.hdr) {
			return nil
		}
		c.hn = 0
		size := int64(int32(binary.BigEndian.Uint32(c.hdr[:4])))
		if size < 2 || size > preAuthMaxFrame {
			return fmt.Errorf("kafka: embedded broker: %s: request of %d bytes before authentication", c.RemoteAddr(), size)
		}
		c.left = size - 2
		switch int16(binary.BigEndian.Uint16(c.hdr[4:])) {
		case keySASLHandshake, keyAPIVersions, keySASLAuthenticate:
		default:
			c.authed = true
			if err := c.Conn.SetDeadline(time.Time{}); err != nil {
				return fmt.Errorf("kafka: embedded broker: clear deadline: %w", err)
			}
			if c.lc != nil {
				c.lc.SetEvictable(false)
			}
		}
	}
	return nil
}
