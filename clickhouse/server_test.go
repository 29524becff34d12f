package clickhouse_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/config"
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
		t.Skip("skipping: set CLICKHOUSE_ADDR=host:port to run the clickhouse-go engine against a ClickHouse server >= 25.8")
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
