package queryapi

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/internal/config"
)

// FormatQuerier runs a query and returns its output in a ClickHouse format.
// *clickhouse.Embedded is one, and so is HTTPClient.
type FormatQuerier interface {
	QueryFormat(ctx context.Context, sql, format string) ([]byte, error)
}

// ParamQuerier is a FormatQuerier that also binds query parameters
// ({name:Type} placeholders) and takes binary data in sql (an INSERT's rows
// after FORMAT Native). *clickhouse.Embedded is one. Without it, the
// endpoint refuses query parameters and binary inserts.
type ParamQuerier interface {
	FormatQuerier
	QueryFormatParams(ctx context.Context, sql, format string, params []clickhouse.Param) ([]byte, error)
}

// QueryHandlerOptions tune NewQueryHandler.
type QueryHandlerOptions struct {
	// AllowWrites opens the endpoint to writers that Writers authenticates:
	// their statements may also be INSERT INTO a table, CREATE, ALTER,
	// DROP, TRUNCATE and OPTIMIZE of tables, views and databases (the
	// indexer's migrations and inserts), still with no function that
	// reaches files, URLs, other servers or programs, no table engine but
	// MergeTree, Memory and Null, and settings from a short list
	// (guardStatement). Requests without credentials stay read-only;
	// requests with credentials that Writers refuses are refused. Default
	// false: the endpoint is read-only for everyone, and credentials are
	// not looked at. The default user with no password (what ClickHouse
	// clients send when given no credentials) is anonymous. For test instances; nothing in the binary sets it.
	AllowWrites bool
	// Writers authenticates writers when AllowWrites is set. Nil refuses
	// every write.
	Writers Authenticator
	// MaxQueryBytes bounds the query text (URL plus body). Default 1 MiB.
	MaxQueryBytes int64
	// MaxInsertBytes bounds a writer's INSERT data (the body after an
	// INSERT … FORMAT in the URL). Default 64 MiB.
	MaxInsertBytes int64
	// Limits are forced on every reader's statement; a zero field takes
	// its value from DefaultLimits (there is no "unlimited").
	Limits Limits
	// Registry, when set, gets the endpoint's metrics:
	// auditpipe_query_requests_total{result} and
	// auditpipe_query_duration_seconds.
	Registry prometheus.Registerer
	// QueryLog, when set, also gets every statement's log as a row of the
	// store's query_log table.
	QueryLog *QueryLogWriter
	// MaxQueriesPerReader is how many statements of one reader (its
	// authenticated name, or its remote host without one) run at once;
	// one more is answered 429 with code 202 (TOO_MANY_SIMULTANEOUS_QUERIES)
	// at once, not queued. Default DefaultMaxQueriesPerReader: half of
	// the pool's sessions (clickhouse.DefaultQuerySessions), so that one
	// reader's slow queries never hold every session.
	MaxQueriesPerReader int
	// MaxOutputBytes bounds one statement's answer as chDB formats it (in
	// the requested format; max_result_bytes bounds the result before
	// formatting only, and JSON of a narrow result is many times larger):
	// a larger answer is refused with code 396 (TOO_MANY_ROWS_OR_BYTES).
	// Default DefaultMaxOutputBytes.
	MaxOutputBytes int64
	// ResultBudget is the process's budget of formatted answers: each
	// statement reserves resultHold(MaxOutputBytes) of it before it runs
	// (three times MaxOutputBytes, four for Native re-encoded), keeps its
	// answer's size (twice for Native) while the answer is sent, and
	// frees it once answered; with no room within ResultWait it is
	// answered 503 with code 745 (SERVER_OVERLOADED) and not run. Give
	// every handler of a process the same one. Default: a budget of
	// DefaultResultBudget of this handler's own, without metrics.
	ResultBudget *ResultBudget
	// ResultWait is how long a statement waits for room in ResultBudget
	// (while its request lasts). Default DefaultResultWait.
	ResultWait time.Duration
}

// codeServerOverloaded is ClickHouse's SERVER_OVERLOADED: the endpoint
// has no room for the statement now (query log full, result budget
// taken); answered with 503 and Retry-After.
const codeServerOverloaded = 745

// codeTooManyRowsOrBytes is ClickHouse's TOO_MANY_ROWS_OR_BYTES: a result
// over a limit.
const codeTooManyRowsOrBytes = 396

// DefaultMaxQueriesPerReader is QueryHandlerOptions.MaxQueriesPerReader's
// default.
const DefaultMaxQueriesPerReader = 2

// DefaultLimits are the limits of a reader's statement unless
// QueryHandlerOptions.Limits says otherwise: 30 s, 1 GiB of memory, a
// million rows or 256 MiB of result, and half the CPUs (at least one) for
// max_threads.
func DefaultLimits() Limits {
	return Limits{MaxExecutionTime: 30 * time.Second, MaxMemoryUsage: 1 << 30, MaxResultRows: 1_000_000, MaxResultBytes: 256 << 20,
		MaxThreads: int64(max(1, runtime.NumCPU()/2))}
}

// StatsQuerier is a ParamQuerier that also says the size of a query's
// result, for the endpoint's log. *clickhouse.Embedded is one.
type StatsQuerier interface {
	ParamQuerier
	QueryFormatStats(ctx context.Context, sql, format string, params []clickhouse.Param) ([]byte, clickhouse.QueryStats, error)
}

// LimitQuerier is a StatsQuerier that can bound a statement's formatted
// output as it is produced (streamed, cancelled once over maxOutput: the
// error wraps clickhouse.ErrOutputLimit), for the formats that
// clickhouse.Streamable accepts. *clickhouse.QueryPool is one; without
// it the endpoint measures the whole answer after the engine built it.
type LimitQuerier interface {
	StatsQuerier
	QueryFormatStatsLimit(ctx context.Context, sql, format string, params []clickhouse.Param, maxOutput int64) ([]byte, clickhouse.QueryStats, error)
}

// NewQueryHandler serves q in the shape of ClickHouse's HTTP interface, so
// `auditpipe query --server URL`, curl, clickhouse-go/v2 (HTTP protocol),
// clickhouse-connect and Grafana's ClickHouse data source can query an
// embedded store through the process that owns it:
//
//	GET  /?query=SQL[&default_format=FMT][&param_x=V][&setting=V]…
//	POST /?query=SQL-head   body: rest of the SQL (or the whole SQL)
//	POST /?query=INSERT … FORMAT F   body: the rows (writers only)
//	GET  /ping              "Ok.\n"
//
// The output format is the query's FORMAT clause, else default_format, else
// TabSeparated; any format chDB writes (Native is rewritten for the
// client_protocol_version the client asks for, see nativeForRevision).
// param_NAME binds {NAME:Type} in the query (bound by chDB after parsing,
// never spliced into the SQL). Other URL parameters are settings, checked
// against the guard's allow-list and added to the statement's settings;
// query_id is echoed in X-ClickHouse-Query-Id; database, session_id,
// wait_end_of_query, send_progress_in_http_headers and the other transport
// parameters of ClickHouse's HTTP interface are accepted and ignored
// (transportParams). Compression: request bodies in gzip or deflate are
// read; ClickHouse's own block compression (compress=1, decompress=1) is
// refused, so clients fall back to none; responses are not compressed.
//
// Errors answer 500 (403 for a refused statement, 516 for bad credentials)
// with the ClickHouse exception text and the X-ClickHouse-Exception-Code
// header. Every statement goes through the guard (guardStatement) first.
//
// Readers are authenticated in front of the handler (internal/auth; the
// identity is logged with every query); the handler also refuses (403) what
// a browser sends on behalf of another site: see crossSite. Clients that are
// not browsers (curl, HTTPClient, clickhouse-go) send neither Origin nor
// Sec-Fetch-Site and are not affected.
func NewQueryHandler(q FormatQuerier, log *slog.Logger, opt QueryHandlerOptions) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.MaxQueryBytes <= 0 {
		opt.MaxQueryBytes = 1 << 20
	}
	if opt.MaxInsertBytes <= 0 {
		opt.MaxInsertBytes = 64 << 20
	}
	d := DefaultLimits()
	if opt.Limits.MaxExecutionTime <= 0 {
		opt.Limits.MaxExecutionTime = d.MaxExecutionTime
	}
	if opt.Limits.MaxMemoryUsage <= 0 {
		opt.Limits.MaxMemoryUsage = d.MaxMemoryUsage
	}
	if opt.Limits.MaxResultRows <= 0 {
		opt.Limits.MaxResultRows = d.MaxResultRows
	}
	if opt.Limits.MaxResultBytes <= 0 {
		opt.Limits.MaxResultBytes = d.MaxResultBytes
	}
	if opt.Limits.MaxThreads <= 0 {
		opt.Limits.MaxThreads = d.MaxThreads
	}
	if opt.MaxQueriesPerReader <= 0 {
		opt.MaxQueriesPerReader = DefaultMaxQueriesPerReader
	}
	if opt.MaxOutputBytes <= 0 {
		opt.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if opt.ResultBudget == nil {
		opt.ResultBudget = NewResultBudget(DefaultResultBudget, nil)
	}
	if opt.ResultWait <= 0 {
		opt.ResultWait = DefaultResultWait
	}
	h := &queryHandler{q: q, log: log, opt: opt, metrics: newQueryMetrics(opt.Registry), running: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "Ok.\n") })
	mux.Handle("/", h)
	return mux
}

type queryHandler struct {
	q       FormatQuerier
	log     *slog.Logger
	opt     QueryHandlerOptions
	metrics *queryMetrics

	mu      sync.Mutex
	running map[string]int // statements running per reader (readerKey)
}

// readerKey names the reader of rec for MaxQueriesPerReader: its
// authenticated name, else the host it connects from.
func readerKey(rec *queryRecord) string {
	if rec.who != "" {
		return "id:" + rec.who
	}
	host, _, err := net.SplitHostPort(rec.remote)
	if err != nil {
		host = rec.remote
	}
	return "addr:" + host
}

// admit counts one more running statement of reader, or reports false
// when reader already runs MaxQueriesPerReader of them; release undoes
// an admit.
func (h *queryHandler) admit(reader string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running[reader] >= h.opt.MaxQueriesPerReader {
		return false
	}
	h.running[reader]++
	return true
}

func (h *queryHandler) release(reader string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running[reader]--; h.running[reader] <= 0 {
		delete(h.running, reader)
	}
}

// transportParams are URL parameters of ClickHouse's HTTP interface that are
// not settings of the query: read by the handler, or accepted and ignored
// (sessions, progress headers, buffering and compression options have no
// meaning for a buffered answer from chDB).
var transportParams = map[string]bool{
	"query": true, "default_format": true, "database": true, "query_id": true, "user": true, "password": true,
	"quota_key": true, "client_protocol_version": true, "session_id": true, "session_timeout": true,
	"session_check": true, "wait_end_of_query": true, "buffer_size": true, "send_progress_in_http_headers": true,
	"http_headers_progress_interval_ms": true, "enable_http_compression": true, "http_zlib_compression_level": true,
	"http_native_compression_disable_checksumming_on_decompress": true, "compress": true, "decompress": true,
	"http_wait_end_of_query": true, "http_response_buffer_size": true, "role": true, "stacktrace": true,
}

// request is one query request, parsed.
type request struct {
	stmt     string // the SQL statement, for the guard
	data     []byte // an INSERT's rows, after stmt (writers only)
	format   string
	revision uint64
	queryID  string
	params   []clickhouse.Param
	settings []Setting
}

func (h *queryHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if why := crossSite(r); why != "" {
		h.log.Warn("query endpoint: refused a cross-site request", "why", why, "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		exception(w, http.StatusForbidden, 497, "cross-site request refused: "+why)
		return
	}
	writer := ""
	if h.opt.AllowWrites {
		if c := credentialsOf(r); !c.IsAnonymous() {
			if h.opt.Writers == nil {
				exception(w, http.StatusUnauthorized, 516, "writes are not enabled: no authenticator configured")
				return
			}
			who, err := h.opt.Writers.Authenticate(r.Context(), c)
			if err != nil {
				h.log.Warn("query endpoint: authentication failed", "user", c.User, "remote", r.RemoteAddr)
				exception(w, http.StatusUnauthorized, 516, c.User+": "+ErrBadCredentials.Error())
				return
			}
			writer = who
		}
	}
	req, status, code, err := h.parse(r, writer != "")
	if err != nil {
		exception(w, status, code, err.Error())
		return
	}
	w.Header().Set("X-ClickHouse-Query-Id", req.queryID)
	if strings.TrimSpace(req.stmt) == "" {
		// ClickHouse answers "Ok." to an empty GET /.
		io.WriteString(w, "Ok.\n")
		return
	}
	rec := newQueryRecord(r.Context(), r.RemoteAddr)
	rec.writer, rec.queryID, rec.sql = writer, req.queryID, req.stmt
	defer h.finish(rec)
	// overloaded answers 503: the endpoint has no room for the statement
	// now, which is not run.
	overloaded := func(err error) {
		rec.result, rec.code, rec.err = resultError, codeServerOverloaded, err
		w.Header().Set("Retry-After", "1")
		exception(w, http.StatusServiceUnavailable, codeServerOverloaded, err.Error())
	}
	if h.opt.QueryLog != nil {
		// No statement runs unless its query_log row has room (issue 9).
		slot, err := h.opt.QueryLog.Reserve(r.Context(), len(req.stmt))
		if err != nil {
			overloaded(fmt.Errorf("statement not run: this endpoint runs a statement only when its query_log row can be kept, and %w; retry later (SERVER_OVERLOADED)", err))
			return
		}
		rec.slot = slot
	}
	refuse := func(err error) {
		rec.result, rec.code, rec.err = resultRefused, 164, err
		exception(w, http.StatusForbidden, 164, err.Error()+" (READONLY)")
	}
	fail := func(err error) {
		code := 1000
		if m := codeRE.FindStringSubmatch(err.Error()); m != nil {
			fmt.Sscan(m[1], &code)
		}
		rec.result, rec.code, rec.err = resultError, code, err
		msg := err.Error()
		if i := strings.Index(msg, "Code: "); i > 0 {
			msg = msg[i:] // ClickHouse's own text, without our context
		}
		if hint := h.limitHint(code); hint != "" {
			msg += " (" + hint + ")"
		}
		exception(w, http.StatusInternalServerError, code, msg)
	}
	run, err := guardStatement(req.stmt, guardOptions{write: writer != "", settings: req.settings, limits: h.opt.Limits})
	if err != nil {
		refuse(err)
		return
	}
	reader := readerKey(rec)
	if !h.admit(reader) {
		rec.result, rec.code = resultError, 202
		rec.err = fmt.Errorf("too many simultaneous queries: this reader already runs %d statements, the endpoint's limit per reader; wait for one to end (TOO_MANY_SIMULTANEOUS_QUERIES)", h.opt.MaxQueriesPerReader)
		exception(w, http.StatusTooManyRequests, 202, rec.err.Error())
		return
	}
	defer h.release(reader)
	if writer == "" {
		// The parser's own reading of the statement (EXPLAIN AST: parses,
		// runs nothing), of text the lexical guard has just accepted.
		if err := h.checkParsed(r.Context(), req); err != nil {
			if errors.Is(err, errRefused) {
				refuse(err)
			} else {
				fail(err)
			}
			return
		}
	}
	format := req.format
	if f := queryFormat(req.stmt); f != "" {
		format = f
	}
	// The answer's room in the process's result budget, before it runs.
	native := strings.EqualFold(format, "Native") && req.revision > 0
	held, err := h.opt.ResultBudget.Acquire(r.Context(), resultHold(h.opt.MaxOutputBytes, native), h.opt.ResultWait)
	if err != nil {
		overloaded(fmt.Errorf("statement not run: %w; retry later (SERVER_OVERLOADED)", err))
		return
	}
	defer held.Release()
	out, st, err := h.run(r.Context(), run, req, format, writer == "")
	rec.rows, rec.bytes = st.Rows, st.Bytes
	overLimit := func(size string) {
		rec.result, rec.code = resultError, codeTooManyRowsOrBytes
		rec.err = fmt.Errorf("the answer is %s bytes in format %s, over this endpoint's limit of %d bytes on one formatted answer (query.max_output_bytes; max_result_bytes bounds the result before formatting only): add a LIMIT, select fewer or shorter columns, aggregate, or ask for a more compact format (TOO_MANY_ROWS_OR_BYTES)",
			size, format, h.opt.MaxOutputBytes)
		exception(w, http.StatusInternalServerError, codeTooManyRowsOrBytes, rec.err.Error())
	}
	if errors.Is(err, clickhouse.ErrOutputLimit) {
		overLimit("more than " + strconv.FormatInt(h.opt.MaxOutputBytes, 10)) // stopped as it passed the limit
		return
	}
	if err != nil {
		fail(err)
		return
	}
	held.Shrink(sentHold(int64(len(out)), native))
	rec.resultBytes = uint64(len(out))
	if int64(len(out)) > h.opt.MaxOutputBytes {
		overLimit(strconv.Itoa(len(out)))
		return
	}
	rec.result = resultOK
	if strings.EqualFold(format, "Native") {
		if out, err = nativeForRevision(out, req.revision); err != nil {
			exception(w, http.StatusInternalServerError, 1000, err.Error())
			return
		}
	}
	w.Header().Set("Content-Type", contentType(format))
	w.Header().Set("X-ClickHouse-Format", format)
	w.Header().Set("X-ClickHouse-Server-Display-Name", "auditpipe")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.Write(out)
}

// parse reads r into a request, or returns the HTTP status, ClickHouse
// error code and error to answer.
func (h *queryHandler) parse(r *http.Request, writer bool) (*request, int, int, error) {
	v := r.URL.Query()
	req := &request{format: v.Get("default_format"), queryID: v.Get("query_id")}
	if req.format == "" {
		req.format = "TabSeparated"
	}
	if !formatNameRE.MatchString(req.format) {
		return nil, http.StatusBadRequest, 73, errors.New("bad default_format")
	}
	if req.queryID == "" {
		req.queryID = newQueryID()
	}
	if p := v.Get("client_protocol_version"); p != "" {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return nil, http.StatusBadRequest, 27, fmt.Errorf("bad client_protocol_version %q", p)
		}
		req.revision = n
	}
	if v.Get("compress") == "1" || v.Get("decompress") == "1" {
		return nil, http.StatusBadRequest, 48, errors.New("ClickHouse block compression (compress, decompress) is not supported by this endpoint: use no compression, or gzip")
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
		return nil, http.StatusBadRequest, 48, errors.New("external data and form-encoded queries are not supported by this endpoint")
	}
	for k, vals := range v {
		switch {
		case transportParams[k]:
		case strings.HasPrefix(k, "param_"):
			req.params = append(req.params, clickhouse.Param{Name: k[len("param_"):], Value: vals[len(vals)-1]})
		default:
			req.settings = append(req.settings, Setting{Name: k, Value: vals[len(vals)-1]})
		}
	}
	// Map order is random: keep the statement (and the log) stable.
	sort.Slice(req.params, func(i, j int) bool { return req.params[i].Name < req.params[j].Name })
	sort.Slice(req.settings, func(i, j int) bool { return req.settings[i].Name < req.settings[j].Name })

	req.stmt = v.Get("query")
	if r.Method == http.MethodPost {
		body, err := bodyReader(r)
		if err != nil {
			return nil, http.StatusBadRequest, 36, err
		}
		// The body of an INSERT … FORMAT in the URL is its rows, not SQL: the
		// guard sees the statement alone (and refuses it unless writer).
		limit := h.opt.MaxQueryBytes
		insert := req.stmt != "" && isInsertWithFormat(req.stmt)
		if insert && writer {
			limit = h.opt.MaxInsertBytes
		}
		b, err := io.ReadAll(io.LimitReader(body, limit+1))
		if err != nil {
			return nil, http.StatusBadRequest, 1000, fmt.Errorf("read body: %w", err)
		}
		if int64(len(b)) > limit {
			return nil, http.StatusRequestEntityTooLarge, 62, errors.New("request too large")
		}
		switch {
		case insert:
			req.data = b
		case req.stmt != "" && len(b) > 0:
			req.stmt += "\n" + string(b)
		default:
			req.stmt += string(b)
		}
	}
	if int64(len(req.stmt)) > h.opt.MaxQueryBytes {
		return nil, http.StatusRequestEntityTooLarge, 62, errors.New("query too large")
	}
	if strings.ContainsRune(req.stmt, 0) {
		return nil, http.StatusBadRequest, 27, errors.New("query contains a NUL byte")
	}
	return req, 0, 0, nil
}

// bodyReader returns r's body, decoded when it has a Content-Encoding of
// gzip or deflate (zlib, as ClickHouse reads it).
func bodyReader(r *http.Request) (io.Reader, error) {
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity", "none":
		return r.Body, nil
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, fmt.Errorf("Content-Encoding gzip: %w", err)
		}
		return zr, nil
	case "deflate":
		zr, err := zlib.NewReader(r.Body)
		if err != nil {
			return nil, fmt.Errorf("Content-Encoding deflate: %w", err)
		}
		return zr, nil
	default:
		return nil, fmt.Errorf("Content-Encoding %q is not supported by this endpoint (gzip, deflate, or none)", enc)
	}
}

// isInsertWithFormat reports whether stmt is an INSERT whose last clause is
// FORMAT name: its rows are the request body.
func isInsertWithFormat(stmt string) bool {
	toks, err := lexSQL(stmt)
	if err != nil || len(toks) < 2 || !strings.EqualFold(toks[0].text, "INSERT") {
		return false
	}
	if toks[len(toks)-1].text == ";" {
		toks = toks[:len(toks)-1]
	}
	n := len(toks)
	return n >= 2 && toks[n-2].kind == tokWord && strings.EqualFold(toks[n-2].text, "FORMAT")
}

// run runs the guarded statement with the request's parameters and data,
// and returns its output and what it read (when the engine says). format
// is the answer's (the statement's FORMAT clause, else the request's): a
// reader's SELECT whose answer the engine can bound as it is produced (a
// Streamable format; chDB streams SELECTs only) is bounded at
// MaxOutputBytes there.
func (h *queryHandler) run(ctx context.Context, guarded string, req *request, format string, reader bool) ([]byte, clickhouse.QueryStats, error) {
	pq, ok := h.q.(ParamQuerier)
	if !ok {
		if len(req.params) > 0 || req.data != nil {
			return nil, clickhouse.QueryStats{}, errors.New("Code: 48. DB::Exception: query parameters and INSERT data are not supported by this engine")
		}
		b, err := h.q.QueryFormat(ctx, guarded, req.format)
		return b, clickhouse.QueryStats{}, err
	}
	sql := guarded
	if req.data != nil {
		sql += "\n" + string(req.data)
	}
	if lq, ok := h.q.(LimitQuerier); ok && reader && req.data == nil && clickhouse.Streamable(format) && isSelect(req.stmt) {
		return lq.QueryFormatStatsLimit(ctx, sql, format, req.params, h.opt.MaxOutputBytes)
	}
	if sq, ok := h.q.(StatsQuerier); ok {
		return sq.QueryFormatStats(ctx, sql, req.format, req.params)
	}
	b, err := pq.QueryFormatParams(ctx, sql, req.format, req.params)
	return b, clickhouse.QueryStats{}, err
}

// checkParsed has ClickHouse parse a reader's statement (EXPLAIN AST,
// with the request's query parameters, which the parser needs) and checks
// the tree (checkAST). A statement that does not parse returns the
// parser's error, which does not wrap errRefused.
func (h *queryHandler) checkParsed(ctx context.Context, req *request) error {
	in, err := astInput(req.stmt)
	if err != nil {
		return err
	}
	explain := "EXPLAIN AST " + in
	var out []byte
	if pq, ok := h.q.(ParamQuerier); ok {
		out, err = pq.QueryFormatParams(ctx, explain, "TabSeparatedRaw", req.params)
	} else {
		out, err = h.q.QueryFormat(ctx, explain, "TabSeparatedRaw")
	}
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	return checkAST(string(out))
}

// limitHint says which of the endpoint's limits an error code means, or "".
func (h *queryHandler) limitHint(code int) string {
	l := h.opt.Limits
	switch code {
	case 159: // TIMEOUT_EXCEEDED
		return fmt.Sprintf("this endpoint stops a query after max_execution_time = %s; narrow the query (time range, LIMIT)", l.MaxExecutionTime)
	case 241: // MEMORY_LIMIT_EXCEEDED
		return fmt.Sprintf("this endpoint limits a query to max_memory_usage = %d bytes", l.MaxMemoryUsage)
	case 396: // TOO_MANY_ROWS_OR_BYTES
		return fmt.Sprintf("this endpoint limits a result to max_result_rows = %d and max_result_bytes = %d; add a LIMIT or aggregate", l.MaxResultRows, l.MaxResultBytes)
	case 394: // QUERY_WAS_CANCELLED
		return "the client went away, or the process is stopping"
	}
	return ""
}

// newQueryID returns a random query id in UUID form, as ClickHouse makes.
func newQueryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

var (
	codeRE       = regexp.MustCompile(`Code: (\d+)\.`)
	formatNameRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
)

// crossSite returns why r looks like a request that a browser sent for a
// page of another origin, or "" when it does not. Browsers mark every
// request: Sec-Fetch-Site (all current browsers) and, on cross-origin
// requests and on POST, Origin. So:
//
//   - Sec-Fetch-Site other than same-origin or none (none: typed in the
//     address bar) is refused: cross-site, and same-site too (another port
//     of the same host is another site's page for this purpose);
//   - an Origin other than this request's own scheme://host is refused
//     ("null" included);
//   - when either header is there (a browser), the Host must be an IP
//     address or localhost: a page that rebinds its own DNS name to
//     127.0.0.1 is same-origin to the browser, but its Host is its name.
//
// Requests with neither header (curl, Go, clickhouse-go, other programs)
// pass: they are not sent by a browser on behalf of a page.
func crossSite(r *http.Request) string {
	site := r.Header.Get("Sec-Fetch-Site")
	origin := r.Header.Get("Origin")
	if site == "" && origin == "" {
		return ""
	}
	switch strings.ToLower(site) {
	case "", "same-origin", "none":
	default:
		return "Sec-Fetch-Site: " + site
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if origin != "" && !strings.EqualFold(origin, scheme+"://"+r.Host) {
		return "Origin " + origin + " is not " + scheme + "://" + r.Host
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if net.ParseIP(host) == nil && !strings.EqualFold(host, "localhost") {
		return "Host " + r.Host + " is a name, not an address or localhost (DNS rebinding guard for browsers)"
	}
	return ""
}

func contentType(format string) string {
	switch strings.ToLower(format) {
	case "json", "jsoncompact", "jsonstrings":
		return "application/json; charset=UTF-8"
	case "jsoneachrow", "jsoncompacteachrow", "ndjson", "jsonlines":
		return "application/x-ndjson; charset=UTF-8"
	case "csv", "csvwithnames":
		return "text/csv; charset=UTF-8; header=present"
	case "native", "rowbinary", "rowbinarywithnamesandtypes", "parquet", "arrow":
		return "application/octet-stream"
	}
	return "text/tab-separated-values; charset=UTF-8"
}

func exception(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("X-ClickHouse-Exception-Code", fmt.Sprint(code))
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(status)
	if !strings.HasPrefix(msg, "Code:") {
		msg = fmt.Sprintf("Code: %d. DB::Exception: %s", code, msg)
	}
	io.WriteString(w, msg+"\n")
}

// HTTPClient queries a ClickHouse HTTP interface: the endpoint of
// NewQueryHandler, or a ClickHouse server's port 8123.
type HTTPClient struct {
	// URL is the base URL, e.g. http://127.0.0.1:8123/.
	URL string
	// Client defaults to http.DefaultClient.
	Client *http.Client
	// Token, when set, is sent as Authorization: Bearer.
	Token config.Secret
}

var _ clickhouse.ParamQuerier = (*HTTPClient)(nil)

// Query implements clickhouse.Querier.
func (c *HTTPClient) Query(ctx context.Context, sql string) (*clickhouse.Result, error) {
	b, err := c.QueryFormat(ctx, sql, "JSONCompact")
	if err != nil {
		return nil, err
	}
	return clickhouse.DecodeJSONCompact(b)
}

// QueryParams implements clickhouse.ParamQuerier: each parameter goes as
// param_NAME in the URL, and the endpoint (or ClickHouse) binds it.
func (c *HTTPClient) QueryParams(ctx context.Context, sql string, params []clickhouse.Param) (*clickhouse.Result, error) {
	b, err := c.queryFormat(ctx, sql, "JSONCompact", params)
	if err != nil {
		return nil, err
	}
	return clickhouse.DecodeJSONCompact(b)
}

// QueryFormat implements FormatQuerier.
func (c *HTTPClient) QueryFormat(ctx context.Context, sql, format string) ([]byte, error) {
	return c.queryFormat(ctx, sql, format, nil)
}

func (c *HTTPClient) queryFormat(ctx context.Context, sql, format string, params []clickhouse.Param) ([]byte, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("queryapi: query server: %w", err)
	}
	q := u.Query()
	q.Set("default_format", format)
	for _, p := range params {
		q.Set("param_"+p.Name, p.Value)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(sql))
	if err != nil {
		return nil, fmt.Errorf("queryapi: query server: %w", err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token.Reveal())
	}
	hc := c.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("queryapi: query server: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("queryapi: query server: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("queryapi: query server: " + resp.Status + ": " + string(bytes.TrimSpace(body)))
	}
	return body, nil
}
