package forwarder

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// ErrPeerClosed means the SIEM closed the connection (or it broke) while
// the forwarder was writing: messages not yet settled are sent again.
var ErrPeerClosed = errors.New("connection closed by the SIEM")

// dialer opens connections to one SIEM: TLS unless plain TCP was asked for.
type dialer struct {
	addr    string
	tls     *tls.Config // nil: plain TCP
	timeout time.Duration
}

// dial connects and, for TLS, completes the handshake, so a certificate
// problem is reported here and no byte of a message is ever written on an
// unverified connection.
func (d *dialer) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	nd := net.Dialer{KeepAlive: 30 * time.Second}
	raw, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", d.addr, err)
	}
	counted := &countingConn{Conn: raw}
	var nc net.Conn = counted
	if d.tls != nil {
		tc := tls.Client(counted, d.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", d.addr, err)
		}
		nc = tc
	}
	c := newConn(nc, raw, counted)
	if err := c.probe(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", d.addr, err)
	}
	return c, nil
}

// ErrRejected means the SIEM closed the connection right after the TLS
// handshake, before any message: with TLS 1.3 this is how a receiver that
// requires a client certificate, or distrusts ours, says no.
var ErrRejected = errors.New("connection closed by the SIEM right after the handshake")

// probeTime is how long a new connection is watched before the first
// write, so a SIEM that rejects the client after the handshake is noticed
// before any message is written into the connection.
const probeTime = 100 * time.Millisecond

func newConn(nc, raw net.Conn, counted *countingConn) *conn {
	c := &conn{nc: nc, raw: raw, counted: counted, dead: make(chan struct{})}
	c.bw = bufio.NewWriterSize(timedWriter{c}, 64<<10)
	c.wg.Add(1)
	go c.watch()
	return c
}

// probe waits probeTime for the SIEM to close the new connection.
func (c *conn) probe(ctx context.Context) error {
	t := time.NewTimer(probeTime)
	defer t.Stop()
	select {
	case <-c.dead:
		err := fmt.Errorf("%w: %v", ErrRejected, c.deadErr)
		c.close()
		return err
	case <-ctx.Done():
		c.close()
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// tlsFor returns cfg with ServerName set to the host of addr when the
// configuration left it empty: verification is on by default.
func tlsFor(cfg *tls.Config, addr string) *tls.Config {
	if cfg == nil || cfg.ServerName != "" {
		return cfg
	}
	cfg = cfg.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		cfg.ServerName = host
	}
	return cfg
}

// conn is one connection to a SIEM. Writes go through a buffer; a watcher
// goroutine reads (a syslog receiver never sends anything) to notice at
// once when the peer closes, so little is written into a dead connection.
type conn struct {
	nc      net.Conn
	raw     net.Conn
	counted *countingConn
	bw      *bufio.Writer // writes to nc through timedWriter
	timeout time.Duration // write timeout of each write to nc, set by write and flush

	dead    chan struct{} // closed by watch when the peer closed or the read failed
	deadErr error         // set before dead is closed
	wg      sync.WaitGroup
	closed  bool
}

func (c *conn) watch() {
	defer c.wg.Done()
	_, err := io.Copy(io.Discard, c.nc)
	if err == nil {
		err = io.EOF
	}
	c.deadErr = err
	close(c.dead)
}

// alive reports an error when the peer is known to be gone.
func (c *conn) alive() error {
	select {
	case <-c.dead:
		return fmt.Errorf("%w: %v", ErrPeerClosed, c.deadErr)
	default:
		return nil
	}
}

// write buffers framed messages; the buffer writes through to the
// connection when full, each write to the connection bounded by timeout.
func (c *conn) write(frames [][]byte, timeout time.Duration) error {
	if err := c.alive(); err != nil {
		return err
	}
	c.timeout = timeout
	return c.writeFrames(frames)
}

// writeEntries is write for the frames of several entries, in order.
func (c *conn) writeEntries(es []*entry, timeout time.Duration) error {
	if err := c.alive(); err != nil {
		return err
	}
	c.timeout = timeout
	for _, e := range es {
		if err := c.writeFrames(e.frames); err != nil {
			return err
		}
	}
	return nil
}

func (c *conn) writeFrames(frames [][]byte) error {
	for _, f := range frames {
		if _, err := c.bw.Write(f); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

// flush writes the buffer to the connection, each write bounded by
// timeout, and returns the position (in bytes on the wire) after it.
func (c *conn) flush(timeout time.Duration) (int64, error) {
	if err := c.alive(); err != nil {
		return 0, err
	}
	if c.bw.Buffered() > 0 {
		c.timeout = timeout
		if err := c.bw.Flush(); err != nil {
			return 0, fmt.Errorf("write: %w", err)
		}
	}
	return c.counted.written(), nil
}

// timedWriter is what the buffer writes to: the connection, with the
// write deadline moved before each write, so a write timeout bounds every
// write to the socket (about 64 KiB) and costs no deadline update per
// message.
type timedWriter struct{ c *conn }

func (w timedWriter) Write(b []byte) (int, error) {
	if err := w.c.nc.SetWriteDeadline(time.Now().Add(w.c.timeout)); err != nil {
		return 0, fmt.Errorf("set write deadline: %w", err)
	}
	return w.c.nc.Write(b)
}

// acked returns the position up to which the peer's TCP stack has
// acknowledged the bytes written, or ok=false where the platform cannot tell.
func (c *conn) acked() (pos int64, ok bool) {
	unacked, ok := unackedBytes(c.raw)
	if !ok {
		return 0, false
	}
	return c.counted.written() - int64(unacked), true
}

// closeGracefully flushes, sends TLS close_notify and a TCP FIN, and waits
// until timeout for the peer to close its side. drained=true means every
// byte written was read by the SIEM: see peerDrained.
func (c *conn) closeGracefully(timeout time.Duration) (drained bool) {
	deadline := time.Now().Add(timeout)
	// A peer that closed before our close may not have read everything.
	if _, err := c.flush(timeout); err == nil && c.alive() == nil {
		if tc, ok := c.nc.(*tls.Conn); ok {
			_ = tc.CloseWrite()
		}
		if tcp, ok := c.raw.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		}
		select {
		case <-c.dead:
			drained = c.peerDrained()
		case <-time.After(time.Until(deadline)):
		}
	}
	c.close()
	return drained
}

// peerDrained reports, once the watcher has stopped, whether the peer's
// close confirms it read everything: the read ended with a clean end of
// stream (a TCP FIN, or TLS close_notify), and, where the platform can tell,
// the peer's TCP stack acknowledged every byte sent, our FIN included.
//
// Any other read error is not a confirmation: Linux resets the connection
// (RST, "connection reset by peer") precisely when the receiver closes its
// socket with data it has not read, or when data arrives after it closed.
// A FIN that came before our last bytes (or our FIN) were acknowledged means
// the peer closed without having seen them.
func (c *conn) peerDrained() bool {
	if !errors.Is(c.deadErr, io.EOF) {
		return false
	}
	if n, ok := unackedBytes(c.raw); ok && n != 0 {
		return false
	}
	return true
}

// close tears the connection down and waits for the watcher.
func (c *conn) close() {
	if c.closed {
		return
	}
	c.closed = true
	c.raw.Close()
	c.wg.Wait()
}

// countingConn counts the bytes written to the TCP connection, below TLS,
// so written positions can be compared with what the peer acknowledged.
type countingConn struct {
	net.Conn
	mu sync.Mutex
	n  int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	c.n += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *countingConn) written() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
