package clickhouse

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
)

// Embedded is the chDB engine: ClickHouse in this process, on a data
// directory that only this process can open. Open it once (OpenEmbedded)
// and share it between the indexer and named queries; the HTTP query
// endpoint takes a second connection of its own (OpenQuerySession).
type Embedded struct {
	sess *chdb.Session
	lib  string // libchdb's path, for OpenQuerySession
	// ctl, on a query session (OpenQuerySession), is the session that
	// opened it: a cancelled query of this one is killed through it, as
	// this one is busy running it. Nil on the first session, whose
	// queries are not cancellable.
	ctl *chdb.Session
	tag string // prefix of the tags of this session's cancellable queries
}

var _ Engine = (*Embedded)(nil)

// OpenEmbedded loads libchdb.so (found by chdb.FindLibrary(libPath): the
// flag, $AUDITPIPE_CHDB_LIB, or $AUDITPIPE_CACHE/chdb/libchdb.so) and opens
// dir, creating it when needed. The session runs with final = 1, so every
// SELECT sees each event once even before ReplacingMergeTree has merged.
func OpenEmbedded(libPath, dir string) (*Embedded, error) {
	return OpenEmbeddedWithConfig(libPath, dir, "")
}

// OpenEmbeddedWithConfig is OpenEmbedded with a ClickHouse configuration
// file for chDB (clusters in remote_servers, macros): what a test needs to
// run the cluster layout's Distributed-over-local tables on a one-node
// cluster of this process.
func OpenEmbeddedWithConfig(libPath, dir, configFile string) (*Embedded, error) {
	p, err := chdb.FindLibrary(libPath)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: embedded engine: %w", err)
	}
	s, err := chdb.OpenWithConfig(p, dir, configFile)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: embedded engine: %w", err)
	}
	e := &Embedded{sess: s, lib: p}
	if _, err := s.Query("SET final = 1", ""); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("clickhouse: embedded engine: %w", err)
	}
	return e, nil
}

// OpenQuerySession opens a second connection to e's data directory in this
// process, for the query endpoint: its queries run beside e's (the
// indexer's inserts go on while a slow query runs; chDB 26.7 runs two
// connections' statements concurrently), and they honour their context:
// when it is done, the query is killed (KILL QUERY, through e's session,
// as chDB's own cancel entry, chdb_stream_cancel_query, only returns once
// the statement has finished). Close it before e.
func (e *Embedded) OpenQuerySession() (*Embedded, error) {
	if e.sess.Dir() == "" {
		return nil, errors.New("clickhouse: embedded engine: a query session needs a data directory")
	}
	s, err := chdb.Open(e.lib, e.sess.Dir())
	if err != nil {
		return nil, fmt.Errorf("clickhouse: embedded engine: query session: %w", err)
	}
	if _, err := s.Query("SET final = 1", ""); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("clickhouse: embedded engine: query session: %w", err)
	}
	return &Embedded{sess: s, lib: e.lib, ctl: e.sess, tag: "auditpipe-q:" + randomHex(8) + ":"}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return hex.EncodeToString(b)
}

// QueryStats describe a query's result as chDB counts it. chDB's
// chdb_result_rows_read and chdb_result_bytes_read count the rows and
// (uncompressed) bytes of the result, not of what was read: measured on
// 26.7, SELECT sum(number) FROM numbers(100000) gives 1 and 8.
type QueryStats struct {
	Rows, Bytes uint64
	Elapsed     time.Duration
}

// query runs sql on e's session, with params when params is not nil. On a
// query session the statement is tagged with a leading comment, and
// killed by that tag (through e.ctl) when ctx is done before it ends (the
// error then wraps ctx's) or when the session is closed.
func (e *Embedded) query(ctx context.Context, sql, format string, params []Param) (chdb.Result, error) {
	return e.queryLimit(ctx, sql, format, params, 0)
}

// queryLimit is query with the output bounded by maxOutput bytes (> 0:
// streamed, see chdb.Session.QueryLimit; format must be Streamable).
func (e *Embedded) queryLimit(ctx context.Context, sql, format string, params []Param, maxOutput int64) (chdb.Result, error) {
	do := func(sql string) (chdb.Result, error) {
		if maxOutput > 0 {
			return e.sess.QueryLimit(sql, format, params, maxOutput)
		}
		if params != nil {
			return e.sess.QueryParams(sql, format, params)
		}
		return e.sess.Query(sql, format)
	}
	if e.ctl == nil {
		return do(sql)
	}
	// Tagged even when ctx cannot end, so that Close can kill it.
	tag := e.tag + randomHex(8)
	if ctx.Done() == nil {
		return do("/* " + tag + " */ " + sql)
	}
	if err := ctx.Err(); err != nil {
		return chdb.Result{}, fmt.Errorf("clickhouse: query not started: %w", err)
	}
	done := make(chan struct{})
	killed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(killed)
		// Again until the query returns: the first KILL may come before
		// chDB has registered the query.
		for {
			e.kill(tag)
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	r, err := do("/* " + tag + " */ " + sql)
	close(done)
	if !stop() {
		<-killed
	}
	if err != nil && ctx.Err() != nil {
		return r, fmt.Errorf("clickhouse: query cancelled (%w): %w", context.Cause(ctx), err)
	}
	return r, err
}

// kill kills the running queries of e whose text starts with the comment
// of tag (a prefix of one), asynchronously, through e.ctl.
func (e *Embedded) kill(tag string) {
	q := "KILL QUERY WHERE startsWith(query, " + QuoteString("/* "+tag) + ") ASYNC"
	_, _ = e.ctl.Query(q, "TabSeparated") // nothing to do about a failed kill but try again
}

// Dir returns the data directory.
func (e *Embedded) Dir() string { return e.sess.Dir() }

// Exec implements Engine.
func (e *Embedded) Exec(_ context.Context, sql string) error {
	if _, err := e.sess.Query(sql, ""); err != nil {
		return err
	}
	return nil
}

// QueryFormat runs sql and returns its output in a ClickHouse format
// (JSONEachRow, TabSeparated, CSV, JSON, Native, …); a FORMAT clause in the
// query wins. It is what the HTTP query endpoint serves. On a query
// session, the query is killed when ctx is done.
func (e *Embedded) QueryFormat(ctx context.Context, sql, format string) ([]byte, error) {
	r, err := e.query(ctx, sql, format, nil)
	if err != nil {
		return nil, err
	}
	return r.Data, nil
}

// QueryFormatStats is QueryFormatParams that also returns the result's
// size.
func (e *Embedded) QueryFormatStats(ctx context.Context, sql, format string, params []Param) ([]byte, QueryStats, error) {
	if params == nil {
		params = []Param{}
	}
	r, err := e.query(ctx, sql, format, params)
	st := QueryStats{Rows: r.RowsRead, Bytes: r.BytesRead, Elapsed: time.Duration(r.Elapsed * float64(time.Second))}
	if err != nil {
		return nil, st, err
	}
	return r.Data, st, nil
}

// ErrOutputLimit is QueryFormatStatsLimit's error (wrapped) when the
// formatted output passes its bound.
var ErrOutputLimit = chdb.ErrOutputLimit

// Streamable reports whether QueryFormatStatsLimit can answer in format
// (its streamed chunks concatenate to the whole answer).
func Streamable(format string) bool { return chdb.Streamable(format) }

// QueryFormatStatsLimit is QueryFormatStats with the formatted output
// bounded as chDB produces it: streamed chunk by chunk, and cancelled with
// an error wrapping ErrOutputLimit once it passes maxOutput bytes, so
// that neither chDB nor the process ever holds more than about maxOutput
// bytes of it. format, and a FORMAT clause in sql if any, must be
// Streamable.
func (e *Embedded) QueryFormatStatsLimit(ctx context.Context, sql, format string, params []Param, maxOutput int64) ([]byte, QueryStats, error) {
	if maxOutput <= 0 {
		return e.QueryFormatStats(ctx, sql, format, params)
	}
	r, err := e.queryLimit(ctx, sql, format, params, maxOutput)
	st := QueryStats{Rows: r.RowsRead, Bytes: r.BytesRead, Elapsed: time.Duration(r.Elapsed * float64(time.Second))}
	if err != nil {
		return nil, st, err
	}
	return r.Data, st, nil
}

// Param is a query parameter, the value of a {name:Type} placeholder in
// ClickHouse's escaped text form (as the HTTP interface's param_name). The
// engine binds it after parsing: it never becomes SQL text.
type Param = chdb.Param

// QueryFormatParams is QueryFormat with query parameters bound by chDB;
// sql may hold binary data (an INSERT's rows after FORMAT Native).
func (e *Embedded) QueryFormatParams(ctx context.Context, sql, format string, params []Param) ([]byte, error) {
	if params == nil {
		params = []Param{}
	}
	r, err := e.query(ctx, sql, format, params)
	if err != nil {
		return nil, err
	}
	return r.Data, nil
}

// Query implements Engine.
func (e *Embedded) Query(ctx context.Context, sql string) (*Result, error) {
	b, err := e.QueryFormat(ctx, sql, "JSONCompact")
	if err != nil {
		return nil, err
	}
	return DecodeJSONCompact(b)
}

// QueryParams implements ParamQuerier: params are bound by chDB.
func (e *Embedded) QueryParams(ctx context.Context, sql string, params []Param) (*Result, error) {
	b, err := e.QueryFormatParams(ctx, sql, "JSONCompact", params)
	if err != nil {
		return nil, err
	}
	return DecodeJSONCompact(b)
}

// The inserts of InsertEvents, around their quoted token.
const (
	eventsInsertHead = "INSERT INTO audit_events SETTINGS insert_deduplication_token = "
	eventsInsertTail = ", date_time_input_format = 'best_effort', input_format_skip_unknown_fields = 0 FORMAT JSONEachRow\n"

	eventIDsInsertHead = "INSERT INTO event_ids SETTINGS insert_deduplication_token = "
	eventIDsInsertTail = " FORMAT TSV\n"
)

// InsertEvents implements Engine: the events' ids go to event_ids first
// (see migration 0010), then the events' own JSON goes to chDB as it came,
// with the Kafka position spliced in, so no re-encoding is needed. Both
// inserts carry token.
func (e *Embedded) InsertEvents(_ context.Context, token string, rows []EventRow) error {
	qt := QuoteString(token)
	ids, err := eventIDsInsert(qt, rows)
	if err != nil {
		return err
	}
	if _, err := e.sess.QueryBytes(ids, ""); err != nil {
		return fmt.Errorf("insert into event_ids: %w", err)
	}
	_, err = e.sess.QueryBytes(eventsInsert(qt, rows), "")
	return err
}

// eventIDsInsert returns the NUL-terminated insert of rows' keys into
// event_ids, with the quoted token qt.
func eventIDsInsert(qt string, rows []EventRow) ([]byte, error) {
	// A key is at most 20 digits and a second 11, with a tab and a newline.
	ids := make([]byte, 0, len(eventIDsInsertHead)+len(qt)+len(eventIDsInsertTail)+len(rows)*33+1)
	ids = append(append(append(ids, eventIDsInsertHead...), qt...), eventIDsInsertTail...)
	for i := range rows {
		k, ok := EventIDKey(rows[i].Event.EventID)
		if !ok {
			return nil, fmt.Errorf("row %d (event_id %q): %w: event_id does not start with 16 hex digits", i, rows[i].Event.EventID, errRowAppend)
		}
		ids = strconv.AppendUint(ids, k, 10)
		ids = append(ids, '\t')
		ids = strconv.AppendInt(ids, rows[i].TS.Unix(), 10) // a DateTime as Unix seconds: cheaper than formatting it
		ids = append(ids, '\n')
	}
	return append(ids, 0), nil
}

// What eventsInsert adds to a row's JSON, at most (an Int32 is 11
// characters, an Int64 20).
const (
	positionMax = len(`,"kafka_partition":`) + 11 + len(`,"kafka_offset":`) + 20
	hashExtra   = len(`,"content_hash":""`)
)

// eventsInsert returns the NUL-terminated insert of rows into
// audit_events, with the quoted token qt: each row's JSON with its Kafka
// position and content hash spliced in. Its buffer is sized for the
// statement up front: a batch of 10 000 events is about 9 MB, which
// growing by appends would copy and allocate about twice over.
func eventsInsert(qt string, rows []EventRow) []byte {
	n := len(eventsInsertHead) + len(qt) + len(eventsInsertTail) + 1
	for i := range rows {
		n += len(rows[i].JSON) + 1 // the newline
		if rows[i].Partition >= 0 {
			n += positionMax
		}
		if rows[i].ContentHash != "" {
			n += hashExtra + len(rows[i].ContentHash)
		}
	}
	b := append(append(append(make([]byte, 0, n), eventsInsertHead...), qt...), eventsInsertTail...)
	for i := range rows {
		r := &rows[i]
		j := bytes.TrimSpace(r.JSON)
		b = append(b, j[:len(j)-1]...)
		if r.Partition >= 0 {
			b = append(b, `,"kafka_partition":`...)
			b = strconv.AppendInt(b, int64(r.Partition), 10)
			b = append(b, `,"kafka_offset":`...)
			b = strconv.AppendInt(b, r.Offset, 10)
		}
		if r.ContentHash != "" {
			b = append(b, `,"content_hash":"`...)
			b = append(b, r.ContentHash...)
			b = append(b, '"')
		}
		b = append(b, '}', '\n')
	}
	return append(b, 0)
}

// InsertMessages implements Engine.
func (e *Embedded) InsertMessages(_ context.Context, token string, rows []MessageRow) error {
	n := 128
	for i := range rows {
		n += len(rows[i].Payload) + len(rows[i].Key) + 128
	}
	b := fmt.Appendf(make([]byte, 0, n), "INSERT INTO pipeline_messages SETTINGS insert_deduplication_token = %s FORMAT JSONEachRow\n", QuoteString(token))
	for i := range rows {
		r := &rows[i]
		b = append(b, `{"topic":`...)
		b = appendJSONString(b, r.Topic)
		b = append(b, `,"partition":`...)
		b = strconv.AppendInt(b, int64(r.Partition), 10)
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, r.Offset, 10)
		b = append(b, `,"key":`...)
		b = appendJSONString(b, r.Key)
		b = append(b, `,"ts":"`...)
		b = r.TS.UTC().AppendFormat(b, "2006-01-02 15:04:05.000")
		b = append(b, '"')
		b = append(b, `,"payload":`...)
		b = appendJSONString(b, string(r.Payload))
		b = append(b, '}', '\n')
	}
	b = append(b, 0)
	_, err := e.sess.QueryBytes(b, "")
	return err
}

// Close implements Engine: it closes the chDB session and releases the
// data directory. On a query session, it first kills the session's
// running query, so that Close does not wait for it to finish.
func (e *Embedded) Close() error {
	if e.ctl != nil {
		e.kill(e.tag)
	}
	return e.sess.Close()
}

func appendJSONString(b []byte, s string) []byte {
	j, _ := json.Marshal(s) // a string always encodes
	return append(b, j...)
}

// DecodeJSONCompact decodes ClickHouse's JSONCompact output.
func DecodeJSONCompact(b []byte) (*Result, error) {
	res := &Result{}
	if len(bytes.TrimSpace(b)) == 0 {
		return res, nil
	}
	var v struct {
		Meta []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"meta"`
		Data [][]any `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("clickhouse: decode JSONCompact: %w", err)
	}
	for _, m := range v.Meta {
		res.Columns = append(res.Columns, m.Name)
		res.Types = append(res.Types, m.Type)
	}
	res.Rows = v.Data
	return res, nil
}
