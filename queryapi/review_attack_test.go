package queryapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
)

// Attack (review, 2 December): the IN check takes an identifier with a
// qualifier other than a database's for a column (e.host); one qualified
// by system (any case, quoted or not, or with a column after it:
// system.users.name) is still refused.
func TestAttackINOperandQualified(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewQueryHandler(eng, nil, QueryHandlerOptions{}))
	defer srv.Close()
	for _, query := range []string{
		"SELECT count() FROM audit_events WHERE host IN system.users.name",
		"SELECT count() FROM audit_events WHERE host IN SYSTEM.users",
		"SELECT count() FROM audit_events WHERE host IN `system`.`users`",
	} {
		t.Run(query, func(t *testing.T) {
			status, code, body := get(t, srv, "GET", url.Values{"query": {query}}, "")
			if status != http.StatusForbidden || code != "164" {
				t.Errorf("status %d code %q body %.300q; want 403, code 164", status, code, body)
			}
		})
	}
}
