// Package clickhouse holds auditpipe's ClickHouse schema as numbered
// migration files (NNNN_name.sql), embedded in the binary. The indexer
// applies the ones not yet recorded in schema_migrations, in order, at every
// start; each file is idempotent on its own (CREATE … IF NOT EXISTS).
//
// A file holds one or more statements separated by a semicolon at the end
// of a line (internal/sqlmigrate reads them). Applied files are never
// edited: a change is a new file. Each file is also a text/template whose
// placeholders (Layout) render it for one server — the text it always had —
// or for a replicated, sharded cluster: one source for both.
package clickhouse

import (
	"embed"

	"github.com/auditpipe/auditpipe/internal/sqlmigrate"
)

//go:embed *.sql
var files embed.FS

// Migration is one numbered migration file.
type Migration = sqlmigrate.Migration

// Migrations returns the embedded migrations rendered for one server, in
// version order (Render with the zero Layout).
func Migrations() ([]Migration, error) {
	return Render(Layout{})
}
