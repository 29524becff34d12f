// Package allinone runs the whole pipeline in one process, the embedded
// default: an in-process Kafka-protocol broker (kfake), the collector on
// an audit log, the indexer into embedded chDB, a forwarder when a SIEM is
// given, and an HTTP endpoint serving SQL (in the shape of ClickHouse's
// HTTP interface) and /metrics. A chDB directory can be opened by one
// process only, so queries go through this process.
package allinone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/collector"
	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/indexer"
	"github.com/auditpipe/auditpipe/internal/httpserve"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/queryapi"
	"github.com/auditpipe/auditpipe/schemas"
)

// Config configures the all-in-one.
type Config struct {
	// DataDir holds the broker's log, the chDB store and the collector's
	// state. Required.
	DataDir string
	// AuditLog is the audit log followed. Default /var/log/audit/audit.log.
	AuditLog string
	// FlushInterval is the collector's push cadence. Default 30s.
	FlushInterval time.Duration
	// Layer, Host, Passwd, Group, AllUsers and Grants are the collector's.
	Layer, Host, Passwd, Group string
	AllUsers                   bool
	Grants                     map[string]string
	// HTTPAddr serves the query endpoint and /metrics. Default 127.0.0.1:9464.
	HTTPAddr string
	// ChDBLib is the path of libchdb.so. Default: the indexer's lookup
	// (AUDITPIPE_CHDB_LIB, then the deps cache).
	ChDBLib string
	// RetentionDays is audit_events' TTL; 0 keeps events for ever. The
	// command's flag defaults to 365.
	RetentionDays int
	// SIEM, when its Address is set, adds a forwarder to that destination.
	SIEM forwarder.Destination
	// DrainTimeout bounds the wait, at shutdown, for the indexer and the
	// forwarder to take the collector's last batch. Default 30s.
	DrainTimeout time.Duration
}

// Deps are the all-in-one's collaborators.
type Deps struct {
	Log      *slog.Logger
	Registry *prometheus.Registry
	// Ready, when set, receives the HTTP endpoint's address once it listens.
	Ready func(addr net.Addr)
}

const (
	indexerGroup = "auditpipe-indexer"
	partitions   = 1
)

// Run runs the pipeline until ctx is cancelled. Shutdown goes in pipeline
// order: the collector pushes its last batch, the indexer and forwarder
// take everything in Kafka (bounded by DrainTimeout), insert, send and
// commit, then the endpoint and the broker stop.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	if cfg.DataDir == "" {
		return errors.New("all-in-one: a data directory is required")
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:9464"
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}

	broker, err := kafka.StartEmbedded(0, filepath.Join(cfg.DataDir, "kafka"), partitions)
	if err != nil {
		return fmt.Errorf("all-in-one: %w", err)
	}
	defer broker.Close()
	kcfg := kafka.Config{Brokers: broker.Brokers()}.WithDefaults()
	if err := kcfg.EnsureTopics(ctx, kafka.PipelineTopics(partitions)...); err != nil {
		return fmt.Errorf("all-in-one: %w", err)
	}

	colCfg := collector.DefaultConfig()
	colCfg.Kafka = kcfg
	colCfg.StateDir = filepath.Join(cfg.DataDir, "collector")
	colCfg.MetricsAddr = ""
	colCfg.AllUsers = cfg.AllUsers
	colCfg.Grants = cfg.Grants
	setIf(&colCfg.Input.Path, cfg.AuditLog)
	setIf(&colCfg.Layer, cfg.Layer)
	setIf(&colCfg.Host, cfg.Host)
	setIf(&colCfg.Passwd, cfg.Passwd)
	setIf(&colCfg.Group, cfg.Group)
	if cfg.FlushInterval > 0 {
		colCfg.FlushInterval = cfg.FlushInterval
	}
	col, err := collector.New(colCfg, collector.Deps{Log: log, Registry: reg})
	if err != nil {
		return fmt.Errorf("all-in-one: %w", err)
	}

	ixCfg := indexer.DefaultConfig()
	ixCfg.Kafka = kcfg
	ixCfg.Group = indexerGroup
	ixCfg.Store.Embedded.Dir = filepath.Join(cfg.DataDir, "chdb")
	ixCfg.Store.Embedded.Lib = cfg.ChDBLib
	ixCfg.Store.RetentionDays = cfg.RetentionDays
	ixCfg.HTTPAddr = ""
	eng, err := clickhouse.Open(ctx, ixCfg.Store)
	if err != nil {
		return fmt.Errorf("all-in-one: %w", err)
	}
	defer eng.Close()
	ix, err := indexer.New(ixCfg, indexer.Deps{Engine: eng, Log: log, Registry: reg})
	if err != nil {
		return fmt.Errorf("all-in-one: %w", err)
	}

	var fw *forwarder.Forwarder
	fwGroup := ""
	if cfg.SIEM.Address != "" {
		d := cfg.SIEM.WithDefaults()
		fwGroup = d.Group
		fw, err = forwarder.New(forwarder.Config{Kafka: kcfg, Destinations: []forwarder.Destination{d}}, forwarder.Options{Log: log, Registerer: reg})
		if err != nil {
			return fmt.Errorf("all-in-one: %w", err)
		}
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	fq, ok := eng.(queryapi.FormatQuerier)
	if !ok {
		return errors.New("all-in-one: the embedded engine cannot serve queries")
	}
	mux.Handle("/", queryapi.NewQueryHandler(fq, log, queryapi.QueryHandlerOptions{}))

	// Each stage runs under its own context, so shutdown can go in order.
	// A stage that ends by itself before shutdown stops the others.
	type stage struct {
		name   string
		cancel context.CancelFunc
		done   chan error
	}
	ended := make(chan string, 4)
	start := func(name string, run func(context.Context) error) *stage {
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		s := &stage{name: name, cancel: cancel, done: make(chan error, 1)}
		go func() {
			s.done <- run(sctx)
			ended <- name
		}()
		return s
	}
	httpStage := start("http", func(c context.Context) error {
		return httpserve.Run(c, cfg.HTTPAddr, mux, log, deps.Ready)
	})
	ixStage := start("indexer", ix.Run)
	var fwStage *stage
	if fw != nil {
		fwStage = start("forwarder", fw.Run)
	}
	colStage := start("collector", col.Run)
	log.Info("all-in-one running", "audit_log", colCfg.Input.Path, "data", cfg.DataDir, "http", cfg.HTTPAddr,
		"flush_interval", colCfg.FlushInterval, "siem", cfg.SIEM.Address)

	var errs []error
	select {
	case <-ctx.Done():
		log.Info("all-in-one: stopping")
	case name := <-ended:
		log.Error("all-in-one: a stage stopped; stopping the others", "stage", name)
	}
	stop := func(s *stage) {
		if s == nil {
			return
		}
		s.cancel()
		if err := <-s.done; err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	stop(colStage)
	groups := []string{indexerGroup}
	if fwGroup != "" {
		groups = append(groups, fwGroup)
	}
	if err := waitDrained(kcfg, groups, cfg.DrainTimeout, log); err != nil {
		errs = append(errs, err)
	}
	stop(fwStage)
	stop(ixStage)
	stop(httpStage)
	return errors.Join(errs...)
}

// waitDrained waits until every group has committed everything on the
// audit topic.
func waitDrained(kcfg kafka.Config, groups []string, timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, g := range groups {
		for {
			lag, err := kcfg.Lag(ctx, g, schemas.TopicAudit)
			if err == nil && lag == 0 {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("all-in-one: group %s has not taken the last events after %v (lag %d, %v)", g, timeout, lag, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
		log.Info("all-in-one: drained", "group", g)
	}
	return nil
}

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}
