package indexer

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/testenv"
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
		testenv.SkipOrFail(t, testenv.ClickHouseServer, "set CLICKHOUSE_ADDR=host:port to run the clickhouse-go engine against a ClickHouse server >= 25.8")
	}
	cfg := DefaultConfig().Store.ClickHouse
	cfg.Addr = strings.Split(addr, ",")
	if p := os.Getenv("CLICKHOUSE_PROTOCOL"); p != "" {
		cfg.Protocol = p
	}
	if u := os.Getenv("CLICKHOUSE_USER"); u != "" {
		cfg.Username = u
	}
	cfg.Password = Secret(os.Getenv("CLICKHOUSE_PASSWORD"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	eng, err := OpenServer(ctx, cfg)
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
	if eng, err = OpenServer(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, eng, 30, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, eng, 30, nil); err != nil {
		t.Fatalf("migrations twice: %v", err)
	}
	evs := manyEvents(500, time.Now().UTC().Add(-time.Hour))
	var in strings.Builder
	for i := range evs {
		in.Write(evs[i].AppendJSON(nil))
		in.WriteByte('\n')
	}
	for run := range 2 {
		if _, err := Load(ctx, eng, strings.NewReader(in.String()), LoadOptions{BatchRows: 100}); err != nil {
			t.Fatalf("load %d: %v", run+1, err)
		}
		if got := queryInt(t, eng, "SELECT count() FROM audit_events"); got != len(evs) {
			t.Fatalf("after load %d: count() = %d, want %d", run+1, got, len(evs))
		}
	}
}
