// Package leader runs work on one process at a time: the time-driven duties
// of a service that may run as several processes on one PostgreSQL database
// (the policy service's expiry, future starts and outbox relay).
//
// An Elector's Run campaigns until its context ends and, while this process
// leads, runs the work with a context that ends as soon as leadership is
// lost. Postgres elects with a session-level advisory lock
// (pg_try_advisory_lock) held on a connection of its own: the lock is the
// session's, so a leader that exits, crashes or is killed with SIGKILL loses
// it when its session ends, and a follower takes it at its next attempt,
// within Config.PollInterval. Always is the single-process elector (the
// SQLite store): it always leads.
//
// The package is domain-free plumbing, beside internal/kafka, rather than a
// part of policy/: the scheduler's firing of jobs is the next user, and the
// metrics carry the component's name (Deps.Component).
//
// Leadership is a lease kept by the database, not a fence: between the
// server ending a leader's session and that leader noticing (at once when
// the server closes the connection; within PollInterval + PingTimeout when
// the network goes silent) two processes may both run the work. Work must
// therefore stay correct when run twice (a conditional update in a
// transaction, as the store's state transitions are); the lock keeps it
// from being run twice in the normal case and makes the duplicates rare.
package leader

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/backoff"
	"github.com/auditpipe/auditpipe/internal/config"
)

// Elector runs work while this process is the leader.
type Elector interface {
	// Run campaigns until ctx ends, running work with a context that
	// ends when ctx does or leadership is lost; after a loss it campaigns
	// again. It returns nil when ctx ends, and when work returns by
	// itself (not because its context ended) it returns work's error,
	// after giving up leadership.
	Run(ctx context.Context, work func(ctx context.Context) error) error
}

// ErrLost is the cause (context.Cause) of the work's context when
// leadership was lost.
var ErrLost = errors.New("leadership lost")

// Config is the Postgres elector's configuration. Every field has a
// default (DefaultConfig) and Validate names the field that is wrong.
type Config struct {
	// PollInterval is how often a follower tries to take the lock, and
	// how often the leader checks its session with a ping when nothing
	// else showed that it ended. A killed leader is replaced within about
	// this long. Default 2s.
	PollInterval time.Duration `yaml:"poll_interval" doc:"how often a follower tries to take the leader lock, and the leader pings its session"`
	// PingTimeout bounds each of the leader's pings (and a follower's
	// attempt): a ping that takes longer is a lost leadership. Default 2s.
	PingTimeout time.Duration `yaml:"ping_timeout" doc:"a leader whose ping takes longer steps down"`
	// SessionTimeout is how long the server keeps the lock of a leader it
	// no longer hears from (a crashed host, a cut network): the lock
	// session's TCP keepalives and tcp_user_timeout. It must exceed
	// PollInterval + PingTimeout, so that a cut-off leader steps down
	// before the server lets another take over. Default 10s.
	SessionTimeout time.Duration `yaml:"session_timeout" doc:"how long the server keeps the lock of a leader it cannot reach; more than poll_interval + ping_timeout"`
}

// DefaultConfig returns the configuration with every default set.
func DefaultConfig() Config {
	return Config{PollInterval: 2 * time.Second, PingTimeout: 2 * time.Second, SessionTimeout: 10 * time.Second}
}

// Validate reports every bad field at once, named relative to the
// elector's section (the parent merges them under its own path).
func (c Config) Validate() error {
	var errs config.Errors
	if c.PollInterval <= 0 {
		errs.Addf("poll_interval", "%s: must be positive", c.PollInterval)
	}
	if c.PingTimeout <= 0 {
		errs.Addf("ping_timeout", "%s: must be positive", c.PingTimeout)
	}
	if c.SessionTimeout < 3*time.Second {
		errs.Addf("session_timeout", "%s: must be at least 3s (the keepalive probes count whole seconds)", c.SessionTimeout)
	} else if c.SessionTimeout <= c.PollInterval+c.PingTimeout {
		errs.Addf("session_timeout", "%s: must exceed poll_interval + ping_timeout (%s)", c.SessionTimeout, c.PollInterval+c.PingTimeout)
	}
	return errs.Err()
}

// Deps are an elector's logger and metrics registry.
type Deps struct {
	// Log is where leadership changes are logged. Default: discarded.
	Log *slog.Logger
	// Registry registers the metrics. Default: a registry of its own.
	Registry prometheus.Registerer
	// Component names the metrics, auditpipe_<Component>_leader and
	// auditpipe_<Component>_leader_transitions_total. Default "policy".
	Component string
}

func (d Deps) withDefaults() Deps {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	if d.Component == "" {
		d.Component = "policy"
	}
	return d
}

// metrics are an elector's Prometheus metrics.
type metrics struct {
	leader      prometheus.Gauge       // 1 while this process leads
	transitions *prometheus.CounterVec // by to: leader, follower
}

func newMetrics(reg prometheus.Registerer, component string) *metrics {
	m := &metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditpipe_" + component + "_leader",
			Help: "1 while this process is the leader that runs the time-driven work, else 0.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_" + component + "_leader_transitions_total",
			Help: "Changes of leadership of this process, by the state changed to (leader, follower).",
		}, []string{"to"}),
	}
	m.transitions.WithLabelValues("leader")
	m.transitions.WithLabelValues("follower")
	reg.MustRegister(m.leader, m.transitions)
	return m
}

func (m *metrics) lead() {
	m.leader.Set(1)
	m.transitions.WithLabelValues("leader").Inc()
}

func (m *metrics) follow() {
	m.leader.Set(0)
	m.transitions.WithLabelValues("follower").Inc()
}

// KeyFor is an advisory lock key for name (FNV-1a, 64 bits): the key of a
// duty, the same in every process. Advisory locks are per database, so two
// deployments on two databases of one cluster do not contend.
func KeyFor(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// Always is the elector of a single process (the SQLite store): it leads
// from Run's start to its end.
type Always struct {
	m *metrics
}

// NewAlways returns the single-process elector.
func NewAlways(deps Deps) *Always {
	deps = deps.withDefaults()
	return &Always{m: newMetrics(deps.Registry, deps.Component)}
}

// Run runs work with ctx, as the leader.
func (a *Always) Run(ctx context.Context, work func(ctx context.Context) error) error {
	a.m.lead()
	defer a.m.follow()
	return result(ctx, work(ctx))
}

// result is Run's error for work's err: nil when ctx ended and work
// stopped for it.
func result(ctx context.Context, err error) error {
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("leader work: %w", err)
	}
	return nil
}

// Postgres elects with a session-level advisory lock on a PostgreSQL
// database.
type Postgres struct {
	cfg    Config
	conn   *pgx.ConnConfig
	key    int64
	log    *slog.Logger
	m      *metrics
	outage *backoff.Outage
}

// NewPostgres returns an elector contending for the advisory lock key
// (see KeyFor) on the database of dsn (pgx's forms: a URL or key=value
// pairs). Its session is named "auditpipe <component> leader" in
// pg_stat_activity.
func NewPostgres(dsn string, key int64, cfg Config, deps Deps) (*Postgres, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	deps = deps.withDefaults()
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's error may hold the DSN, with its password: not repeated.
		return nil, errors.New("leader: the PostgreSQL DSN does not parse")
	}
	cc.RuntimeParams["application_name"] = "auditpipe " + deps.Component + " leader"
	for k, v := range sessionParams(cfg.SessionTimeout) {
		cc.RuntimeParams[k] = v
	}
	return &Postgres{
		cfg:    cfg,
		conn:   cc,
		key:    key,
		log:    deps.Log.With("lock_key", key),
		m:      newMetrics(deps.Registry, deps.Component),
		outage: backoff.NewOutage(deps.Log, "taking part in the leader election", "lock_key", key),
	}, nil
}

// sessionParams are the server's settings for the lock's session that end
// it when the client has been silent for about d: TCP keepalives (idle d/2,
// then three probes d/6 apart) and tcp_user_timeout d for unacknowledged
// data. They apply over TCP; a unix socket needs none.
func sessionParams(d time.Duration) map[string]string {
	idle := max(1, int(d/2/time.Second))
	interval := max(1, int(d/6/time.Second))
	return map[string]string{
		"tcp_keepalives_idle":     strconv.Itoa(idle),
		"tcp_keepalives_interval": strconv.Itoa(interval),
		"tcp_keepalives_count":    "3",
		"tcp_user_timeout":        strconv.FormatInt(d.Milliseconds(), 10),
	}
}

// Run campaigns until ctx ends (see Elector).
func (e *Postgres) Run(ctx context.Context, work func(ctx context.Context) error) error {
	for {
		conn := e.acquire(ctx)
		if conn == nil {
			return nil // ctx ended
		}
		lost, err := e.lead(ctx, conn, work)
		if !lost {
			e.unlock(conn)
			e.close(conn)
			return err
		}
		e.close(conn)
		// A poll's pause before campaigning again: a follower that is
		// healthy takes over rather than the process that just lost
		// its session (and may lose the next one the same way).
		if !backoff.Sleep(ctx, e.cfg.PollInterval) {
			return nil
		}
	}
}

// acquire returns a connection whose session holds the lock, or nil when
// ctx ended first.
func (e *Postgres) acquire(ctx context.Context) *pgx.Conn {
	var conn *pgx.Conn
	for {
		if conn == nil {
			cctx, cancel := context.WithTimeout(ctx, e.cfg.PingTimeout)
			c, err := pgx.ConnectConfig(cctx, e.conn)
			cancel()
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				e.outage.Fail(fmt.Errorf("connect: %w", err))
			default:
				conn = c
			}
		}
		if conn != nil {
			qctx, cancel := context.WithTimeout(ctx, e.cfg.PingTimeout)
			var got bool
			err := conn.QueryRow(qctx, "SELECT pg_try_advisory_lock($1)", e.key).Scan(&got)
			cancel()
			switch {
			case ctx.Err() != nil:
				e.close(conn)
				return nil
			case err != nil:
				e.outage.Fail(fmt.Errorf("try the lock: %w", err))
				e.close(conn)
				conn = nil
			case got:
				e.outage.OK()
				return conn
			default:
				e.outage.OK()
			}
		}
		if !backoff.Sleep(ctx, e.cfg.PollInterval) {
			e.close(conn)
			return nil
		}
	}
}

// lead runs work while conn's session lives. It reports whether
// leadership was lost and, when it was not, Run's result.
func (e *Postgres) lead(ctx context.Context, conn *pgx.Conn, work func(ctx context.Context) error) (lost bool, err error) {
	e.m.lead()
	defer e.m.follow()
	e.log.Info("became the leader", "backend_pid", conn.PgConn().PID())
	began := time.Now()

	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, 1)
	go func() { done <- work(wctx) }()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	ended := make(chan error, 1)
	go func() { ended <- e.watch(watchCtx, conn) }()

	select {
	case werr := <-done:
		stopWatch()
		<-ended
		if ctx.Err() != nil {
			e.log.Info("stepped down: stopping", "led_for", time.Since(began).Round(time.Millisecond))
		} else {
			e.log.Info("stepped down: the work returned", "err", werr)
		}
		return false, result(ctx, werr)
	case lerr := <-ended:
		if ctx.Err() != nil { // stopping: the watch ended with ctx
			return false, result(ctx, <-done)
		}
		e.log.Warn("lost the leadership; the work is cancelled and the election starts again", "err", lerr, "led_for", time.Since(began).Round(time.Millisecond))
		cancel(fmt.Errorf("%w: %w", ErrLost, lerr))
		if werr := <-done; werr != nil && !errors.Is(werr, context.Canceled) {
			e.log.Warn("the work ended with an error after the leadership was lost", "err", werr)
		}
		return true, nil
	}
}

// watch returns when conn's session has ended (the error saying how), or
// nil when ctx ended. It blocks reading the connection, so that a session
// the server ends (pg_terminate_backend, a restart) or a connection that
// breaks is seen at once, and pings every PollInterval for a network that
// went silent.
func (e *Postgres) watch(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, e.cfg.PollInterval)
		err := conn.PgConn().WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			continue // a notification: nobody listens on this session
		case !errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("the lock's session ended: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, e.cfg.PingTimeout)
		err = conn.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("the lock's session does not answer: %w", err)
		}
	}
}

// unlock gives up the lock before conn is closed, so that it is free when
// Run returns: closing alone frees it only when the server has ended the
// session, a moment later. An error leaves it to the session's end.
func (e *Postgres) unlock(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.PingTimeout)
	defer cancel()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", e.key); err != nil {
		e.log.Debug("unlock failed; the lock ends with the session", "err", err)
	}
}

// close ends conn's session, which gives up the lock if it held it, and
// waits until the connection's own goroutines are done.
func (e *Postgres) close(conn *pgx.Conn) {
	if conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.PingTimeout)
	defer cancel()
	_ = conn.Close(ctx)
	select {
	case <-conn.PgConn().CleanupDone():
	case <-ctx.Done():
	}
}
