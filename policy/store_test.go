package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
)

// TestMigrations: opening a store twice applies the migrations once,
// each recorded; a migration file changed after it was applied is
// refused at open.
func TestMigrations(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := b.open(t)
			ms, err := Migrations(cfg.Driver)
			if err != nil || len(ms) == 0 || ms[0].Name != "init" {
				t.Fatalf("migrations %+v %v", ms, err)
			}
			for i := 0; i < 2; i++ {
				st, err := OpenStore(ctx, cfg, nil)
				if err != nil {
					t.Fatalf("open #%d: %v", i+1, err)
				}
				var n int
				if err := st.db.QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil || n != len(ms) {
					t.Fatalf("open #%d: %d migrations recorded (%v), want %d", i+1, n, err, len(ms))
				}
				if err := st.Ping(ctx); err != nil || st.Driver() != cfg.Driver {
					t.Fatal(err)
				}
				st.Close()
			}
			st, err := OpenStore(ctx, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.db.Exec(st.d.rebind("UPDATE schema_migrations SET checksum = ? WHERE version = 1"), "0000"); err != nil {
				t.Fatal(err)
			}
			st.Close()
			if _, err := OpenStore(ctx, cfg, nil); err == nil || !strings.Contains(err.Error(), "changed after it was applied") {
				t.Fatalf("a changed migration: %v", err)
			}
		})
	}
}

// TestMigrationsMatch: both dialects' migrations create the same tables
// and columns (the store's queries are one set).
func TestMigrationsMatch(t *testing.T) {
	sq, _ := Migrations(DriverSQLite)
	pg, _ := Migrations(DriverPostgres)
	if len(sq) != len(pg) {
		t.Fatalf("%d SQLite migrations, %d PostgreSQL", len(sq), len(pg))
	}
	norm := strings.NewReplacer("INTEGER PRIMARY KEY AUTOINCREMENT", "SERIAL", "BIGSERIAL PRIMARY KEY", "SERIAL", "BLOB", "BYTES", "BYTEA", "BYTES")
	for i := range sq {
		if sq[i].Name != pg[i].Name || len(sq[i].Statements) != len(pg[i].Statements) {
			t.Fatalf("migration %d: %s (%d statements) and %s (%d)", i+1, sq[i].Name, len(sq[i].Statements), pg[i].Name, len(pg[i].Statements))
		}
		for j := range sq[i].Statements {
			if a, b := norm.Replace(sq[i].Statements[j]), norm.Replace(pg[i].Statements[j]); a != b {
				t.Errorf("migration %d statement %d differs beyond the dialect:\n%s\n%s", i+1, j+1, a, b)
			}
		}
	}
}

// TestOutbox: pending records in order with their headers, marked once,
// purged only once published, and counted.
func TestOutbox(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			err := f.store.tx(f.ctx, func(tx *txn) error {
				for i, k := range []string{"a", "b", "c"} {
					rec := kafka.Record{Key: []byte(k), Value: []byte("v" + k), Headers: []kafka.Header{{Key: "n", Value: []byte{byte(i)}}}}
					if err := tx.outbox("t1", rec, t0.Add(time.Duration(i)*time.Second)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			st, err := f.store.OutboxStats(f.ctx)
			if err != nil || st.Pending != 3 || !st.OldestPending.Equal(t0) {
				t.Fatalf("stats %+v %v", st, err)
			}
			pend, err := f.store.PendingOutbox(f.ctx, 2)
			if err != nil || len(pend) != 2 || string(pend[0].Key) != "a" || string(pend[1].Value) != "vb" || pend[1].Headers[0].Value[0] != 1 || pend[0].Topic != "t1" {
				t.Fatalf("pending %+v %v", pend, err)
			}
			if r := pend[0].Record(); r.Topic != "t1" || string(r.Key) != "a" {
				t.Errorf("record %+v", r)
			}
			if n, err := f.store.MarkPublished(f.ctx, t0.Add(time.Minute), pend[0].ID, pend[1].ID); err != nil || n != 2 {
				t.Fatalf("marked %d %v", n, err)
			}
			if n, _ := f.store.MarkPublished(f.ctx, t0.Add(time.Hour), pend[0].ID); n != 0 {
				t.Errorf("marked again: %d", n)
			}
			pend, _ = f.store.PendingOutbox(f.ctx, 10)
			if len(pend) != 1 || string(pend[0].Key) != "c" {
				t.Fatalf("pending after marking %+v", pend)
			}
			if n, err := f.store.PurgeOutbox(f.ctx, t0.Add(2*time.Minute)); err != nil || n != 2 {
				t.Fatalf("purged %d %v", n, err)
			}
			all, _ := f.store.Outbox(f.ctx, 0, 10)
			if len(all) != 1 || !all[0].Published.IsZero() {
				t.Fatalf("left %+v", all)
			}
		})
	}
}

// TestConfig: the defaults validate; each bad field is named.
func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.Store.Driver = "mysql"
	c.Store.MaxOpenConns = 0
	c.TickInterval = 0
	err := c.Validate()
	for _, want := range []string{"policy.store.driver", "policy.store.max_open_conns", "policy.tick_interval"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v does not name %s", err, want)
		}
	}
	c = DefaultConfig()
	c.Store.Driver = DriverPostgres
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "policy.store.dsn") {
		t.Errorf("postgres without a dsn: %v", err)
	}
}

// TestSQLitePathWithURICharacters: a data directory whose name holds
// URI syntax (%, ?, #) opens the file it names, not another one.
func TestSQLitePathWithURICharacters(t *testing.T) {
	for _, name := range []string{"a%41b", "a?mode=ro", "a#b", "100% sure?#1"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), name)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			cfg := DefaultStoreConfig()
			cfg.Path = filepath.Join(dir, "policy.db")
			st, err := OpenStore(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			st.Close()
			entries, err := os.ReadDir(filepath.Dir(dir))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Name() != name {
				t.Fatalf("the temp dir holds %v, want only %q", entries, name)
			}
			if fi, err := os.Stat(cfg.Path); err != nil || fi.Size() == 0 {
				t.Fatalf("%s: %v (size %v)", cfg.Path, err, fi)
			}
		})
	}
}
