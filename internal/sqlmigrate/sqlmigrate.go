// Package sqlmigrate reads numbered SQL migration files (NNNN_name.sql)
// from a file system, in version order, each with its statements and
// checksum. The ClickHouse schema (schemas/clickhouse) and the policy
// store (policy/migrations) keep their migrations this way; each applies
// them with its own engine and records them in its schema_migrations
// table.
//
// A file holds one or more statements separated by a semicolon at the end
// of a line; lines starting with -- are comments. Applied files are never
// edited: a change is a new file (the checksum catches an edit).
package sqlmigrate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one numbered migration file.
type Migration struct {
	Version    uint32
	Name       string   // file name without the version and extension
	Statements []string // SQL statements, without the trailing semicolons
	Checksum   string   // SHA-256 of the file, hex
}

// Load returns the migrations of the *.sql files in dir of fsys, in
// version order; what names them in errors ("clickhouse migrations").
// Versions must be unique and start at 1 without gaps.
func Load(fsys fs.FS, dir, what string) ([]Migration, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var ms []Migration
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		m, err := Parse(path.Base(n), b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%s: no migration in %s", what, dir)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != uint32(i+1) {
			return nil, fmt.Errorf("%s: %04d_%s: version %d, want %d (unique, no gaps)", what, m.Version, m.Name, m.Version, i+1)
		}
	}
	return ms, nil
}

// Parse parses one migration file named file (NNNN_name.sql).
func Parse(file string, b []byte) (Migration, error) {
	base := strings.TrimSuffix(file, ".sql")
	num, name, ok := strings.Cut(base, "_")
	v, err := strconv.ParseUint(num, 10, 32)
	if !ok || err != nil || name == "" {
		return Migration{}, fmt.Errorf("%s: want NNNN_name.sql", file)
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
		return Migration{}, fmt.Errorf("%s: no statement", file)
	}
	return m, nil
}
