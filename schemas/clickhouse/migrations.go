// Package clickhouse holds auditpipe's ClickHouse schema as numbered
// migration files (NNNN_name.sql), embedded in the binary. The indexer
// applies the ones not yet recorded in schema_migrations, in order, at every
// start; each file is idempotent on its own (CREATE … IF NOT EXISTS).
//
// A file holds one or more statements separated by a semicolon at the end
// of a line. Applied files are never edited: a change is a new file.
package clickhouse

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed *.sql
var files embed.FS

// Migration is one numbered migration file.
type Migration struct {
	Version    uint32
	Name       string   // file name without the version and extension
	Statements []string // SQL statements, without the trailing semicolons
	Checksum   string   // SHA-256 of the file, hex
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("clickhouse migrations: %w", err)
	}
	var ms []Migration
	for _, n := range names {
		b, err := files.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("clickhouse migrations: %w", err)
		}
		m, err := parse(n, b)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("clickhouse migrations: version %d used twice", ms[i].Version)
		}
	}
	return ms, nil
}

func parse(file string, b []byte) (Migration, error) {
	base := strings.TrimSuffix(file, ".sql")
	num, name, ok := strings.Cut(base, "_")
	v, err := strconv.ParseUint(num, 10, 32)
	if !ok || err != nil || name == "" {
		return Migration{}, fmt.Errorf("clickhouse migrations: %s: want NNNN_name.sql", file)
	}
	sum := sha256.Sum256(b)
	m := Migration{Version: uint32(v), Name: name, Checksum: hex.EncodeToString(sum[:])}
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			stmt := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			m.Statements = append(m.Statements, stmt)
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		m.Statements = append(m.Statements, rest)
	}
	if len(m.Statements) == 0 {
		return Migration{}, fmt.Errorf("clickhouse migrations: %s: no statement", file)
	}
	return m, nil
}
