package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// DefaultQuerySessions is the number of sessions of the query endpoint's
// pool (OpenQueryPool): that many slow queries at once before a reader
// waits for one to end.
const DefaultQuerySessions = 4

// QueryPool is a set of query sessions (OpenQuerySession) shared by the
// query endpoint's readers: each query takes a free session for its run
// and gives it back, so a slow query holds one session while the next
// reader's query runs on another. A query waits for a free session only
// while its context lasts. It is a FormatQuerier with parameters and
// statistics, like *Embedded.
type QueryPool struct {
	free      chan *Embedded
	all       []*Embedded
	closeOnce sync.Once
	closed    chan struct{}
}

// OpenQueryPool opens n query sessions on e's data directory (n < 1 is
// DefaultQuerySessions). Close it before e.
func (e *Embedded) OpenQueryPool(n int) (*QueryPool, error) {
	if n < 1 {
		n = DefaultQuerySessions
	}
	p := &QueryPool{free: make(chan *Embedded, n), closed: make(chan struct{})}
	for range n {
		s, err := e.OpenQuerySession()
		if err != nil {
			return nil, errors.Join(err, p.Close())
		}
		p.all = append(p.all, s)
		p.free <- s
	}
	return p, nil
}

// errPoolClosed answers a query asked of a closed pool.
var errPoolClosed = errors.New("clickhouse: query pool closed")

// do runs f on a free session, waiting for one while ctx lasts.
func (p *QueryPool) do(ctx context.Context, f func(*Embedded) error) error {
	select {
	case <-p.closed:
		return errPoolClosed
	default:
	}
	var s *Embedded
	select {
	case s = <-p.free:
	case <-ctx.Done():
		return fmt.Errorf("clickhouse: waiting for a free query session: %w", context.Cause(ctx))
	case <-p.closed:
		return errPoolClosed
	}
	defer func() { p.free <- s }()
	return f(s)
}

// QueryFormat is Embedded.QueryFormat on a free session.
func (p *QueryPool) QueryFormat(ctx context.Context, sql, format string) (b []byte, err error) {
	err = p.do(ctx, func(s *Embedded) error {
		b, err = s.QueryFormat(ctx, sql, format)
		return err
	})
	return b, err
}

// QueryFormatParams is Embedded.QueryFormatParams on a free session.
func (p *QueryPool) QueryFormatParams(ctx context.Context, sql, format string, params []Param) (b []byte, err error) {
	err = p.do(ctx, func(s *Embedded) error {
		b, err = s.QueryFormatParams(ctx, sql, format, params)
		return err
	})
	return b, err
}

// QueryFormatStats is Embedded.QueryFormatStats on a free session.
func (p *QueryPool) QueryFormatStats(ctx context.Context, sql, format string, params []Param) (b []byte, st QueryStats, err error) {
	err = p.do(ctx, func(s *Embedded) error {
		b, st, err = s.QueryFormatStats(ctx, sql, format, params)
		return err
	})
	return b, st, err
}

// QueryFormatStatsLimit is Embedded.QueryFormatStatsLimit on a free
// session.
func (p *QueryPool) QueryFormatStatsLimit(ctx context.Context, sql, format string, params []Param, maxOutput int64) (b []byte, st QueryStats, err error) {
	err = p.do(ctx, func(s *Embedded) error {
		b, st, err = s.QueryFormatStatsLimit(ctx, sql, format, params, maxOutput)
		return err
	})
	return b, st, err
}

// Close closes every session, killing the queries still running; queries
// waiting for a session return an error.
func (p *QueryPool) Close() error {
	var errs []error
	p.closeOnce.Do(func() {
		close(p.closed)
		for _, s := range p.all {
			errs = append(errs, s.Close())
		}
	})
	return errors.Join(errs...)
}
