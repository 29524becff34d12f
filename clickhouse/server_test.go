package clickhouse_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/queryapi"
)

// TestServerEngine runs the clickhouse-go/v2 engine against a real
// ClickHouse server when CLICKHOUSE_ADDR names one (host:port of the
// native protocol; CLICKHOUSE_PROTOCOL=http for the HTTP interface,
// CLICKHOUSE_USER / CLICKHOUSE_PASSWORD when needed). No server ≥ 25.8
// can be installed on the build machines (Debian ships 18.16), so it is
// skipped there, saying so.
func TestServerEngine(t *testing.T) {
	addr := os.Getenv("CLICKHOUSE_ADDR")
	if addr == "" {
		testenv.SkipOrFail(t, testenv.ClickHouseServer, "set CLICKHOUSE_ADDR=host:port to run the clickhouse-go engine against a ClickHouse server >= 25.8 (the same engine runs against our endpoint in TestServerEngineOverEndpoint)")
	}
	cfg := clickhouse.DefaultStoreConfig().ClickHouse
	cfg.Addr = strings.Split(addr, ",")
	if p := os.Getenv("CLICKHOUSE_PROTOCOL"); p != "" {
		cfg.Protocol = p
	}
	if u := os.Getenv("CLICKHOUSE_USER"); u != "" {
		cfg.Username = u
	}
	cfg.Password = config.Secret(os.Getenv("CLICKHOUSE_PASSWORD"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	eng, err := clickhouse.OpenServer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	// A fresh database keeps the test away from whatever the server holds.
	db := "auditpipe_test_" + time.Now().UTC().Format("20060102150405")
	if err := eng.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	defer eng.Exec(context.Background(), "DROP DATABASE "+db)
	eng.Close()
	cfg.Database = db
	if eng, err = clickhouse.OpenServer(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := clickhouse.Migrate(ctx, eng, 30, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := clickhouse.Migrate(ctx, eng, 30, nil); err != nil {
		t.Fatalf("migrations twice: %v", err)
	}
	evs := clickhousetest.ManyEvents(500, time.Now().UTC().Add(-time.Hour))
	// The same rows in the same batches twice, as a backfill run twice:
	// the second insert is deduplicated by its tokens.
	for run := range 2 {
		clickhousetest.InsertEvents(t, eng, evs, 100)
		if got := clickhousetest.QueryInt(t, eng, "SELECT count() FROM audit_events"); got != len(evs) {
			t.Fatalf("after load %d: count() = %d, want %d", run+1, got, len(evs))
		}
	}
}

// TestServerEngineOverEndpoint runs the server engine (clickhouse-go/v2 over
// HTTP: Exec, InsertEvents, InsertMessages, InsertLifecycle, Query) against the real
// ClickHouse engine, chDB, through a test instance of the query endpoint
// opened for an authenticated writer: migrations (twice), events inserted
// twice with the same token and counted once without FINAL, messages the
// same way, and queries compared with the embedded engine's answers. No
// ClickHouse server >= 25.8 can be installed here; this is the code path
// TestServerEngine runs against one when CLICKHOUSE_ADDR is set.
func TestServerEngineOverEndpoint(t *testing.T) {
	emb := clickhousetest.OpenEmbedded(t, "")
	writer := queryapi.StaticCredential{User: "indexer", Password: "correct horse"}
	srv := httptest.NewServer(queryapi.NewQueryHandler(emb, nil, queryapi.QueryHandlerOptions{AllowWrites: true, Writers: writer}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	cfg := clickhouse.DefaultStoreConfig().ClickHouse
	cfg.Addr, cfg.Protocol = []string{u.Host}, "http"
	cfg.Username, cfg.Password = writer.User, writer.Password
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("bad password", func(t *testing.T) {
		bad := cfg
		bad.Password = "wrong"
		s, err := clickhouse.OpenServer(ctx, bad)
		if err == nil {
			s.Close()
			t.Fatal("OpenServer with a wrong password succeeded")
		}
		if !strings.Contains(err.Error(), "516") {
			t.Errorf("wrong password: %v; want code 516 (AUTHENTICATION_FAILED)", err)
		}
	})

	eng, err := clickhouse.OpenServer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for run := range 2 {
		if _, err := clickhouse.Migrate(ctx, eng, 30, nil); err != nil {
			t.Fatalf("migrations, run %d: %v", run+1, err)
		}
	}
	if n := clickhousetest.QueryInt(t, emb, "SELECT count() FROM schema_migrations FINAL"); n < 5 {
		t.Errorf("schema_migrations has %d rows in chDB, want every migration", n)
	}
	if r, err := emb.Query(ctx, "SELECT engine_full FROM system.tables WHERE name = 'audit_events'"); err != nil || len(r.Rows) != 1 ||
		!strings.Contains(clickhouse.ValueString(r.Rows[0][0]), "toIntervalDay(30)") {
		t.Errorf("retention through the server engine: %v %v; want a 30-day TTL", r, err)
	}

	// Recent: the 30-day TTL drops older rows as they are inserted.
	now := time.Now().UTC().Truncate(time.Second)
	evs := clickhousetest.SampleEvents(now.Add(-time.Hour))
	for range 2 {
		clickhousetest.InsertEvents(t, eng, evs, 0)
	}
	// Without FINAL (final = 0 overrides the connection's final = 1): the
	// second insert was dropped by its token, not folded at query time.
	for name, q := range map[string]clickhouse.Querier{"server engine": eng, "chDB": emb} {
		if n := clickhousetest.QueryInt(t, q, "SELECT count() FROM audit_events SETTINGS final = 0"); n != len(evs) {
			t.Errorf("%s: audit_events has %d rows without FINAL, want %d (the same token twice counts once)", name, n, len(evs))
		}
	}

	msgs := []clickhouse.MessageRow{
		{Topic: "opctl.lifecycle.v1", Partition: 0, Offset: 7, Key: "req-a", TS: now.Add(-2 * time.Hour), Payload: []byte(`{"state":"APPROVED"}`)},
		{Topic: "opctl.lifecycle.v1", Partition: 1, Offset: 8, Key: "req-b", TS: now.Add(-time.Hour), Payload: []byte(`{"state":"REVOKED","note":"tab\there"}`)},
	}
	for range 2 {
		if err := eng.InsertMessages(ctx, clickhouse.MessagesToken(msgs), msgs); err != nil {
			t.Fatal(err)
		}
	}
	if n := clickhousetest.QueryInt(t, emb, "SELECT count() FROM pipeline_messages SETTINGS final = 0"); n != len(msgs) {
		t.Errorf("pipeline_messages has %d rows without FINAL, want %d", n, len(msgs))
	}
	if r, err := eng.Query(ctx, "SELECT payload FROM pipeline_messages WHERE offset = 8"); err != nil || len(r.Rows) != 1 ||
		clickhouse.ValueString(r.Rows[0][0]) != string(msgs[1].Payload) {
		t.Errorf("payload read back: %v %v; want %s", r, err, msgs[1].Payload)
	}

	// Lifecycle events through the server engine's typed batch (details a
	// Map), twice with the same token: stored once, read back from chDB.
	if err := emb.Exec(ctx, "SYSTEM STOP MERGES lifecycle_events"); err != nil {
		t.Fatal(err)
	}
	lrows := lifecycleRows(t, clickhousetest.ManyLifecycle(5, now.Add(-time.Hour)))
	for range 2 {
		if err := eng.InsertLifecycle(ctx, clickhouse.LifecycleToken(lrows), lrows); err != nil {
			t.Fatal(err)
		}
	}
	checkLifecycleStored(t, emb, lrows)

	// The query endpoint's log, through the server engine's typed batch.
	ql := []clickhouse.QueryLogRow{{Time: now, Who: "alice", Role: "auditor", SQL: "SELECT 'it''s'", SQLBytes: 14, Result: "ok", Rows: 1, Duration: 1500 * time.Microsecond}}
	if err := eng.InsertQueryLog(ctx, ql); err != nil {
		t.Fatal(err)
	}
	if r, err := emb.Query(ctx, "SELECT who, who_role, sql, duration_ms FROM query_log"); err != nil || len(r.Rows) != 1 ||
		clickhouse.ValueString(r.Rows[0][0]) != "alice" || clickhouse.ValueString(r.Rows[0][2]) != ql[0].SQL || clickhouse.ValueString(r.Rows[0][3]) != "1.5" {
		t.Errorf("query_log read back: %v %v; want alice's row", r, err)
	}

	// Query: what the server engine reads is what chDB holds.
	sql := "SELECT host, toUInt64(count()) AS n, arraySort(groupUniqArray(loginid)) AS who FROM audit_events GROUP BY host ORDER BY host"
	got, err := eng.Query(ctx, sql)
	if err != nil {
		t.Fatal(err)
	}
	want, err := emb.Query(ctx, sql)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Rows) != 2 || len(got.Rows) != len(want.Rows) {
		t.Fatalf("server engine rows %v, embedded %v", got.Rows, want.Rows)
	}
	for i := range got.Rows {
		for j := range got.Rows[i] {
			if g, w := clickhouse.ValueString(got.Rows[i][j]), clickhouse.ValueString(want.Rows[i][j]); g != w {
				t.Errorf("row %d column %s: server engine %q, embedded %q", i, got.Columns[j], g, w)
			}
		}
	}
	nq, _, _ := queryapi.Named("request-commands", []string{"ocid1.opctlaccessrequest.a"})
	if r, err := eng.Query(ctx, nq); err != nil || len(r.Rows) != 3 {
		t.Errorf("request-commands through the server engine: %v rows, %v; want 3", r, err)
	}

	t.Run("without credentials read-only", func(t *testing.T) {
		anon := cfg
		anon.Username, anon.Password = "", ""
		s, err := clickhouse.OpenServer(ctx, anon)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Exec(ctx, "DROP TABLE audit_events"); err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("DROP TABLE without credentials: %v; want refused as read-only", err)
		}
		if n := clickhousetest.QueryInt(t, s, "SELECT count() FROM audit_events"); n != len(evs) {
			t.Errorf("read without credentials: %d rows, want %d", n, len(evs))
		}
	})
	t.Run("writer still guarded", func(t *testing.T) {
		for _, q := range []string{
			"INSERT INTO FUNCTION file('/tmp/auditpipe-pwned', 'LineAsString') SELECT 'x'",
			"CREATE TABLE x (a String) ENGINE = File(LineAsString, '/tmp/auditpipe-pwned')",
			"SELECT * FROM file('/etc/passwd', 'LineAsString')",
			"SELECT 1 INTO OUTFILE '/tmp/auditpipe-pwned'",
			"CREATE DICTIONARY d (a String) PRIMARY KEY a SOURCE(FILE(path '/etc/passwd' format 'LineAsString')) LAYOUT(FLAT()) LIFETIME(0)",
		} {
			if err := eng.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "read-only") {
				t.Errorf("writer %q: %v; want refused", q, err)
			}
		}
	})
}
