package queryapi

import (
	"fmt"
	"strings"
)

// The second check of a reader's statement, by ClickHouse's own parser:
// after the lexical guard (guardStatement) lets a statement through, the
// endpoint asks chDB for its syntax tree (EXPLAIN AST, which parses and
// runs nothing) and checks the tree (checkAST): the kind of statement, every
// table function and function called, and every table read. The lexical
// guard is what keeps text that chDB would act on from reaching it; this
// check sees the statement as ClickHouse will run it, so a name the lexical
// guard does not know, or a token it reads differently from ClickHouse,
// is still refused.
//
// libchdb 26.7.3 also exports chdb_classify_query_n (read-only / mutating /
// control, and a statement count), but it says nothing of the table
// functions and tables a statement uses, so EXPLAIN AST is used instead.

// astRoots are the statement kinds (the root node of EXPLAIN AST) a reader
// may run. ShowTables is every SHOW that reads system tables (TABLES,
// DATABASES, DICTIONARIES, SETTINGS, …); Explain is allowed of a SELECT only.
var astRoots = map[string]bool{
	"SelectWithUnionQuery": true, "ShowTables": true, "ShowColumns": true, "DescribeQuery": true,
	"ExistsTableQuery": true, "ExistsViewQuery": true, "ExistsDatabaseQuery": true, "ExistsDictionaryQuery": true,
	"ShowCreateTableQuery": true, "ShowCreateViewQuery": true, "ShowCreateDatabaseQuery": true,
	"Explain": true,
}

// allowedSystemTables are the system tables a reader may read: what
// ClickHouse clients and Grafana read at connect and to list tables and
// columns, and the catalogues of settings, functions and formats. Not
// system.processes or the logs (other readers' queries), nor the
// access, disk and server tables.
var allowedSystemTables = map[string]bool{
	"one": true, "numbers": true, "numbers_mt": true, "zeros": true, "zeros_mt": true,
	"settings": true, "databases": true, "tables": true, "columns": true, "functions": true,
	"table_functions": true, "formats": true, "data_type_families": true, "time_zones": true,
	"table_engines": true, "parts": true, "build_options": true,
}

// pathColumns are the columns of the allow-listed system tables that show
// where the store keeps its files (system.tables: data_paths,
// metadata_path; system.databases: data_path, metadata_path;
// system.parts: path). A statement that reads one of those tables may not
// name such a column, nor take every column (*, t.*, COLUMNS(…), whose
// matchers the guard cannot expand): count(*) is the one use of * left.
var pathColumns = map[string]bool{"data_paths": true, "data_path": true, "metadata_path": true, "path": true}

// pathTables are the allow-listed system tables with pathColumns.
var pathTables = map[string]bool{"tables": true, "databases": true, "parts": true}

// readsPathTable reports whether nodes read one of pathTables.
func readsPathTable(nodes []astNode) bool {
	for _, n := range nodes {
		if n.kind != "TableIdentifier" {
			continue
		}
		if db, table, ok := strings.Cut(n.name, "."); ok && strings.EqualFold(db, "system") && pathTables[table] {
			return true
		}
	}
	return false
}

// allowedTable reports whether a reader may read the table named as
// EXPLAIN AST prints it: db.table or table (the store's own database).
func allowedTable(name string) bool {
	db, table, ok := strings.Cut(name, ".")
	if !ok {
		return true
	}
	switch strings.ToLower(db) {
	case "default":
		return true
	case "system":
		return allowedSystemTables[table]
	case "information_schema":
		return true
	}
	return false
}

// inFunctions are the functions (lower-cased) the IN operators parse to,
// whose second argument may be a table.
var inFunctions = map[string]bool{
	"in": true, "notin": true, "globalin": true, "globalnotin": true,
	"nullin": true, "notnullin": true, "globalnullin": true, "globalnotnullin": true,
}

// allowedINOperand is allowedTable for an identifier on the right of IN:
// one qualified by a table or an alias of the statement (e.host, where
// audit_events AS e) is a column; any other qualifier is a database,
// checked as allowedTable checks it (so a database the store may hold
// one day is not readable through IN).
func allowedINOperand(name string, qualifiers map[string]bool) bool {
	if q, _, ok := strings.Cut(name, "."); ok && qualifiers[q] {
		return true
	}
	return allowedTable(name)
}

// statementQualifiers returns what may qualify a column in the statement
// of nodes: its tables' names (db.table and table) and every alias.
func statementQualifiers(nodes []astNode) map[string]bool {
	q := map[string]bool{}
	for _, n := range nodes {
		if n.alias != "" {
			q[n.alias] = true
		}
		if n.kind == "TableIdentifier" && n.name != "" {
			q[n.name] = true
			if _, table, ok := strings.Cut(n.name, "."); ok {
				q[table] = true
			}
		}
	}
	return q
}

// astNode is one line of EXPLAIN AST output.
type astNode struct {
	depth             int
	kind, name, alias string
}

// parseAST reads the output of EXPLAIN AST: one node a line, indented by
// one space per level, "Kind [name] [(alias a)] [(children n)]".
func parseAST(out string) []astNode {
	var nodes []astNode
	for _, line := range strings.Split(out, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		f := strings.Fields(trimmed)
		if len(f) == 0 {
			continue
		}
		n := astNode{depth: len(line) - len(trimmed), kind: f[0]}
		if len(f) > 1 && !strings.HasPrefix(f[1], "(") {
			n.name = f[1]
		}
		for i := 1; i+1 < len(f); i++ {
			if f[i] == "(alias" {
				n.alias = strings.TrimSuffix(f[i+1], ")")
			}
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// checkAST checks the EXPLAIN AST output of a reader's statement: a
// statement kind of astRoots (an EXPLAIN of a SELECT only), table functions
// of allowedTableFunctions only, no function that blockedFunction refuses,
// and tables of the store's database, information_schema, or
// allowedSystemTables only. It returns an error wrapping errRefused, or nil.
func checkAST(out string) error {
	nodes := parseAST(out)
	if len(nodes) == 0 || nodes[0].depth != 0 {
		return fmt.Errorf("%w: the parser returned no statement", errRefused)
	}
	root := nodes[0]
	if !astRoots[root.kind] {
		return fmt.Errorf("%w: statement %s is not allowed here", errRefused, root.kind)
	}
	var (
		quals   = statementQualifiers(nodes)
		paths   = readsPathTable(nodes)
		parents []string // parents[d] is the kind of the last node at depth d
		names   []string // names[d] is the name of the last node at depth d
		index   []int    // index[d] is the last node at depth d's place among its siblings
	)
	for i, n := range nodes {
		if i > 0 && n.depth == 0 {
			if n.kind != "Identifier" && n.kind != "Literal" && n.kind != "Set" {
				return fmt.Errorf("%w: more than one statement (%s)", errRefused, n.kind)
			}
		}
		if n.depth > len(parents) {
			return fmt.Errorf("%w: cannot read the parser's answer", errRefused)
		}
		idx := 0
		if n.depth < len(index) {
			idx = index[n.depth] + 1
		}
		parents = append(parents[:n.depth], n.kind)
		names = append(names[:n.depth], n.name)
		index = append(index[:n.depth], idx)
		parent := ""
		if n.depth > 0 {
			parent = parents[n.depth-1]
		}
		// The right operand of IN may name a table with a bare identifier
		// (x IN system.users): the parser prints it as an Identifier, not
		// a TableIdentifier, so it is checked here.
		if n.kind == "Identifier" && idx == 1 && n.depth >= 2 && parent == "ExpressionList" &&
			parents[n.depth-2] == "Function" && inFunctions[strings.ToLower(names[n.depth-2])] && !allowedINOperand(n.name, quals) {
			return fmt.Errorf("%w: table %s is not allowed here", errRefused, n.name)
		}
		if root.kind == "Explain" && n.depth == 1 && n.kind != "SelectWithUnionQuery" && n.kind != "Set" {
			return fmt.Errorf("%w: EXPLAIN of %s is not allowed here", errRefused, n.kind)
		}
		if paths {
			switch n.kind {
			case "Identifier":
				if pathColumns[n.name[strings.LastIndexByte(n.name, '.')+1:]] {
					return fmt.Errorf("%w: column %s shows where the store keeps its files", errRefused, n.name)
				}
			case "Asterisk":
				if n.depth < 2 || parent != "ExpressionList" || parents[n.depth-2] != "Function" || !strings.EqualFold(names[n.depth-2], "count") {
					return fmt.Errorf("%w: * of system.tables, databases or parts (name the columns: some show where the store keeps its files)", errRefused)
				}
			case "QualifiedAsterisk", "ColumnsRegexpMatcher", "ColumnsListMatcher", "QualifiedColumnsRegexpMatcher", "QualifiedColumnsListMatcher":
				return fmt.Errorf("%w: %s of system.tables, databases or parts (name the columns: some show where the store keeps its files)", errRefused, n.kind)
			}
		}
		switch n.kind {
		case "Function":
			if parent == "TableExpression" && !allowedTableFunctions[strings.ToLower(n.name)] {
				return fmt.Errorf("%w: table function %s is not allowed here", errRefused, n.name)
			}
			if blockedFunction(n.name) {
				return fmt.Errorf("%w: function %s is not allowed here", errRefused, n.name)
			}
		case "TableIdentifier":
			if !allowedTable(n.name) {
				return fmt.Errorf("%w: table %s is not allowed here", errRefused, n.name)
			}
		}
	}
	return nil
}

// astInput returns the statement to give EXPLAIN AST: sql (which the lexical
// guard has accepted) without a trailing ';' and without its top-level
// FORMAT clause, so that EXPLAIN AST answers in the format asked for.
func astInput(sql string) (string, error) {
	toks, err := lexSQL(sql)
	if err != nil {
		return "", err
	}
	if n := len(toks); n > 0 && toks[n-1].kind == tokPunct && toks[n-1].text == ";" {
		toks = toks[:n-1]
	}
	if len(toks) == 0 {
		return "", fmt.Errorf("%w: empty statement", errRefused)
	}
	for _, t := range toks {
		if t.kind == tokPunct && t.text == ";" {
			return "", fmt.Errorf("%w: one statement per request", errRefused)
		}
	}
	var b strings.Builder
	from, depth := toks[0].start, 0
	for i, t := range toks {
		switch {
		case t.kind == tokPunct && t.text == "(":
			depth++
		case t.kind == tokPunct && t.text == ")":
			depth--
		case depth == 0 && t.kind == tokWord && strings.EqualFold(t.text, "FORMAT") && i+1 < len(toks) &&
			(toks[i+1].kind == tokWord || toks[i+1].kind == tokQuoted) &&
			(i+2 == len(toks) || toks[i+2].kind == tokWord && strings.EqualFold(toks[i+2].text, "SETTINGS")):
			b.WriteString(sql[from:t.start])
			from = toks[i+1].end
		}
	}
	b.WriteString(sql[from:toks[len(toks)-1].end])
	return b.String(), nil
}
