package clickhouse_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/queryapi"
)

// TestStringParam: a string bound with StringParam reaches the query as
// it is, on every ParamQuerier: chDB, the query endpoint's param_NAME, and
// clickhouse-go's parameters (the server engine over HTTP, against the
// endpoint).
func TestStringParam(t *testing.T) {
	emb := clickhousetest.OpenEmbedded(t, "")
	srv := httptest.NewServer(queryapi.NewQueryHandler(emb, nil, queryapi.QueryHandlerOptions{}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	cfg := clickhouse.DefaultStoreConfig().ClickHouse
	cfg.Addr, cfg.Protocol, cfg.Username = []string{u.Host}, "http", ""
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := clickhouse.OpenServer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	values := []string{"plain", "it's", `back\slash`, `\N`, "tab\tnew\nline\rcr", "nul\x00byte", "{s:String}", "ünïcødé", ""}
	for name, q := range map[string]clickhouse.ParamQuerier{"chDB": emb, "HTTPClient": &queryapi.HTTPClient{URL: srv.URL}, "server engine": s} {
		for _, v := range values {
			r, err := q.QueryParams(ctx, "SELECT {s:String} AS s, length({s:String}) AS n", []clickhouse.Param{clickhouse.StringParam("s", v)})
			if err != nil {
				t.Errorf("%s: %q: %v", name, v, err)
				continue
			}
			if len(r.Rows) != 1 || clickhouse.ValueString(r.Rows[0][0]) != v || clickhouse.ValueString(r.Rows[0][1]) != strconv.Itoa(len(v)) {
				t.Errorf("%s: %q came back as %v", name, v, r.Rows)
			}
		}
	}
}
