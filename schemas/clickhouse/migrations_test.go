package clickhouse

import "testing"

func TestMigrationsParse(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Name != "schema_migrations" {
		t.Fatalf("first migration must create schema_migrations, got %+v", ms)
	}
	for i, m := range ms {
		if m.Version != uint32(i+1) {
			t.Errorf("%s: version %d, want %d (no gaps)", m.Name, m.Version, i+1)
		}
		if len(m.Statements) == 0 || len(m.Checksum) != 64 {
			t.Errorf("%s: %d statements, checksum %q", m.Name, len(m.Statements), m.Checksum)
		}
	}
}
