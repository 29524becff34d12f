package queryapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the process's bound on formatted results (issue 9 review:
// max_result_bytes bounds a result before formatting only; 40 MB of data
// came back as 240 MB of JSONEachRow, and two readers of such results took
// the process to 3.65 GB).
const (
	// DefaultMaxOutputBytes is QueryHandlerOptions.MaxOutputBytes's
	// default: one statement's formatted answer.
	DefaultMaxOutputBytes = 64 << 20
	// DefaultResultBudget is QueryHandlerOptions.ResultBudget's default:
	// the formatted answers the endpoint holds at once, counted as
	// resultHold reserves them: five statements of the largest answer
	// at once (four re-encoded to Native), more than the query pool's
	// four sessions.
	DefaultResultBudget = 1 << 30
	// DefaultResultWait is how long a statement waits for room in the
	// budget before it is answered 503.
	DefaultResultWait = 10 * time.Second
)

// ErrResultBudget is a ResultBudget's refusal: no room within the wait.
var ErrResultBudget = errors.New("result memory budget taken")

// ResultBudget is a process-wide budget of bytes for the formatted answers
// of the query endpoint's statements: each statement reserves what its
// answer may take before it runs (resultHold) and frees it once answered,
// so N readers of large results hold at most the budget, however many
// there are, and wait (or are refused) rather than take the process's
// memory. Make one per process and give it to every handler.
type ResultBudget struct {
	total int64

	mu   sync.Mutex
	used int64
	room chan struct{} // closed (and replaced) when bytes are freed

	held    prometheus.Gauge
	refused prometheus.Counter
}

// NewResultBudget makes a budget of total bytes (DefaultResultBudget when
// total <= 0) and registers its metrics with reg when not nil:
// auditpipe_query_result_budget_bytes (held now),
// auditpipe_query_result_budget_limit_bytes and
// auditpipe_query_result_budget_refused_total.
func NewResultBudget(total int64, reg prometheus.Registerer) *ResultBudget {
	if total <= 0 {
		total = DefaultResultBudget
	}
	b := &ResultBudget{
		total: total,
		room:  make(chan struct{}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditpipe_query_result_budget_bytes",
			Help: "Bytes of the query endpoint's result budget reserved by running statements (their formatted answers).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditpipe_query_result_budget_refused_total",
			Help: "Statements answered 503 (not run) because the result budget had no room within the wait.",
		}),
	}
	if reg != nil {
		limit := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditpipe_query_result_budget_limit_bytes",
			Help: "The query endpoint's result budget (query.result_budget).",
		})
		limit.Set(float64(total))
		reg.MustRegister(b.held, b.refused, limit)
	}
	return b
}

// Total is the budget's size in bytes.
func (b *ResultBudget) Total() int64 { return b.total }

// Acquire reserves n bytes (at most the whole budget), waiting up to wait
// while ctx lasts. Release the reservation once the answer is sent.
func (b *ResultBudget) Acquire(ctx context.Context, n int64, wait time.Duration) (*Reservation, error) {
	n = min(n, b.total)
	err := waitRoom(ctx, wait, func() (<-chan struct{}, error) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.used+n > b.total {
			return b.room, nil
		}
		b.used += n
		b.held.Set(float64(b.used))
		return nil, nil
	})
	switch {
	case err == nil:
		return &Reservation{b: b, n: n}, nil
	case errors.Is(err, errNoRoom):
		err = fmt.Errorf("%w: the endpoint holds at most %d bytes of formatted results at once (query.result_budget), each running statement reserving %d; waited %s", ErrResultBudget, b.total, n, wait)
	default:
		err = fmt.Errorf("%w: %w", ErrResultBudget, err)
	}
	b.refused.Inc()
	return nil, err
}

// errNoRoom is waitRoom's error when its wait passed without room.
var errNoRoom = errors.New("no room within the wait")

// waitRoom is the wait of a bounded reservation (the result budget, the
// query log's buffer): it calls take until take has reserved (nil, nil),
// waiting between two calls for the channel take returns, which is closed
// when room is freed, up to wait in all while ctx lasts. It returns
// take's error at once, errNoRoom once wait has passed, ctx's cause when
// it ended.
func waitRoom(ctx context.Context, wait time.Duration, take func() (<-chan struct{}, error)) error {
	var timer <-chan time.Time
	for {
		room, err := take()
		if err != nil || room == nil {
			return err
		}
		if timer == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-room:
		case <-timer:
			return errNoRoom
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Reservation is room taken in a ResultBudget; not for concurrent use.
type Reservation struct {
	b *ResultBudget
	n int64
}

// Shrink lowers the reservation to n bytes (when less), once the answer's
// size is known: what is held while it is sent.
func (r *Reservation) Shrink(n int64) {
	if n < r.n {
		r.b.release(r.n - n)
		r.n = n
	}
}

// Release frees the reservation; later calls do nothing.
func (r *Reservation) Release() {
	r.Shrink(0)
}

func (b *ResultBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.held.Set(float64(b.used))
	close(b.room)
	b.room = make(chan struct{})
}

// inUse returns the bytes reserved now.
func (b *ResultBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// resultHold is what a statement whose answer may be maxOutput bytes
// reserves while it runs: chDB builds the answer in a buffer that grows by
// doubling (up to twice the answer) and the binding copies it out, so
// three times maxOutput (measured on 26.7: a 36 MB JSONEachRow answer
// raised the process's peak by 115 to 180 MB); a Native answer re-encoded
// for a client's protocol revision has its copy too.
func resultHold(maxOutput int64, native bool) int64 {
	if native {
		return 4 * maxOutput
	}
	return 3 * maxOutput
}

// sentHold is what a statement holds while its answer of n bytes is sent:
// the answer (and its Native re-encoding).
func sentHold(n int64, native bool) int64 {
	if native {
		return 2 * n
	}
	return n
}
