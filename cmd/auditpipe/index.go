package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/indexer"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/privfile"
)

// storeFlags are the flags that choose a ClickHouse: --embedded DIR or
// --clickhouse ADDR (native protocol), with --chdb-lib for libchdb.so.
type storeFlags struct {
	embedded, clickhouse, chdbLib, user, database string
	password                                      config.Secret
}

func (s *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.embedded, "embedded", "", "embedded chDB data `DIR` (one that no running process holds)")
	fs.StringVar(&s.clickhouse, "clickhouse", "", "ClickHouse server host:port (native protocol)")
	fs.StringVar(&s.chdbLib, "chdb-lib", "", "path of libchdb.so (default $AUDITPIPE_CHDB_LIB or $AUDITPIPE_CACHE/chdb/libchdb.so)")
	fs.StringVar(&s.user, "user", "default", "ClickHouse user")
	s.password = config.Secret(os.Getenv("CLICKHOUSE_PASSWORD"))
	fs.Var(&s.password, "password", "ClickHouse password (default $CLICKHOUSE_PASSWORD; never printed)")
	fs.StringVar(&s.database, "database", "default", "ClickHouse database")
}

// errNoStore says which stores a client can name instead of opening one
// it was not told about.
var errNoStore = errors.New("no store given: name one with --embedded DIR (a chDB directory, e.g. data/run/chdb after make run) or --clickhouse HOST:PORT")

func (s *storeFlags) config() (clickhouse.StoreConfig, error) {
	if s.embedded != "" && s.clickhouse != "" {
		return clickhouse.StoreConfig{}, errors.New("--embedded and --clickhouse exclude each other")
	}
	if s.embedded == "" && s.clickhouse == "" {
		return clickhouse.StoreConfig{}, errNoStore
	}
	st := clickhouse.DefaultStoreConfig()
	st.Embedded.Lib = s.chdbLib
	if s.embedded != "" {
		st.Embedded.Dir = s.embedded
	}
	if s.clickhouse != "" {
		st.ClickHouse.Addr = []string{s.clickhouse}
		st.ClickHouse.Username = s.user
		st.ClickHouse.Password = s.password
		st.ClickHouse.Database = s.database
	}
	if err := st.Validate("store"); err != nil {
		return st, err
	}
	st.RetentionDays = -1 // a client never changes the store's retention
	return st, nil
}

// runIndex is `auditpipe index [--embedded DIR | --clickhouse ADDR] [FILE|-]`:
// it loads contract events (JSON lines, or dead letters holding one) into
// ClickHouse, idempotently by event_id.
func runIndex(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("index", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var sf storeFlags
	sf.register(fs)
	batch := fs.Int("batch", 10000, "rows per insert")
	rejects := fs.String("rejects", "", "write rejected lines as dead letters (JSON lines) to this file, made 0600; a symbolic link or another user's file is refused (default: stderr)")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: auditpipe index [--embedded DIR | --clickhouse ADDR] [flags] [FILE|-]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, e.args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return errUsage
	}
	st, err := sf.config()
	if err != nil {
		return err
	}
	in, name := e.stdin, "-"
	var size int64
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		in, name = f, fs.Arg(0)
	}
	var rw io.Writer = e.stderr
	if *rejects != "" {
		// The rejected lines are events (commands, keystrokes): 0600,
		// never through a link planted at the path.
		f, err := privfile.Create(*rejects)
		if err != nil {
			return err
		}
		defer f.Close()
		rw = f
	}
	eng, err := clickhouse.Open(ctx, st)
	if err != nil {
		return err
	}
	defer eng.Close()
	if _, err := clickhouse.MigrateLayout(ctx, eng, st.Layout(), st.RetentionDays, e.log); err != nil {
		return err
	}
	start := time.Now()
	opt := indexer.LoadOptions{BatchRows: *batch, Source: name, Rejects: rw}
	tty := isTerminal(e.stderr)
	if tty {
		opt.Progress = func(s indexer.LoadStats) {
			rate := float64(s.Inserted) / time.Since(start).Seconds()
			if size > 0 {
				fmt.Fprintf(e.stderr, "\r%s %5.1f%%  %d events  %.0f/s ", bar(float64(s.Bytes)/float64(size), 30), 100*float64(s.Bytes)/float64(size), s.Inserted, rate)
			} else {
				fmt.Fprintf(e.stderr, "\r%d events  %.0f/s ", s.Inserted, rate)
			}
		}
	}
	stats, err := indexer.Load(ctx, eng, in, opt)
	if tty {
		fmt.Fprintln(e.stderr)
	}
	fmt.Fprintf(e.stderr, "indexed %d events from %s in %s, %d rejected\n", stats.Inserted, name, time.Since(start).Round(time.Millisecond), stats.Rejected)
	if err != nil {
		return err
	}
	if stats.Rejected > 0 {
		return fmt.Errorf("%d line(s) rejected", stats.Rejected)
	}
	return nil
}

func bar(frac float64, width int) string {
	n := int(frac*float64(width) + 0.5)
	n = max(0, min(n, width))
	b := make([]byte, 0, width+2)
	b = append(b, '[')
	for i := 0; i < width; i++ {
		if i < n {
			b = append(b, '#')
		} else {
			b = append(b, ' ')
		}
	}
	return string(append(b, ']'))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
