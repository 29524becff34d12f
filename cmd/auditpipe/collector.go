package main

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/auditpipe/auditpipe/collector"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/httpserve"
)

// cmdCollector runs the long-running collector.
func cmdCollector(ctx context.Context, e env) error {
	fs := newFlagSet("collector", "collector --config FILE", e.stderr)
	path := fs.String("config", "", "YAML configuration file (see collector/README.md); every field has a default")
	if err := parseFlags(fs, e.args); err != nil {
		return err
	}
	cfg := collector.DefaultConfig()
	if err := config.Load(*path, &cfg); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c, err := collector.New(cfg, collector.Deps{Log: e.log, Registry: reg, Stdin: e.stdin})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	if cfg.MetricsAddr != "" {
		go func() {
			err := httpserve.Run(ctx, cfg.MetricsAddr, httpserve.MetricsHandler(reg), e.log, nil)
			if err != nil {
				cancel() // no /metrics: stop rather than run blind
			}
			errc <- err
		}()
	} else {
		close(errc)
	}
	err = c.Run(ctx)
	cancel()
	return errors.Join(err, <-errc)
}
