// Package connlimit bounds the connections a listener keeps open at once,
// so that whoever can reach a port cannot take the process's file
// descriptors (which chDB, the broker's log and the Kafka clients share).
//
// A full listener does not stop accepting: a new connection closes the
// oldest one its owner marked evictable (an HTTP connection that is idle
// or has not sent a request yet, a Kafka connection that has not
// authenticated), and is itself refused (closed at once) only when every
// open connection is busy. Holding connections open therefore does not
// keep a newcomer out; keeping every one of them busy does, for as long as
// the owner's own timeouts let a connection stay busy unauthenticated.
package connlimit

import (
	"container/list"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// Listener is a net.Listener that keeps at most Max connections open.
type Listener struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns list.List // of *Conn, oldest first

	evicted atomic.Int64
	refused atomic.Int64
}

// New wraps ln so that at most max connections are open at once; max < 1
// is 1.
func New(ln net.Listener, max int) *Listener {
	if max < 1 {
		max = 1
	}
	return &Listener{Listener: ln, max: max}
}

// Max is the limit.
func (l *Listener) Max() int { return l.max }

// Open is the number of connections open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns.Len()
}

// Evicted is the number of connections closed so far to make room for a
// newer one.
func (l *Listener) Evicted() int64 { return l.evicted.Load() }

// Refused is the number of connections closed at once so far because
// every open one was busy.
func (l *Listener) Refused() int64 { return l.refused.Load() }

// Accept returns the next connection, a *Conn, which starts evictable.
// At the limit it closes the oldest evictable connection to make room,
// or, when none is, closes the new one and waits for the next: it never
// blocks on the limit.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c := &Conn{Conn: nc, l: l}
		c.evictable.Store(true)
		if l.admit(c) {
			return c, nil
		}
		l.refused.Add(1)
		nc.Close()
	}
}

// admit adds c, evicting the oldest evictable connection when the
// listener is full; false when it is full of busy connections.
func (l *Listener) admit(c *Conn) bool {
	l.mu.Lock()
	var victim *Conn
	if l.conns.Len() >= l.max {
		for e := l.conns.Front(); e != nil; e = e.Next() {
			if v := e.Value.(*Conn); v.evictable.Load() {
				victim = v
				break
			}
		}
		if victim == nil {
			l.mu.Unlock()
			return false
		}
		l.conns.Remove(victim.elem)
		victim.elem = nil
	}
	c.elem = l.conns.PushBack(c)
	l.mu.Unlock()
	if victim != nil {
		l.evicted.Add(1)
		victim.Conn.Close()
	}
	return true
}

func (l *Listener) release(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.elem != nil {
		l.conns.Remove(c.elem)
		c.elem = nil
	}
}

// Conn is a connection of a Listener.
type Conn struct {
	net.Conn
	l         *Listener
	elem      *list.Element // guarded by l.mu; nil once released
	evictable atomic.Bool
}

// SetEvictable says whether a newer connection may close c to make room
// (true: c is idle or not yet authenticated; false: it is serving).
func (c *Conn) SetEvictable(v bool) { c.evictable.Store(v) }

// Close closes the connection and frees its place.
func (c *Conn) Close() error {
	c.l.release(c)
	return c.Conn.Close()
}

// Of returns the *Conn under nc: nc itself, or the connection a TLS
// connection (anything with NetConn) runs on; nil when there is none.
func Of(nc net.Conn) *Conn {
	for nc != nil {
		if c, ok := nc.(*Conn); ok {
			return c
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		nc = u.NetConn()
	}
	return nil
}

// FileLimit is the process's soft RLIMIT_NOFILE: the number of file
// descriptors every listener, store and client of the process share. Go
// (1.19 and later) raises the soft limit to the hard one at start, so
// this is the hard limit unless something lowered it since.
func FileLimit() (uint64, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("getrlimit RLIMIT_NOFILE: %w", err)
	}
	return r.Cur, nil
}

// Cap is the most connections a listener may keep: a quarter of the
// file limit, so that two listeners at their limits leave half the
// descriptors to the rest of the process; at least 16.
func Cap(fileLimit uint64) int {
	c := fileLimit / 4
	if c < 16 {
		return 16
	}
	if c > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(c)
}

// Collectors returns the listener's metrics, named prefix_connections_*:
// _open and _max (gauges), _evicted_total and _refused_total (counters).
func (l *Listener) Collectors(prefix string) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: prefix + "_connections_open",
			Help: "Connections open on the listener."}, func() float64 { return float64(l.Open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: prefix + "_connections_max",
			Help: "The most connections the listener keeps open at once."}, func() float64 { return float64(l.max) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: prefix + "_connections_evicted_total",
			Help: "Idle or unauthenticated connections closed to make room for a newer one."}, func() float64 { return float64(l.Evicted()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: prefix + "_connections_refused_total",
			Help: "New connections closed at once because every open one was busy."}, func() float64 { return float64(l.Refused()) }),
	}
}
