package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Server is the engine for a ClickHouse server, through clickhouse-go/v2
// over the native or the HTTP protocol.
type Server struct {
	conn driver.Conn
}

var _ Engine = (*Server)(nil)

// OpenServer connects to the servers of cfg and checks the connection with
// a ping.
func OpenServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	return openServer(ctx, cfg, nil)
}

// clusterSettings are the connection settings of a server engine on a
// cluster (StoreConfig.Cluster): an INSERT into a Distributed table returns
// only once every shard's local table has its rows (not when they are
// queued on the node's disk), so the indexer commits Kafka offsets only
// for rows that are on their shard; and reads and inserts go to the
// replicas in configuration order, so the indexer's first-write-wins
// lookup reads the replica it wrote to (see README, "Beyond one server").
var clusterSettings = clickhouse.Settings{
	"distributed_foreground_insert": 1,
	"load_balancing":                "in_order",
}

func openServer(ctx context.Context, cfg ServerConfig, extra clickhouse.Settings) (*Server, error) {
	tc, err := cfg.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("clickhouse: clickhouse: %w", err)
	}
	opt := &clickhouse.Options{
		Addr:        cfg.Addr,
		Protocol:    clickhouse.Native,
		TLS:         tc,
		DialTimeout: cfg.DialTimeout,
		Auth: clickhouse.Auth{
			Database: cfg.Database,
			Username: cfg.Username,
			Password: cfg.Password.Reveal(),
		},
		// Every SELECT through this engine sees each event once.
		Settings: clickhouse.Settings{"final": 1},
	}
	for k, v := range extra {
		opt.Settings[k] = v
	}
	if cfg.Protocol == "http" {
		opt.Protocol = clickhouse.HTTP
	}
	if opt.DialTimeout == 0 {
		opt.DialTimeout = 10 * time.Second
	}
	conn, err := clickhouse.Open(opt)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: clickhouse: open: %w", err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("clickhouse: clickhouse: ping %v: %w", cfg.Addr, err)
	}
	return &Server{conn: conn}, nil
}

// Exec implements Engine.
func (s *Server) Exec(ctx context.Context, sql string) error {
	return s.conn.Exec(ctx, sql)
}

var eventColumns = "ts, event, layer, host, req_auth_id, loginid, event_id, seq, srchost, desthost, res, " +
	"pid, ppid, ses, rec_id, tty, euid, exe, cwd, title, args, keys, time, raw_data, kafka_partition, kafka_offset, " +
	"escaped, prev_hash, content_hash, chain_first, chain_last, chain_count, chain_head, key_id, sig"

// InsertEvents implements Engine with a typed batch.
func (s *Server) InsertEvents(ctx context.Context, token string, rows []EventRow) error {
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token}))
	if err := s.insertEventIDs(ctx, rows); err != nil {
		return err
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO audit_events ("+eventColumns+")")
	if err != nil {
		return err
	}
	defer func() { _ = b.Abort() }()
	for i := range rows {
		r := &rows[i]
		e := &r.Event
		args := e.Args
		if args == nil {
			args = []string{}
		}
		if err := b.Append(r.TS, string(e.Event), e.Layer, e.Host, e.ReqAuthID, e.LoginID, e.EventID, e.Seq,
			e.SrcHost, e.DestHost, e.Res, e.PID, e.PPID, e.Ses, e.RecID, e.TTY, e.EUID, e.Exe, e.Cwd,
			e.Title, args, e.Keys, e.Time, e.RawData, r.Partition, r.Offset,
			append([]string{}, e.Escaped...), e.PrevHash, r.ContentHash, e.ChainFirst, e.ChainLast, e.ChainCount, e.ChainHead, e.KeyID, e.Sig); err != nil {
			return fmt.Errorf("row %d (event_id %s): %w: %w", i, e.EventID, errRowAppend, err)
		}
	}
	return b.Send()
}

// insertEventIDs inserts the ids of rows into event_ids, before the rows
// themselves (see migration 0010), with ctx's deduplication token.
func (s *Server) insertEventIDs(ctx context.Context, rows []EventRow) error {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO event_ids (id, ts)")
	if err != nil {
		return fmt.Errorf("insert into event_ids: %w", err)
	}
	defer func() { _ = b.Abort() }()
	for i := range rows {
		k, ok := EventIDKey(rows[i].Event.EventID)
		if !ok {
			return fmt.Errorf("row %d (event_id %q): %w: event_id does not start with 16 hex digits", i, rows[i].Event.EventID, errRowAppend)
		}
		if err := b.Append(k, rows[i].TS.UTC().Truncate(time.Second)); err != nil {
			return fmt.Errorf("row %d (event_id %s): %w: %w", i, rows[i].Event.EventID, errRowAppend, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert into event_ids: %w", err)
	}
	return nil
}

// InsertMessages implements Engine.
func (s *Server) InsertMessages(ctx context.Context, token string, rows []MessageRow) error {
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token}))
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO pipeline_messages (topic, partition, offset, key, ts, payload)")
	if err != nil {
		return err
	}
	defer func() { _ = b.Abort() }()
	for i := range rows {
		r := &rows[i]
		if err := b.Append(r.Topic, r.Partition, r.Offset, r.Key, r.TS, string(r.Payload)); err != nil {
			return fmt.Errorf("row %d: %w: %w", i, errRowAppend, err)
		}
	}
	return b.Send()
}

// Query implements Engine.
func (s *Server) Query(ctx context.Context, sql string) (*Result, error) {
	return s.query(ctx, sql)
}

// QueryParams implements ParamQuerier: the parameters go to the server
// apart from the statement (the native protocol's query parameters, or
// param_NAME over HTTP), and the server binds them.
func (s *Server) QueryParams(ctx context.Context, sql string, params []Param) (*Result, error) {
	p := make(clickhouse.Parameters, len(params))
	for _, x := range params {
		p[x.Name] = x.Value
	}
	return s.query(clickhouse.Context(ctx, clickhouse.WithParameters(p)), sql)
}

func (s *Server) query(ctx context.Context, sql string) (*Result, error) {
	rows, err := s.conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	res := &Result{}
	cts := rows.ColumnTypes()
	for _, ct := range cts {
		res.Columns = append(res.Columns, ct.Name())
		res.Types = append(res.Types, ct.DatabaseTypeName())
	}
	for rows.Next() {
		ptrs := make([]any, len(cts))
		for i, ct := range cts {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]any, len(cts))
		for i, p := range ptrs {
			row[i] = reflect.ValueOf(p).Elem().Interface()
		}
		res.Rows = append(res.Rows, row)
	}
	return res, rows.Err()
}

// Close implements Engine.
func (s *Server) Close() error { return s.conn.Close() }

// isServerException reports whether err is ClickHouse refusing a query (as
// opposed to a connection failure), i.e. something about the data.
func isServerException(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex)
}

// serverException returns the code and text of the ClickHouse exception in
// err, if there is one.
func serverException(err error) (code int32, msg string, ok bool) {
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) {
		return 0, "", false
	}
	return ex.Code, ex.Message, true
}
