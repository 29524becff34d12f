package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/auditpipe/auditpipe/internal/app"
	"github.com/auditpipe/auditpipe/internal/config"
)

// runFlags are the flags every long-running target takes: the one
// configuration file and what overrides it.
type runFlags struct {
	config, target, logLevel, logFormat, httpAddr string
}

func (f *runFlags) register(fs *flag.FlagSet, target string) {
	fs.StringVar(&f.config, "config", "", "YAML configuration `FILE` (auditpipe config defaults prints every field); default: the embedded defaults")
	if target == "" {
		fs.StringVar(&f.target, "target", "", "what to run: "+strings.Join(app.Targets(), ", ")+" (default: the file's target, else all)")
	}
	f.target = target
	fs.StringVar(&f.logLevel, "log.level", "", "log level: debug, info, warn, error (overrides log.level)")
	fs.StringVar(&f.logFormat, "log.format", "", "log format: logfmt or json (overrides log.format)")
	fs.StringVar(&f.httpAddr, "http.addr", "", "HTTP listener `HOST:PORT` for /metrics, /-/healthy, /-/ready and the target's API, or off (overrides server.http_addr)")
}

// load reads the configuration file onto the defaults and applies the
// flags.
func (f *runFlags) load() (app.Config, error) {
	cfg := app.DefaultConfig()
	if err := config.Load(f.config, &cfg); err != nil {
		return cfg, err
	}
	f.apply(&cfg)
	return cfg, nil
}

func (f *runFlags) apply(cfg *app.Config) {
	if f.target != "" {
		cfg.Target = f.target
	}
	if f.logLevel != "" {
		cfg.Log.Level = app.LogLevel(f.logLevel)
	}
	if f.logFormat != "" {
		cfg.Log.Format = f.logFormat
	}
	if f.httpAddr != "" {
		cfg.Server.HTTPAddr = f.httpAddr
	}
}

// targetCommand is `auditpipe run [--target T] [--config FILE]` (target
// ""), or a component's own subcommand: `auditpipe collector --config
// FILE` is `auditpipe run --target collector --config FILE`.
func targetCommand(target string) func(context.Context, env) error {
	name, synopsis := target, target+" [--config FILE]"
	if target == "" {
		name, synopsis = "run", "run [--target T] [--config FILE]"
	}
	synopsis += " [--log.level L] [--log.format F] [--http.addr A]"
	return func(ctx context.Context, e env) error {
		var f runFlags
		fs := newFlagSet(name, synopsis, e.stderr)
		f.register(fs, target)
		if err := parseFlags(fs, e.args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			fs.Usage()
			return errUsage
		}
		cfg, err := f.load()
		if err != nil {
			return err
		}
		return runApp(ctx, e, cfg, f.load)
	}
}

// newLogger builds the process's logger on w from the log section.
func newLogger(w io.Writer, c app.LogConfig, level *slog.LevelVar) *slog.Logger {
	level.Set(c.Level.Level())
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runApp runs the configured target until ctx ends. SIGHUP (auditd sends
// it to its plugins on reload) re-reads the configuration and applies what
// can change without a restart; it never stops the process.
func runApp(ctx context.Context, e env, cfg app.Config, reload func() (app.Config, error)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	level := new(slog.LevelVar)
	log := newLogger(e.stderr, cfg.Log, level)
	a, err := app.New(cfg, app.Deps{Log: log, LogLevel: level, Stdin: e.stdin, Ready: func(addr string) {
		log.Info("http listening", "addr", addr, "target", cfg.Target)
		if e.ready != nil {
			e.ready(addr)
		}
	}})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for {
		select {
		case err := <-done:
			return err
		case <-e.hup:
			next, err := reload()
			if err == nil {
				err = a.Reload(next)
			}
			if err != nil {
				log.Error("reload (SIGHUP): configuration not applied", "err", err)
				continue
			}
			log.Info("reload (SIGHUP): configuration applied")
		}
	}
}

// cmdConfig is `auditpipe config validate FILE` and `auditpipe config
// defaults`.
func cmdConfig(_ context.Context, e env) error {
	usage := func() {
		fmt.Fprintln(e.stderr, "usage: auditpipe config validate [--target T] FILE   (exit 0 when valid, 78 when not)")
		fmt.Fprintln(e.stderr, "       auditpipe config defaults                     (every field with its default)")
	}
	if len(e.args) == 0 {
		usage()
		return errUsage
	}
	switch e.args[0] {
	case "-h", "--help", "help":
		usage()
		return errHelp
	case "defaults":
		b, err := app.Reference()
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(b)
		return err
	case "validate":
		fs := newFlagSet("config validate", "config validate [--target T] FILE", e.stderr)
		target := fs.String("target", "", "validate for this target (default: the file's target, else all)")
		if err := parseFlags(fs, e.args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			fs.Usage()
			return errUsage
		}
		f := runFlags{config: fs.Arg(0), target: *target}
		cfg, err := f.load()
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			return &exitError{code: config.ExitConfig, err: fmt.Errorf("%s: %w", fs.Arg(0), err)}
		}
		fmt.Fprintf(e.stdout, "%s: valid for target %s\n", fs.Arg(0), cfg.Target)
		return nil
	}
	usage()
	return errUsage
}

// exitError ends a command with a given exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
