package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/queryapi"
)

// readerFlags are the flags of a client that reads the store: a query
// endpoint (--server, with --token-file), or the store itself (storeFlags).
type readerFlags struct {
	store             storeFlags
	server, tokenFile string
}

func (r *readerFlags) register(fs *flag.FlagSet) {
	r.store.register(fs)
	fs.StringVar(&r.server, "server", "", "query endpoint URL of a running all-in-one or indexer (e.g. http://127.0.0.1:9464/), or a ClickHouse HTTP interface")
	fs.StringVar(&r.tokenFile, "token-file", "", "`FILE` holding the endpoint's bearer token, with --server (default $AUDITPIPE_TOKEN; the all-in-one writes DATA/admin.token on first start)")
}

// open returns the reader the flags name and the function that releases
// it.
func (r *readerFlags) open(ctx context.Context) (clickhouse.ParamQuerier, func() error, error) {
	if r.server != "" {
		if r.store.embedded != "" || r.store.clickhouse != "" {
			return nil, nil, errors.New("--server excludes --embedded and --clickhouse")
		}
		tok, err := readToken(r.tokenFile)
		if err != nil {
			return nil, nil, err
		}
		return &queryapi.HTTPClient{URL: r.server, Token: tok}, func() error { return nil }, nil
	}
	st, err := r.store.config()
	if errors.Is(err, errNoStore) {
		return nil, nil, fmt.Errorf("%w, or --server URL (a running all-in-one or indexer: --server http://127.0.0.1:9464/)", err)
	}
	if err != nil {
		return nil, nil, err
	}
	eng, err := clickhouse.Open(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	return eng, eng.Close, nil
}
