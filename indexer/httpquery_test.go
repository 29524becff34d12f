package indexer

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestQueryHandlerFormats(t *testing.T) {
	eng := openTestEngine(t, "")
	ctx := context.Background()
	if _, err := Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	evs := sampleEvents(time.Date(2020, 10, 29, 3, 20, 22, 0, time.UTC))
	var in strings.Builder
	for i := range evs {
		in.Write(evs[i].AppendJSON(nil))
		in.WriteByte('\n')
	}
	if _, err := Load(ctx, eng, strings.NewReader(in.String()), LoadOptions{}); err != nil {
		t.Fatal(err)
	}
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
		if len(r.Rows) != 2 || valueString(r.Rows[1][0]) != "web01" {
			t.Errorf("rows %v", r.Rows)
		}
	})

	// clickhouse-go/v2 over its HTTP protocol against the endpoint: the
	// server engine's query path, exercised without a ClickHouse server.
	t.Run("clickhouse-go HTTP", func(t *testing.T) {
		u, _ := url.Parse(srv.URL)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		s, err := OpenServer(cctx, ServerConfig{Addr: []string{u.Host}, Protocol: "http", Database: "default", Username: "default"})
		if err != nil {
			t.Skipf("clickhouse-go cannot talk to the chDB endpoint: %v", err)
		}
		defer s.Close()
		r, err := s.Query(cctx, "SELECT host, toUInt64(count()) AS n, groupArray(loginid) AS who FROM audit_events GROUP BY host ORDER BY host")
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Rows) != 2 || valueString(r.Rows[0][0]) != "db01" || valueString(r.Rows[0][1]) != "5" {
			t.Errorf("rows %v", r.Rows)
		}
		res, err := s.Query(cctx, NamedQueries()[0].SQL([]string{"ocid1.opctlaccessrequest.a"}))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) != 3 {
			t.Errorf("request-commands over clickhouse-go: %d rows, want 3", len(res.Rows))
		}
	})
}
