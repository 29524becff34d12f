package clickhouse

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	chschema "github.com/auditpipe/auditpipe/schemas/clickhouse"
)

// Migrate applies the migrations of schemas/clickhouse that are not yet
// recorded in schema_migrations, in order, records each, and then sets the
// tables' TTL to retentionDays (0 removes it; a negative value leaves the
// TTL as it is, for clients such as `auditpipe index`). Running it again changes
// nothing. It fails when an applied migration's file has changed since.
// It returns the versions it applied.
func Migrate(ctx context.Context, eng Engine, retentionDays int, log *slog.Logger) ([]uint32, error) {
	return MigrateLayout(ctx, eng, chschema.Layout{}, retentionDays, log)
}

// MigrateLayout is Migrate with the migrations rendered for layout (a
// StoreConfig's Layout): on a cluster every statement runs ON CLUSTER from
// the node eng is connected to, and the retention is set on the local
// tables. A store's layout is chosen once: the checksums recorded in one
// layout do not match the other's.
func MigrateLayout(ctx context.Context, eng Engine, layout chschema.Layout, retentionDays int, log *slog.Logger) ([]uint32, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ms, err := chschema.Render(layout)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: migrate: %w", err)
	}
	// The first migration creates the migrations table itself; it is
	// idempotent, so run it before reading what was applied.
	for _, st := range ms[0].Statements {
		if err := eng.Exec(ctx, st); err != nil {
			return nil, fmt.Errorf("clickhouse: migrate %04d_%s: %w", ms[0].Version, ms[0].Name, err)
		}
	}
	res, err := eng.Query(ctx, "SELECT toString(version), toString(checksum) FROM schema_migrations FINAL ORDER BY version")
	if err != nil {
		return nil, fmt.Errorf("clickhouse: migrate: read schema_migrations: %w", err)
	}
	applied := make(map[string]string, len(res.Rows))
	for _, r := range res.Rows {
		applied[ValueString(r[0])] = ValueString(r[1])
	}
	var done []uint32
	for _, m := range ms {
		v := fmt.Sprint(m.Version)
		if sum, ok := applied[v]; ok {
			if sum != m.Checksum {
				return done, fmt.Errorf("clickhouse: migrate: %04d_%s changed after it was applied (checksum %s, applied %s): add a new migration instead", m.Version, m.Name, m.Checksum, sum)
			}
			continue
		}
		for _, st := range m.Statements {
			if err := eng.Exec(ctx, st); err != nil {
				return done, fmt.Errorf("clickhouse: migrate %04d_%s: %w", m.Version, m.Name, err)
			}
		}
		rec := fmt.Sprintf("INSERT INTO schema_migrations (version, name, checksum) VALUES (%d, %s, %s)",
			m.Version, QuoteString(m.Name), QuoteString(m.Checksum))
		if err := eng.Exec(ctx, rec); err != nil {
			return done, fmt.Errorf("clickhouse: migrate %04d_%s: record: %w", m.Version, m.Name, err)
		}
		log.Info("migration applied", "version", m.Version, "name", m.Name)
		done = append(done, m.Version)
	}
	if retentionDays < 0 {
		return done, nil
	}
	if err := setRetention(ctx, eng, layout, retentionDays, log); err != nil {
		return done, err
	}
	return done, nil
}

// ttlTables are the tables whose TTL follows the configured retention,
// each with the time column it is counted from.
var ttlTables = []struct{ name, column string }{
	{"audit_events", "ts"}, {"pipeline_messages", "ts"}, {"lifecycle_events", "time"}, {"event_ids", "ts"},
}

func setRetention(ctx context.Context, eng Engine, layout chschema.Layout, days int, log *slog.Logger) error {
	names := make([]string, len(ttlTables))
	for i, t := range ttlTables {
		names[i] = layout.LocalTable(t.name)
	}
	res, err := eng.Query(ctx, "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() AND name IN ('"+strings.Join(names, "','")+"')")
	if err != nil {
		return fmt.Errorf("clickhouse: migrate: read TTL: %w", err)
	}
	current := map[string]string{}
	for _, r := range res.Rows {
		current[ValueString(r[0])] = ValueString(r[1])
	}
	for _, t := range ttlTables {
		table := layout.LocalTable(t.name) + layout.OnCluster()
		full := current[layout.LocalTable(t.name)]
		want := fmt.Sprintf("TTL toDateTime(%s) + toIntervalDay(%d)", t.column, days)
		var stmt string
		switch {
		case days == 0 && strings.Contains(full, " TTL "):
			stmt = "ALTER TABLE " + table + " REMOVE TTL"
		case days > 0 && !strings.Contains(full, want):
			stmt = fmt.Sprintf("ALTER TABLE %s MODIFY TTL toDateTime(%s) + INTERVAL %d DAY", table, t.column, days)
		default:
			continue
		}
		if err := eng.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("clickhouse: migrate: set retention of %s: %w", t.name, err)
		}
		log.Info("retention set", "table", t.name, "days", days)
	}
	return nil
}
