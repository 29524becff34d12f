package indexer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// FormatQuerier runs a query and returns its output in a ClickHouse format.
// *Embedded is one.
type FormatQuerier interface {
	QueryFormat(ctx context.Context, sql, format string) ([]byte, error)
}

// QueryHandlerOptions tune NewQueryHandler.
type QueryHandlerOptions struct {
	// AllowWrites lets statements other than SELECT, WITH, SHOW, DESCRIBE,
	// EXISTS and EXPLAIN through. Default false: the endpoint is read-only.
	AllowWrites bool
	// MaxQueryBytes bounds the query text (URL plus body). Default 1 MiB.
	MaxQueryBytes int64
}

// NewQueryHandler serves q in the shape of ClickHouse's HTTP interface, so
// `auditpipe query --server URL`, curl, clickhouse-go's HTTP protocol and
// Grafana's ClickHouse data source can query an embedded store through the
// process that owns it:
//
//	GET  /?query=SQL[&default_format=FMT]
//	POST /?query=SQL-head   body: rest of the SQL (or the whole SQL)
//	GET  /ping              "Ok.\n"
//
// The output format is the query's FORMAT clause, else default_format, else
// TabSeparated. Errors answer 500 (400 for a refused statement) with the
// ClickHouse exception text and the X-ClickHouse-Exception-Code header.
// Other URL parameters (database, user, settings) are ignored.
func NewQueryHandler(q FormatQuerier, log *slog.Logger, opt QueryHandlerOptions) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.MaxQueryBytes <= 0 {
		opt.MaxQueryBytes = 1 << 20
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "Ok.\n") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		sql := r.URL.Query().Get("query")
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(io.LimitReader(r.Body, opt.MaxQueryBytes+1))
			if err != nil {
				http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
				return
			}
			if sql != "" && len(body) > 0 {
				sql += "\n"
			}
			sql += string(body)
		}
		if int64(len(sql)) > opt.MaxQueryBytes {
			exception(w, http.StatusRequestEntityTooLarge, 62, "query too large")
			return
		}
		if strings.TrimSpace(sql) == "" {
			// ClickHouse answers "Ok." to an empty GET /.
			io.WriteString(w, "Ok.\n")
			return
		}
		if strings.ContainsRune(sql, 0) {
			exception(w, http.StatusBadRequest, 27, "query contains a NUL byte")
			return
		}
		if !opt.AllowWrites && !readOnlyStatement(sql) {
			exception(w, http.StatusForbidden, 164, "this endpoint is read-only: only SELECT, WITH, SHOW, DESCRIBE, EXISTS and EXPLAIN are allowed (READONLY)")
			return
		}
		format := r.URL.Query().Get("default_format")
		if format == "" {
			format = "TabSeparated"
		}
		out, err := q.QueryFormat(r.Context(), sql, format)
		if err != nil {
			code := 1000
			if m := codeRE.FindStringSubmatch(err.Error()); m != nil {
				fmt.Sscan(m[1], &code)
			}
			log.Debug("query failed", "err", err)
			exception(w, http.StatusInternalServerError, code, strings.TrimPrefix(err.Error(), "chdb: "))
			return
		}
		if f := formatClause(sql); f != "" {
			format = f
		}
		w.Header().Set("Content-Type", contentType(format))
		w.Header().Set("X-ClickHouse-Format", format)
		w.Header().Set("X-ClickHouse-Server-Display-Name", "auditpipe")
		w.Write(out)
	})
	return mux
}

var (
	codeRE   = regexp.MustCompile(`Code: (\d+)\.`)
	formatRE = regexp.MustCompile(`(?is)\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$`)
	// leading comments and whitespace before the first keyword
	leadRE = regexp.MustCompile(`^(?s)(\s+|--[^\n]*\n?|/\*.*?\*/)*`)
)

func formatClause(sql string) string {
	if m := formatRE.FindStringSubmatch(sql); m != nil {
		return m[1]
	}
	return ""
}

func readOnlyStatement(sql string) bool {
	s := leadRE.ReplaceAllString(sql, "")
	s = strings.TrimLeft(s, "(")
	words := strings.FieldsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	})
	if len(words) == 0 {
		return false
	}
	switch strings.ToUpper(words[0]) {
	case "SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN":
		return !strings.Contains(strings.TrimRight(strings.TrimSpace(sql), ";"), ";")
	}
	return false
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
}

// Query implements Querier.
func (c *HTTPClient) Query(ctx context.Context, sql string) (*Result, error) {
	b, err := c.QueryFormat(ctx, sql, "JSONCompact")
	if err != nil {
		return nil, err
	}
	return decodeJSONCompact(b)
}

// QueryFormat implements FormatQuerier.
func (c *HTTPClient) QueryFormat(ctx context.Context, sql, format string) ([]byte, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("indexer: query server: %w", err)
	}
	q := u.Query()
	q.Set("default_format", format)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(sql))
	if err != nil {
		return nil, fmt.Errorf("indexer: query server: %w", err)
	}
	hc := c.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("indexer: query server: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("indexer: query server: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("indexer: query server: " + resp.Status + ": " + string(bytes.TrimSpace(body)))
	}
	return body, nil
}
