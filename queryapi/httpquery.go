package queryapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/internal/config"
)

// FormatQuerier runs a query and returns its output in a ClickHouse format.
// *clickhouse.Embedded is one, and so is HTTPClient.
type FormatQuerier interface {
	QueryFormat(ctx context.Context, sql, format string) ([]byte, error)
}

// QueryHandlerOptions tune NewQueryHandler.
type QueryHandlerOptions struct {
	// AllowWrites turns the read-only guard off (guardSQL: one SELECT,
	// WITH, SHOW, DESCRIBE, EXISTS or EXPLAIN statement, no function that
	// reaches files, URLs, other servers or programs, no INTO OUTFILE, run
	// with readonly = 1). Default false: the endpoint is read-only. The
	// cross-site check (crossSite) applies either way.
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
//
// The endpoint has no authentication, so it refuses (403) what a browser
// sends on behalf of another site: see crossSite. Clients that are not
// browsers (curl, HTTPClient, clickhouse-go) send neither Origin nor
// Sec-Fetch-Site and are not affected.
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
		if why := crossSite(r); why != "" {
			log.Warn("query endpoint: refused a cross-site request", "why", why, "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
			exception(w, http.StatusForbidden, 497, "cross-site request refused: "+why)
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
		run := sql
		if !opt.AllowWrites {
			g, err := guardSQL(sql)
			if err != nil {
				log.Info("query endpoint: refused a statement", "err", err, "remote", r.RemoteAddr)
				exception(w, http.StatusForbidden, 164, err.Error()+" (READONLY)")
				return
			}
			run = g
		}
		format := r.URL.Query().Get("default_format")
		if format == "" {
			format = "TabSeparated"
		}
		if !formatNameRE.MatchString(format) {
			exception(w, http.StatusBadRequest, 73, "bad default_format")
			return
		}
		out, err := q.QueryFormat(r.Context(), run, format)
		if err != nil {
			code := 1000
			if m := codeRE.FindStringSubmatch(err.Error()); m != nil {
				fmt.Sscan(m[1], &code)
			}
			log.Debug("query failed", "err", err)
			exception(w, http.StatusInternalServerError, code, strings.TrimPrefix(err.Error(), "chdb: "))
			return
		}
		if f := queryFormat(sql); f != "" {
			format = f
		}
		w.Header().Set("Content-Type", contentType(format))
		w.Header().Set("X-ClickHouse-Format", format)
		w.Header().Set("X-ClickHouse-Server-Display-Name", "auditpipe")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Write(out)
	})
	return mux
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

// Query implements clickhouse.Querier.
func (c *HTTPClient) Query(ctx context.Context, sql string) (*clickhouse.Result, error) {
	b, err := c.QueryFormat(ctx, sql, "JSONCompact")
	if err != nil {
		return nil, err
	}
	return clickhouse.DecodeJSONCompact(b)
}

// QueryFormat implements FormatQuerier.
func (c *HTTPClient) QueryFormat(ctx context.Context, sql, format string) ([]byte, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("queryapi: query server: %w", err)
	}
	q := u.Query()
	q.Set("default_format", format)
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
