// Package chdb is a small, lazy binding of libchdb.so (embedded ClickHouse)
// through purego, without cgo.
//
// chdb-go's own purego package opens the library in init() and panics when
// it is missing, which would make every binary that links it unusable on a
// machine without libchdb. This package opens the library only when Open is
// called and returns an error when it cannot, so the auditpipe binary runs
// without libchdb whenever a ClickHouse server is configured. It binds the
// same C API that chdb-go v1.11.0 uses (chdb.h: chdb_connect, chdb_query,
// chdb_result_*), for libchdb from npm @chdb/lib-linux-x64-gnu@26.7.3-stable.1.
//
// libchdb installs ClickHouse's fault signal handlers when it is loaded and
// connected; Open puts Go's back for those signals (SIGSEGV, SIGBUS, SIGFPE,
// SIGILL, SIGABRT, SIGTRAP), so that a nil dereference in the process is a
// Go panic, not a hang.
package chdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// EnvLib is the environment variable that names libchdb.so.
const EnvLib = "AUDITPIPE_CHDB_LIB"

// ErrNotFound is returned by FindLibrary when no libchdb.so is found.
var ErrNotFound = errors.New("chdb: libchdb.so not found (run 'make deps', or set " + EnvLib + ")")

// FindLibrary returns the path of libchdb.so: flag when not empty, else
// $AUDITPIPE_CHDB_LIB, else $AUDITPIPE_CACHE/chdb/libchdb.so, else
// ~/.cache/auditpipe/chdb/libchdb.so (where 'make deps' puts it). It
// returns ErrNotFound, wrapped with the places it looked, when none exists.
func FindLibrary(flag string) (string, error) {
	var candidates []string
	if flag != "" {
		candidates = append(candidates, flag)
	} else {
		if p := os.Getenv(EnvLib); p != "" {
			candidates = append(candidates, p)
		}
		if c := os.Getenv("AUDITPIPE_CACHE"); c != "" {
			candidates = append(candidates, filepath.Join(c, "chdb", "libchdb.so"))
		}
		if h, err := os.UserHomeDir(); err == nil {
			candidates = append(candidates, filepath.Join(h, ".cache", "auditpipe", "chdb", "libchdb.so"))
		}
	}
	for _, p := range candidates {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w; looked at %v", ErrNotFound, candidates)
}

// lib holds the functions of a loaded libchdb.
type lib struct {
	connect      func(argc int32, argv unsafe.Pointer) unsafe.Pointer
	closeConn    func(conn unsafe.Pointer)
	query        func(conn unsafe.Pointer, query, format *byte) unsafe.Pointer
	queryParams  paramsEntry
	streamParams paramsEntry
	streamFetch  func(conn unsafe.Pointer, res unsafe.Pointer) unsafe.Pointer
	streamCancel func(conn unsafe.Pointer, res unsafe.Pointer)
	destroy      func(res unsafe.Pointer)
	buffer       func(res unsafe.Pointer) unsafe.Pointer
	length       func(res unsafe.Pointer) uintptr
	resultError  func(res unsafe.Pointer) *byte
	rowsRead     func(res unsafe.Pointer) uint64
	bytesRead    func(res unsafe.Pointer) uint64
	elapsed      func(res unsafe.Pointer) float64
	storageRows  func(res unsafe.Pointer) uint64
	storageBytes func(res unsafe.Pointer) uint64
}

// paramsEntry is the signature of the entry points that take a statement
// of a given length and its parameters as C arrays
// (chdb_query_with_params_n, chdb_stream_query_with_params_n).
type paramsEntry func(conn unsafe.Pointer, query *byte, queryLen uintptr, format *byte, formatLen uintptr,
	names unsafe.Pointer, nameLens unsafe.Pointer, values unsafe.Pointer, valueLens unsafe.Pointer, count uintptr) unsafe.Pointer

// libs caches loaded libraries by path. dlopen of the same path returns the
// same handle anyway; the cache only avoids re-registering functions.
type libCache struct {
	mu   sync.Mutex
	libs map[string]*lib
}

func (c *libCache) load(path string) (l *lib, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l := c.libs[path]; l != nil {
		return l, nil
	}
	var h uintptr
	if serr := keepGoFaultHandlers(func() { h, err = purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL) }); serr != nil {
		return nil, serr
	}
	if err != nil {
		return nil, fmt.Errorf("chdb: dlopen %s: %w", path, err)
	}
	defer func() {
		// RegisterLibFunc panics when a symbol is missing (an incompatible
		// libchdb); turn that into an error.
		if r := recover(); r != nil {
			l, err = nil, fmt.Errorf("chdb: %s: incompatible library: %v", path, r)
		}
	}()
	l = &lib{}
	purego.RegisterLibFunc(&l.connect, h, "chdb_connect")
	purego.RegisterLibFunc(&l.closeConn, h, "chdb_close_conn")
	purego.RegisterLibFunc(&l.query, h, "chdb_query")
	purego.RegisterLibFunc(&l.queryParams, h, "chdb_query_with_params_n")
	purego.RegisterLibFunc(&l.streamParams, h, "chdb_stream_query_with_params_n")
	purego.RegisterLibFunc(&l.streamFetch, h, "chdb_stream_fetch_result")
	purego.RegisterLibFunc(&l.streamCancel, h, "chdb_stream_cancel_query")
	purego.RegisterLibFunc(&l.destroy, h, "chdb_destroy_query_result")
	purego.RegisterLibFunc(&l.buffer, h, "chdb_result_buffer")
	purego.RegisterLibFunc(&l.length, h, "chdb_result_length")
	purego.RegisterLibFunc(&l.resultError, h, "chdb_result_error")
	purego.RegisterLibFunc(&l.rowsRead, h, "chdb_result_rows_read")
	purego.RegisterLibFunc(&l.bytesRead, h, "chdb_result_bytes_read")
	purego.RegisterLibFunc(&l.elapsed, h, "chdb_result_elapsed")
	purego.RegisterLibFunc(&l.storageRows, h, "chdb_result_storage_rows_read")
	purego.RegisterLibFunc(&l.storageBytes, h, "chdb_result_storage_bytes_read")
	if c.libs == nil {
		c.libs = make(map[string]*lib)
	}
	c.libs[path] = l
	return l, nil
}

// connect calls chdb_connect. libchdb installs ClickHouse's fault handlers
// when it connects; Go's must stay (see keepGoFaultHandlers). Connections
// are made one at a time: two at once could each save the other's
// ClickHouse handlers and put them back.
func (c *libCache) connect(l *lib, argc int32, argv unsafe.Pointer) (unsafe.Pointer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var conn unsafe.Pointer
	if err := keepGoFaultHandlers(func() { conn = l.connect(argc, argv) }); err != nil {
		if conn != nil {
			l.closeConn(conn)
		}
		return nil, err
	}
	return conn, nil
}

// loaded is the process's set of loaded libraries. A shared library is a
// process-wide resource by nature, so this one cache is process-wide too.
var loaded libCache

// Session is an open chDB data directory. One process may open a
// directory, and only one directory; in it, Open may be called again with
// the same directory for a second connection, whose statements run
// concurrently with the first's (measured on 26.7.3). A Session serialises
// its own queries, so it is safe for concurrent use.
type Session struct {
	mu   sync.Mutex
	lib  *lib
	conn unsafe.Pointer // chdb_connection* as returned by chdb_connect
	dir  string
}

// Open loads the library at libPath and opens (creating it if needed) the
// data directory dir. An empty dir opens an in-memory session.
func Open(libPath, dir string) (*Session, error) {
	return OpenWithConfig(libPath, dir, "")
}

// OpenWithConfig is Open with a ClickHouse configuration file (the
// --config-file of clickhouse-local: clusters, macros, settings); "" is
// Open.
func OpenWithConfig(libPath, dir, configFile string) (*Session, error) {
	l, err := loaded.load(libPath)
	if err != nil {
		return nil, err
	}
	args := []string{"clickhouse"}
	if configFile != "" {
		args = append(args, "--config-file="+configFile)
	}
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("chdb: data directory: %w", err)
		}
		if err := os.MkdirAll(abs, 0o750); err != nil {
			return nil, fmt.Errorf("chdb: data directory: %w", err)
		}
		dir = abs
		args = append(args, "--path="+abs)
	}
	cargs := make([][]byte, len(args))
	argv := make([]*byte, len(args)+1)
	for i, a := range args {
		cargs[i] = append([]byte(a), 0)
		argv[i] = &cargs[i][0]
	}
	conn, err := loaded.connect(l, int32(len(args)), unsafe.Pointer(&argv[0]))
	if err != nil {
		return nil, err
	}
	runtime.KeepAlive(cargs)
	runtime.KeepAlive(argv)
	if conn == nil || *(*unsafe.Pointer)(conn) == nil {
		return nil, fmt.Errorf("chdb: open %q: connection failed (is the directory used by another process?)", dir)
	}
	return &Session{lib: l, conn: conn, dir: dir}, nil
}

// Dir returns the session's data directory ("" for in-memory).
func (s *Session) Dir() string { return s.dir }

// Result is the outcome of a query.
type Result struct {
	// Data is the query's output in the requested format, copied out of chDB.
	Data []byte
	// RowsRead and BytesRead are what the query read.
	RowsRead, BytesRead uint64
	// Elapsed is the query's time in seconds, as chDB measured it.
	Elapsed float64
}

// Query runs one SQL statement and returns its output in format (a
// ClickHouse format name such as "JSONEachRow", "TabSeparated", "CSV",
// "JSON"; a FORMAT clause in the query wins). The query must not contain a
// NUL byte.
func (s *Session) Query(query, format string) (Result, error) {
	q := make([]byte, len(query)+1)
	copy(q, query)
	return s.QueryBytes(q, format)
}

// QueryBytes is Query for a NUL-terminated query in q (its last byte must
// be 0), so that large INSERT statements are not copied once more.
func (s *Session) QueryBytes(q []byte, format string) (Result, error) {
	if len(q) == 0 || q[len(q)-1] != 0 {
		return Result{}, errors.New("chdb: query not NUL-terminated")
	}
	f := append([]byte(format), 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return Result{}, errors.New("chdb: session closed")
	}
	l := s.lib
	res := l.query(*(*unsafe.Pointer)(s.conn), &q[0], &f[0])
	runtime.KeepAlive(q)
	runtime.KeepAlive(f)
	return s.result(res)
}

// result copies a chdb_result out and destroys it; s.mu is held.
func (s *Session) result(res unsafe.Pointer) (Result, error) {
	l := s.lib
	if res == nil {
		return Result{}, nil
	}
	defer l.destroy(res)
	if msg := l.resultError(res); msg != nil {
		if e := cString(msg); e != "" {
			return Result{}, &Error{Message: e}
		}
	}
	r := Result{
		RowsRead:  l.rowsRead(res),
		BytesRead: l.bytesRead(res),
		Elapsed:   l.elapsed(res),
	}
	if n := l.length(res); n > 0 {
		if buf := l.buffer(res); buf != nil {
			r.Data = append([]byte(nil), unsafe.Slice((*byte)(buf), n)...)
		}
	}
	return r, nil
}

// Param is a query parameter: the value of the placeholder {Name:Type} in
// the query, in ClickHouse's escaped text form (as the HTTP interface's
// param_Name). chDB binds it after parsing, as a value of Type: it is never
// spliced into the SQL text.
type Param struct {
	Name, Value string
}

// cParams are query parameters as the _n entry points take them: C arrays
// of pointers and lengths (one more element each, so that none is empty),
// kept alive by bufs.
type cParams struct {
	bufs                [][]byte
	names, values       []*byte
	nameLens, valueLens []uintptr
}

func newCParams(params []Param) *cParams {
	n := len(params)
	c := &cParams{bufs: make([][]byte, 0, 2*n), names: make([]*byte, n+1), values: make([]*byte, n+1),
		nameLens: make([]uintptr, n+1), valueLens: make([]uintptr, n+1)}
	for i, p := range params {
		nb := append([]byte(p.Name), 0)
		vb := append([]byte(p.Value), 0)
		c.bufs = append(c.bufs, nb, vb)
		c.names[i], c.nameLens[i] = &nb[0], uintptr(len(p.Name))
		c.values[i], c.valueLens[i] = &vb[0], uintptr(len(p.Value))
	}
	return c
}

func (c *cParams) keepAlive() {
	runtime.KeepAlive(c.bufs)
	runtime.KeepAlive(c.names)
	runtime.KeepAlive(c.values)
	runtime.KeepAlive(c.nameLens)
	runtime.KeepAlive(c.valueLens)
}

// ErrOutputLimit is QueryLimit's error when the output passes its bound.
var ErrOutputLimit = errors.New("chdb: output over the limit")

// streamedFormats are the formats whose streamed output is the same bytes
// as the whole answer: chDB 26.7.3 formats each streamed chunk as a
// document of its own, so a format with a header, a prefix or a suffix
// (…WithNames, JSON, JSONCompact, XML, Pretty*, Parquet, Arrow, ORC,
// RowBinaryWithNamesAndTypes, Values, Markdown, Vertical) repeats them per
// chunk (measured, TestQueryLimitFormats). Lower-case names.
var streamedFormats = map[string]bool{
	"tabseparated": true, "tsv": true, "tabseparatedraw": true, "tsvraw": true, "csv": true,
	"jsoneachrow": true, "ndjson": true, "jsonlines": true, "jsoncompacteachrow": true,
	"jsonstringseachrow": true, "native": true, "rowbinary": true, "tskv": true,
}

// Streamable reports whether QueryLimit can answer in format: the
// streamed chunks of that format concatenate to the whole answer.
func Streamable(format string) bool { return streamedFormats[strings.ToLower(format)] }

// QueryLimit runs one statement as QueryParams does, but through chDB's
// streaming entry (chdb_stream_query_with_params_n, then
// chdb_stream_fetch_result chunk by chunk): the output is copied out one
// chunk at a time, so chDB never holds the whole formatted answer, and
// once it passes maxOutput bytes the query is cancelled
// (chdb_stream_cancel_query) and an error wrapping ErrOutputLimit is
// returned, having held at most maxOutput bytes and one chunk. maxOutput
// <= 0 bounds nothing. RowsRead and BytesRead sum the chunks'. Only the
// formats that Streamable accepts are answered (a FORMAT clause in the
// query must be one of them too: the caller checks).
func (s *Session) QueryLimit(query, format string, params []Param, maxOutput int64) (Result, error) {
	if len(query) == 0 {
		return Result{}, errors.New("chdb: empty query")
	}
	if !Streamable(format) {
		return Result{}, fmt.Errorf("chdb: format %q is not streamed whole (chDB writes its header or suffix per chunk)", format)
	}
	return s.callParams(s.lib.streamParams, query, format, params, func(conn, stream unsafe.Pointer) (Result, error) {
		return s.fetchStream(conn, stream, format, maxOutput)
	})
}

// fetchStream reads a streaming query's chunks into one Result, cancelling
// it once its output passes maxOutput bytes (> 0); s.mu is held.
func (s *Session) fetchStream(conn, stream unsafe.Pointer, format string, maxOutput int64) (Result, error) {
	l := s.lib
	if stream == nil {
		return Result{}, errors.New("chdb: streaming query returned no handle")
	}
	defer l.destroy(stream)
	if msg := l.resultError(stream); msg != nil {
		if e := cString(msg); e != "" {
			return Result{}, &Error{Message: e}
		}
	}
	var r Result
	for {
		chunk := l.streamFetch(conn, stream)
		if chunk == nil {
			return r, nil
		}
		n, err := s.take(&r, chunk)
		if err != nil {
			return Result{}, err
		}
		if n == 0 {
			return r, nil
		}
		if maxOutput > 0 && int64(len(r.Data)) > maxOutput {
			l.streamCancel(conn, stream)
			return Result{}, fmt.Errorf("%w: more than %d bytes of %s", ErrOutputLimit, maxOutput, format)
		}
	}
}

// take appends a streamed chunk's output and counts to r, destroys the
// chunk, and returns its length; s.mu is held.
func (s *Session) take(r *Result, chunk unsafe.Pointer) (int, error) {
	l := s.lib
	defer l.destroy(chunk)
	if msg := l.resultError(chunk); msg != nil {
		if e := cString(msg); e != "" {
			return 0, &Error{Message: e}
		}
	}
	r.RowsRead += l.rowsRead(chunk)
	r.BytesRead += l.bytesRead(chunk)
	r.Elapsed += l.elapsed(chunk)
	n := int(l.length(chunk))
	if n > 0 {
		if buf := l.buffer(chunk); buf != nil {
			r.Data = append(r.Data, unsafe.Slice((*byte)(buf), n)...)
		}
	}
	return n, nil
}

// QueryParams runs one SQL statement with query parameters bound by chDB
// (chdb_query_with_params_n) and returns its output in format. query may
// contain NUL bytes (binary data after an INSERT's FORMAT clause).
func (s *Session) QueryParams(query, format string, params []Param) (Result, error) {
	if len(query) == 0 {
		return Result{}, errors.New("chdb: empty query")
	}
	return s.callParams(s.lib.queryParams, query, format, params, func(_, res unsafe.Pointer) (Result, error) {
		return s.result(res)
	})
}

// callParams calls entry (one of s.lib's) with query, format and params as
// C takes them, then after with the connection and the handle the entry
// returned, all with s.mu held.
func (s *Session) callParams(entry paramsEntry, query, format string, params []Param, after func(conn, res unsafe.Pointer) (Result, error)) (Result, error) {
	q := []byte(query)
	f := append([]byte(format), 0)
	cp := newCParams(params)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return Result{}, errors.New("chdb: session closed")
	}
	conn := *(*unsafe.Pointer)(s.conn)
	res := entry(conn, &q[0], uintptr(len(q)), &f[0], uintptr(len(format)),
		unsafe.Pointer(&cp.names[0]), unsafe.Pointer(&cp.nameLens[0]), unsafe.Pointer(&cp.values[0]), unsafe.Pointer(&cp.valueLens[0]), uintptr(len(params)))
	runtime.KeepAlive(q)
	runtime.KeepAlive(f)
	cp.keepAlive()
	return after(conn, res)
}

// Close closes the session and releases the data directory's lock.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	s.lib.closeConn(s.conn)
	s.conn = nil
	return nil
}

// Error is an error reported by chDB for a query: a ClickHouse exception's
// text ("Code: 62. DB::Exception: …").
type Error struct {
	Message string
}

func (e *Error) Error() string { return "chdb: " + e.Message }

func cString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}
