package queryapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
)

func TestQueryHandlerFormats(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	evs := clickhousetest.SampleEvents(time.Date(2020, 10, 29, 3, 20, 22, 0, time.UTC))
	clickhousetest.InsertEvents(t, eng, evs, 0)
	srv := httptest.NewServer(NewQueryHandler(eng, nil, QueryHandlerOptions{}))
	defer srv.Close()

	q := "SELECT host, count() AS n FROM audit_events GROUP BY host ORDER BY host"
	for _, tc := range []struct {
		name, method, query, body, format string
		status                            int
		want                              string
	}{
		{"default TabSeparated", "GET", q, "", "", 200, "db01\t5\nweb01\t3\n"},
		{"JSONEachRow", "GET", q, "", "JSONEachRow", 200, "{\"host\":\"db01\",\"n\":5}\n{\"host\":\"web01\",\"n\":3}\n"},
		{"CSV", "POST", "", q, "CSV", 200, "\"db01\",5\n\"web01\",3\n"},
		{"JSON", "POST", "", q, "JSON", 200, `"rows": 2`},
		{"FORMAT clause wins", "POST", q, "FORMAT CSV", "JSON", 200, "\"db01\",5\n"},
		{"error", "GET", "SELECT nope FROM audit_events", "", "", 500, "Code: 47."},
		{"read-only", "POST", "", "DROP TABLE audit_events", "", 403, "read-only"},
		{"ping", "GET", "", "", "", 200, "Ok.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := url.Values{}
			if tc.query != "" {
				v.Set("query", tc.query)
			}
			if tc.format != "" {
				v.Set("default_format", tc.format)
			}
			u := srv.URL + "/?" + v.Encode()
			if tc.name == "ping" {
				u = srv.URL + "/ping"
			}
			req, _ := http.NewRequest(tc.method, u, strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Errorf("status %d body %q; want %d containing %q", resp.StatusCode, b, tc.status, tc.want)
			}
		})
	}

	t.Run("HTTPClient", func(t *testing.T) {
		r, err := (&HTTPClient{URL: srv.URL}).Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Rows) != 2 || clickhouse.ValueString(r.Rows[1][0]) != "web01" {
			t.Errorf("rows %v", r.Rows)
		}
	})
}

// The reviewer's repro: the "read-only" endpoint read /etc/passwd through
// file() and wrote a file with INTO OUTFILE, over GET. Every way in is now
// refused before chDB sees it, and nothing is written.
func TestQueryHandlerRefusesFileAccess(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	srv := httptest.NewServer(NewQueryHandler(eng, nil, QueryHandlerOptions{}))
	defer srv.Close()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("top secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "pwned.txt")
	for _, q := range []string{
		"SELECT * FROM file('" + secret + "', 'LineAsString')",
		"SELECT file('" + secret + "')",
		"SELECT * FROM `file`('" + secret + "', 'LineAsString')",
		"DESCRIBE file('" + secret + "', 'LineAsString')",
		"SELECT 'written by GET' INTO OUTFILE '" + out + "'",
		"SELECT ';'; INSERT INTO FUNCTION file('" + out + "', 'LineAsString') SELECT 'x'",
		"SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
		"SELECT * FROM executable('id', 'LineAsString', 'x String')",
		"SELECT 1 FORMAT Protobuf SETTINGS output_format_schema = '" + out + "'",
	} {
		for _, method := range []string{"GET", "POST"} {
			var req *http.Request
			if method == "GET" {
				req, _ = http.NewRequest("GET", srv.URL+"/?query="+url.QueryEscape(q), nil)
			} else {
				req, _ = http.NewRequest("POST", srv.URL+"/", strings.NewReader(q))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || strings.Contains(string(b), "top secret") {
				t.Errorf("%s %q: %s %q; want 403", method, q, resp.Status, b)
			}
			if resp.Header.Get("X-ClickHouse-Exception-Code") != "164" {
				t.Errorf("%s %q: exception code %q, want 164", method, q, resp.Header.Get("X-ClickHouse-Exception-Code"))
			}
		}
	}
	if b, err := os.ReadFile(out); err == nil {
		t.Errorf("read-only endpoint wrote %s: %q", out, b)
	}
}

// The second layer: the readonly = 1 that guardSQL adds stops table
// functions with a source in chDB even when the name check is bypassed, and
// does not stop the statements guardSQL lets through.
func TestGuardSQLReadonlyInChDB(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(secret, []byte("top secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"SELECT * FROM file('" + secret + "', 'LineAsString')",
		"SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
		"SELECT * FROM remote('127.0.0.1:1', system.one)",
		"SELECT * FROM executable('id', 'LineAsString', 'x String')",
		"DROP TABLE audit_events",
	} {
		// As guardSQL would send it, had the name check missed it.
		b, err := eng.QueryFormat(ctx, q+"\nSETTINGS readonly = 1", "TabSeparated")
		if err == nil || !strings.Contains(err.Error(), "Code: 164.") || strings.Contains(string(b), "top secret") {
			t.Errorf("%q with readonly = 1: out %q err %v; want Code 164 (READONLY)", q, b, err)
		}
	}
	allowed := []string{
		"SELECT count() FROM audit_events",
		"SELECT 1 SETTINGS max_threads = 1",
		"SELECT 1 SETTINGS max_threads = 1 FORMAT CSV",
		"SELECT 1 FORMAT CSV SETTINGS max_threads = 1, max_execution_time = 5",
		"SELECT * FROM (SELECT 1 SETTINGS max_threads = 2)",
		"SELECT 1 SETTINGS max_execution_time = 1.5, max_threads = 2",
		"SELECT * FROM numbers(3) FORMAT JSONEachRow;",
		"WITH 1 AS x SELECT x -- comment",
		"(SELECT 1) UNION ALL (SELECT 2)",
		"SHOW TABLES",
		"DESCRIBE TABLE audit_events",
		"EXISTS TABLE audit_events",
		"EXPLAIN SELECT count() FROM audit_events",
		"SELECT * FROM request_sessions",
	}
	for _, nq := range NamedQueries() {
		args := make([]string, len(nq.Args))
		for i := range args {
			args[i] = "ocid1.opctlaccessrequest.a"
		}
		allowed = append(allowed, nq.SQL(args))
	}
	for _, q := range allowed {
		g, err := guardSQL(q)
		if err != nil {
			t.Errorf("guardSQL(%q): %v", q, err)
			continue
		}
		if _, err := eng.QueryFormat(ctx, g, "TabSeparated"); err != nil {
			t.Errorf("%q as guarded (%q): %v", q, g, err)
		}
	}
	// The query-level readonly does not stick to the session: the indexer
	// shares it and must still write.
	if err := eng.Exec(ctx, "CREATE TABLE still_writable (x UInt8) ENGINE = Memory"); err != nil {
		t.Errorf("session left read-only: %v", err)
	}
}

type fakeQuerier struct{ got string }

func (f *fakeQuerier) QueryFormat(_ context.Context, sql, _ string) ([]byte, error) {
	if strings.HasPrefix(sql, "EXPLAIN AST ") {
		// The parser check's question: a SELECT of nothing in particular.
		return []byte("SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  SelectQuery (children 1)\n"), nil
	}
	f.got = sql
	return []byte("1\n"), nil
}

func TestQueryHandlerCrossSite(t *testing.T) {
	fq := &fakeQuerier{}
	srv := httptest.NewServer(NewQueryHandler(fq, nil, QueryHandlerOptions{}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL) // http://127.0.0.1:PORT
	self := "http://" + u.Host
	for _, tc := range []struct {
		name, method, host string
		header             map[string]string
		status             int
	}{
		{"curl GET", "GET", "", nil, 200},
		{"program POST", "POST", "", map[string]string{"Content-Type": "text/plain"}, 200},
		{"program with a host name", "GET", "indexer.internal:9464", nil, 200},
		{"browser address bar", "GET", "", map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}, 200},
		{"same-origin fetch", "POST", "", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": self}, 200},
		{"same-origin, localhost", "GET", "localhost:9464", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost:9464"}, 200},
		{"cross-site GET", "GET", "", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, 403},
		{"same-site other port", "GET", "", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"cross-site form POST", "POST", "", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"}, 403},
		{"foreign Origin, old browser", "POST", "", map[string]string{"Origin": "https://evil.example"}, 403},
		{"other port Origin", "GET", "", map[string]string{"Origin": "http://127.0.0.1:1"}, 403},
		{"null Origin", "POST", "", map[string]string{"Origin": "null"}, 403},
		{"https Origin for http", "GET", "", map[string]string{"Origin": "https://" + u.Host}, 403},
		{"DNS rebinding", "GET", "evil.example:9464", map[string]string{"Sec-Fetch-Site": "same-origin"}, 403},
		{"DNS rebinding with Origin", "POST", "evil.example:9464", map[string]string{"Origin": "http://evil.example:9464"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fq.got = ""
			var req *http.Request
			if tc.method == "GET" {
				req, _ = http.NewRequest("GET", srv.URL+"/?query=SELECT+1", nil)
			} else {
				req, _ = http.NewRequest("POST", srv.URL+"/", strings.NewReader("SELECT 1"))
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d body %q; want %d", resp.StatusCode, b, tc.status)
			}
			if tc.status == 403 && fq.got != "" {
				t.Errorf("refused request reached the engine: %q", fq.got)
			}
			if tc.status == 200 && fq.got != fmt.Sprintf("SELECT 1\nSETTINGS max_execution_time = 30, max_memory_usage = 1073741824, max_result_rows = 1000000, max_result_bytes = 268435456, max_threads = %d, readonly = 1", DefaultLimits().MaxThreads) {
				t.Errorf("engine got %q", fq.got)
			}
		})
	}
	// /ping is harmless and stays open (health checks, clickhouse-go).
	req, _ := http.NewRequest("GET", srv.URL+"/ping", nil)
	req.Header.Set("Origin", "https://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/ping: %s", resp.Status)
	}
	// The HTTPClient (auditpipe query --server) is not a browser.
	if _, err := (&HTTPClient{URL: srv.URL}).QueryFormat(context.Background(), "SELECT 1", "TabSeparated"); err != nil {
		t.Errorf("HTTPClient: %v", err)
	}
}
