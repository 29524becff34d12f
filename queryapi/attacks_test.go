package queryapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
)

// Attack (issue 9): a bare boolean setting in a SETTINGS clause
// (`SETTINGS …, allow_experimental_eval_table_function`, no "= value")
// slipped past the settings check, which only looked at "name = value"
// items. Every item is now checked by name, bare or assigned.
func TestAttackBareSetting(t *testing.T) {
	for _, tc := range []struct{ name, sql, why string }{
		{"bare after assigned", "SELECT 1 SETTINGS max_threads = 1, allow_experimental_eval_table_function", "allow_experimental_eval_table_function"},
		{"bare first", "SELECT 1 SETTINGS allow_experimental_eval_table_function, max_threads = 1", "allow_experimental_eval_table_function"},
		{"bare alone", "SELECT 1 SETTINGS allow_introspection_functions", "allow_introspection_functions"},
		{"bare after bare allowed", "SELECT 1 SETTINGS final, allow_experimental_eval_table_function", "allow_experimental_eval_table_function"},
		{"bare quoted", "SELECT 1 SETTINGS max_threads = 1, `allow_experimental_eval_table_function`", "allow_experimental_eval_table_function"},
		{"bare in subquery", "SELECT * FROM (SELECT 1 SETTINGS max_threads = 1, allow_experimental_eval_table_function)", "allow_experimental_eval_table_function"},
		{"bare before format", "SELECT 1 SETTINGS final, allow_experimental_eval_table_function FORMAT CSV", "allow_experimental_eval_table_function"},
		{"bare readonly", "SELECT 1 SETTINGS max_threads = 1, readonly", "readonly"},
		{"bare after format", "SELECT 1 FORMAT CSV SETTINGS allow_experimental_eval_table_function", "allow_experimental_eval_table_function"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := guardSQL(tc.sql)
			if err == nil {
				t.Fatalf("guardSQL(%q) allowed it: %q", tc.sql, got)
			}
			if !errors.Is(err, errRefused) || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("guardSQL(%q) = %v; want errRefused mentioning %q", tc.sql, err, tc.why)
			}
		})
	}
	// Bare settings on the list are still fine (SETTINGS final means final = 1).
	if _, err := guardSQL("SELECT 1 SETTINGS final, max_threads = 2"); err != nil {
		t.Errorf("bare allowed setting refused: %v", err)
	}
}

// get sends one query request to srv and returns the status, the
// exception code header and the body.
func get(t *testing.T, srv *httptest.Server, method string, params url.Values, body string) (int, string, string) {
	t.Helper()
	u := srv.URL + "/"
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-ClickHouse-Exception-Code"), string(b)
}

// secretFile writes a file the endpoint must never read and returns its path.
func secretFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(p, []byte("top secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Attack (issue 9): eval() builds SQL from a string the guard never sees
// as SQL (`eval('SELECT * FROM file(”/etc/shadow”)')`), with the bare
// setting that enables it; also inside a subquery, and with the text split
// between the query URL parameter and the POST body. All refused (403,
// code 164) by the guard, before chDB runs anything.
func TestAttackEval(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	srv := httptest.NewServer(NewQueryHandler(eng, nil, QueryHandlerOptions{}))
	defer srv.Close()
	secret := secretFile(t)
	inner := "SELECT * FROM file(''" + secret + "'', ''LineAsString'')"
	on := " SETTINGS max_threads = 1, allow_experimental_eval_table_function"
	for _, tc := range []struct {
		name, method, query, body string
	}{
		{"GET", "GET", "SELECT * FROM eval('" + inner + "')" + on, ""},
		{"POST", "POST", "", "SELECT * FROM eval('" + inner + "')" + on},
		{"assigned setting", "GET", "SELECT * FROM eval('" + inner + "') SETTINGS allow_experimental_eval_table_function = 1", ""},
		{"subquery", "GET", "SELECT count() FROM (SELECT * FROM eval('" + inner + "'))" + on, ""},
		{"scalar subquery", "GET", "SELECT (SELECT any(*) FROM eval('" + inner + "'))" + on, ""},
		{"CTE", "GET", "WITH s AS (SELECT * FROM eval('" + inner + "')) SELECT * FROM s" + on, ""},
		{"IN subquery", "GET", "SELECT 1 WHERE 'top secret' IN (SELECT * FROM eval('" + inner + "'))" + on, ""},
		{"quoted name", "GET", "SELECT * FROM `eval`('" + inner + "')" + on, ""},
		{"upper case", "GET", "SELECT * FROM EVAL('" + inner + "')" + on, ""},
		{"split: name in URL, call in body", "POST", "SELECT * FROM eval", "('" + inner + "')" + on},
		{"split: setting in body", "POST", "SELECT * FROM eval('" + inner + "') SETTINGS max_threads = 1,", "allow_experimental_eval_table_function"},
		{"split: comment across", "POST", "SELECT * FROM eval /*", "*/ ('" + inner + "')" + on},
		{"URL setting, bare", "GET", "SELECT * FROM eval('" + inner + "')", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := url.Values{}
			if tc.query != "" {
				v.Set("query", tc.query)
			}
			if tc.name == "URL setting, bare" {
				v.Set("allow_experimental_eval_table_function", "")
			}
			status, code, body := get(t, srv, tc.method, v, tc.body)
			if status != http.StatusForbidden || code != "164" || strings.Contains(body, "top secret") {
				t.Errorf("status %d code %q body %q; want 403, code 164, no secret", status, code, body)
			}
		})
	}
}

// Attack (issue 9, found after): a table named as the right operand of IN
// is an Identifier in the parser's tree, not a TableIdentifier, so the
// table allow-list never saw it: 'default' IN system.users answered 1,
// and any table could be probed row by row. joinGet names its table in a
// string. Now refused; IN a list, a subquery, an allowed table or a
// column of a table's alias is not.
func TestAttackTableAsINOperand(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewQueryHandler(eng, nil, QueryHandlerOptions{}))
	defer srv.Close()
	for _, tc := range []struct {
		query string
		ok    bool
	}{
		{"SELECT 'default' IN system.users", false},
		{"SELECT 'default' NOT IN system.users", false},
		{"SELECT 'default' GLOBAL IN system.users", false},
		{"SELECT 'default' IN (system.users)", false},
		{"SELECT count() FROM audit_events WHERE host GLOBAL NOT IN system.processes", false},
		{"SELECT (1, 'default') IN SYSTEM.users", false},
		// The review's forms: system in any case, quoted, or with a
		// column after the table.
		{"SELECT count() FROM audit_events WHERE host IN system.users.name", false},
		{"SELECT count() FROM audit_events WHERE host IN SYSTEM.users", false},
		{"SELECT count() FROM audit_events WHERE host IN `system`.`users`", false},
		{"SELECT joinGet('system.users', 'name', 1)", false},
		{"SELECT 1 IN (1, 2)", true},
		{"SELECT 0 IN system.one", true},
		{"SELECT count() FROM audit_events AS e WHERE e.host IN (SELECT 'h')", true},
		{"SELECT count() FROM audit_events AS e WHERE e.host IN e.host", true},
		{"SELECT count() FROM audit_events WHERE host IN audit_events.host", true},
		{"SELECT count() FROM (SELECT host FROM audit_events) AS s WHERE s.host IN s.host", true},
		// Review finding: any qualifier but system, information_schema
		// and default was taken for a table's alias, so a database the
		// store held one day would be readable through IN.
		{"SELECT 'x' IN otherdb.secrets", false},
		{"SELECT count() FROM audit_events AS e WHERE e.host IN otherdb.secrets", false},
	} {
		t.Run(tc.query, func(t *testing.T) {
			status, code, body := get(t, srv, "GET", url.Values{"query": {tc.query}}, "")
			switch {
			case tc.ok && (status == http.StatusForbidden || code == "164"):
				t.Errorf("status %d code %q body %q; want it not refused", status, code, body)
			case !tc.ok && (status != http.StatusForbidden || code != "164"):
				t.Errorf("status %d code %q body %q; want 403, code 164", status, code, body)
			}
		})
	}
}

// Attack (issue 9): the guard knew a list of dangerous functions, so any
// table function it did not name (eval, merge, loop, view, generateRandom,
// mergeTreeIndex, prometheusQuery, …, and whatever a new ClickHouse adds)
// reached chDB. Every table function chDB 26.7 has (system.table_functions)
// is tried: only the allow-listed ones pass the guard.
func TestAttackEveryTableFunction(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewQueryHandler(eng, nil, QueryHandlerOptions{}))
	defer srv.Close()
	b, err := eng.QueryFormat(ctx, "SELECT name FROM system.table_functions ORDER BY name", "TabSeparatedRaw")
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Fields(string(b))
	if len(names) < 50 {
		t.Fatalf("system.table_functions has %d names: %q", len(names), b)
	}
	allowed := 0
	for _, name := range names {
		for _, form := range []string{
			"SELECT * FROM " + name + "(1)",
			"SELECT * FROM " + name + "('x', 'y')",
			"SELECT * FROM `" + name + "`(1)",
			"SELECT * FROM audit_events WHERE host IN (SELECT * FROM " + name + "(1))",
			"DESCRIBE TABLE " + name + "(1)",
		} {
			status, code, body := get(t, srv, "GET", url.Values{"query": {form}}, "")
			if allowedTableFunctions[strings.ToLower(name)] {
				if status == http.StatusForbidden {
					t.Errorf("%s: allow-listed, refused: %s", form, body)
				}
				continue
			}
			if status != http.StatusForbidden || code != "164" {
				t.Errorf("%s: status %d code %q body %q; want 403, code 164", form, status, code, strings.TrimSpace(body))
			}
		}
		if allowedTableFunctions[strings.ToLower(name)] {
			allowed++
		}
	}
	if allowed == 0 {
		t.Errorf("no allow-listed table function found in system.table_functions")
	}
	// The allowed ones work.
	for _, q := range []string{"SELECT count() FROM numbers(10)", "SELECT * FROM generateSeries(1, 3)", "SELECT * FROM values('x UInt8', 1, 2)"} {
		if status, _, body := get(t, srv, "GET", url.Values{"query": {q}}, ""); status != http.StatusOK {
			t.Errorf("%s: %d %s", q, status, body)
		}
	}
}

// Attack (issue 9): statements other than reads. Every kind of statement
// ClickHouse 26.7 parses (ParserQuery: the DDL, DML, access, SYSTEM, KILL,
// SET, USE, BACKUP/RESTORE, transactions, …) is tried; only SELECT (and
// WITH, set operations), DESCRIBE, EXISTS, a few SHOW forms and EXPLAIN of
// a SELECT pass.
func TestAttackEveryStatementKind(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewQueryHandler(eng, nil, QueryHandlerOptions{}))
	defer srv.Close()
	refused := []string{
		"INSERT INTO audit_events (event) VALUES ('x')",
		"INSERT INTO FUNCTION file('/tmp/x', 'CSV') SELECT 1",
		"CREATE TABLE x (a UInt8) ENGINE = Memory",
		"CREATE VIEW v AS SELECT 1",
		"CREATE DATABASE d",
		"CREATE DICTIONARY d (a UInt8) PRIMARY KEY a SOURCE(FILE(path '/etc/passwd' format 'CSV')) LAYOUT(FLAT()) LIFETIME(0)",
		"CREATE FUNCTION f AS (x) -> x",
		"CREATE USER u", "CREATE ROLE r", "CREATE QUOTA q", "CREATE ROW POLICY p ON t USING 1", "CREATE SETTINGS PROFILE p",
		"CREATE NAMED COLLECTION n AS a = 1",
		"ALTER TABLE audit_events DELETE WHERE 1",
		"ALTER TABLE audit_events UPDATE host = 'x' WHERE 1",
		"ALTER USER default IDENTIFIED BY 'x'",
		"DROP TABLE audit_events", "DROP DATABASE default", "UNDROP TABLE audit_events",
		"DELETE FROM audit_events WHERE 1",
		"UPDATE audit_events SET host = 'x' WHERE 1",
		"TRUNCATE TABLE audit_events",
		"RENAME TABLE audit_events TO x",
		"EXCHANGE TABLES audit_events AND x",
		"OPTIMIZE TABLE audit_events FINAL",
		"ATTACH TABLE x FROM '/tmp/x' (a UInt8) ENGINE = Memory",
		"DETACH TABLE audit_events",
		"CHECK TABLE audit_events",
		"SYSTEM FLUSH LOGS", "SYSTEM SHUTDOWN", "SYSTEM DROP DNS CACHE",
		"KILL QUERY WHERE 1",
		"KILL MUTATION WHERE 1",
		"SET readonly = 0", "SET allow_experimental_eval_table_function = 1",
		"SET ROLE NONE", "SET DEFAULT ROLE NONE TO default",
		"USE system",
		"GRANT ALL ON *.* TO default", "REVOKE ALL ON *.* FROM default",
		"BACKUP TABLE audit_events TO File('/tmp/b')",
		"RESTORE TABLE audit_events FROM File('/tmp/b')",
		"BEGIN TRANSACTION", "COMMIT", "ROLLBACK",
		"WATCH v",
		"MOVE USER u TO local_directory",
		"SHOW PROCESSLIST", "SHOW GRANTS", "SHOW USERS", "SHOW ACCESS", "SHOW CREATE USER default",
		"SHOW PRIVILEGES", "SHOW QUOTA", "SHOW ROLES", "SHOW ENGINES",
		"EXPLAIN PIPELINE INSERT INTO audit_events SELECT * FROM audit_events",
		"EXPLAIN AST CREATE TABLE x (a UInt8) ENGINE = Memory",
		"EXPLAIN SYNTAX SYSTEM FLUSH LOGS",
		"SELECT 1 INTO OUTFILE '/tmp/x'",
		"SELECT 1; SELECT 2",
		"PARALLEL WITH SELECT 1",
		"EXECUTE AS default SELECT 1",
		"COPY audit_events TO '/tmp/x'",
	}
	for _, q := range refused {
		status, code, body := get(t, srv, "GET", url.Values{"query": {q}}, "")
		if status != http.StatusForbidden || code != "164" {
			t.Errorf("%s: status %d code %q body %q; want 403, code 164", q, status, code, strings.TrimSpace(body))
		}
	}
	allowed := []string{
		"SELECT count() FROM audit_events",
		"WITH 1 AS x SELECT x",
		"SELECT 1 UNION ALL SELECT 2",
		"(SELECT 1) EXCEPT (SELECT 2)",
		"SELECT 1 INTERSECT SELECT 1",
		"DESCRIBE TABLE audit_events",
		"DESC audit_events",
		"EXISTS TABLE audit_events",
		"SHOW TABLES",
		"SHOW DATABASES",
		"SHOW COLUMNS FROM audit_events",
		"SHOW CREATE TABLE audit_events",
		"EXPLAIN SELECT count() FROM audit_events",
		"EXPLAIN AST SELECT 1",
		"EXPLAIN PIPELINE SELECT count() FROM audit_events",
		"SELECT name FROM system.settings WHERE name = 'readonly'",
		"SELECT * FROM request_sessions",
	}
	for _, q := range allowed {
		if status, _, body := get(t, srv, "GET", url.Values{"query": {q}}, ""); status != http.StatusOK {
			t.Errorf("%s: status %d body %q; want 200", q, status, strings.TrimSpace(body))
		}
	}
}

// FuzzASTCheck: the parser check's readers of text never panic, and
// astInput keeps a statement the lexer reads, with no ';'.
func FuzzASTCheck(f *testing.F) {
	f.Add("SELECT 1 FORMAT CSV SETTINGS final", "SelectWithUnionQuery (children 1)\n ExpressionList\n")
	f.Add("SELECT * FROM eval('x');", "SelectWithUnionQuery\n TablesInSelectQuery\n  TableExpression\n   Function eval (children 1)\n")
	f.Add("", "  Function\n")
	f.Fuzz(func(t *testing.T, sql, ast string) {
		_ = checkAST(ast)
		in, err := astInput(sql)
		if err != nil {
			return
		}
		toks, err := lexSQL(in)
		if err != nil {
			t.Fatalf("astInput(%q) = %q, which does not lex: %v", sql, in, err)
		}
		for _, tk := range toks {
			if tk.text == ";" {
				t.Fatalf("astInput(%q) = %q holds a ';'", sql, in)
			}
		}
	})
}

// Attack (issue 9 review, noticed): getServerSetting('path') answered the
// store's data directory (and any other server setting: ports, paths of
// the user files and of the logs) to every reader. Refused by name, in any
// form the guard reads a call; getSetting (the query's own settings) is
// not.
func TestAttackServerSetting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "datadir-of-the-store")
	eng := clickhousetest.OpenEmbedded(t, dir)
	srv := httptest.NewServer(NewQueryHandler(eng, nil, QueryHandlerOptions{}))
	defer srv.Close()
	checkDataDirHidden(t, srv, []dataDirCase{
		{"SELECT getServerSetting('path')", false},
		{"SELECT `getServerSetting`('path')", false},
		{"SELECT getServerSetting /* c */ ('path')", false},
		{"SELECT * FROM (SELECT getServerSetting('path') AS p)", false},
		{"SELECT arrayMap(x -> getServerSetting(x), ['path'])", false},
		{"SELECT 1 WHERE getServerSetting('path') LIKE '%datadir%'", false},
		{"SELECT getSetting('max_threads')", true},
	})
}

// dataDirCase is a query of a data-directory test: refused (403, code
// 164) unless ok, and never answering the directory's name.
type dataDirCase struct {
	query string
	ok    bool
}

// checkDataDirHidden runs each case against srv, whose store lives under a
// directory named datadir-of-the-store.
func checkDataDirHidden(t *testing.T, srv *httptest.Server, cases []dataDirCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			status, code, body := get(t, srv, "GET", url.Values{"query": {tc.query}}, "")
			switch {
			case strings.Contains(body, "datadir-of-the-store"):
				t.Errorf("status %d body %q: the data directory leaked", status, body)
			case tc.ok && status != http.StatusOK:
				t.Errorf("status %d code %q body %q; want it answered", status, code, body)
			case !tc.ok && (status != http.StatusForbidden || code != "164"):
				t.Errorf("status %d code %q body %q; want 403, code 164", status, code, body)
			}
		})
	}
}

// TestAttackDataPathColumns catches what the issue 9 review noticed after
// getServerSetting was refused: the allow-listed system.tables
// (data_paths, metadata_path), system.databases (data_path,
// metadata_path) and system.parts (path) showed every reader where the
// store keeps its files. A statement reading one of them may not name
// those columns nor take all of them (*, t.*, COLUMNS, * EXCEPT: the guard
// does not expand matchers), count(*) aside.
func TestAttackDataPathColumns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "datadir-of-the-store")
	eng := clickhousetest.OpenEmbedded(t, dir)
	if err := eng.Exec(context.Background(), "CREATE TABLE audit_events (x UInt8) ENGINE = MergeTree ORDER BY x"); err != nil {
		t.Fatal(err)
	}
	if err := eng.Exec(context.Background(), "INSERT INTO audit_events VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewQueryHandler(eng, nil, QueryHandlerOptions{}))
	defer srv.Close()
	checkDataDirHidden(t, srv, []dataDirCase{
		{"SELECT data_paths FROM system.tables", false},
		{"SELECT `metadata_path` FROM system.tables", false},
		{"SELECT t.data_paths FROM system.tables AS t", false},
		{"SELECT system.tables.data_paths FROM system.tables", false},
		{"SELECT data_path FROM system.databases", false},
		{"SELECT path FROM system.parts", false},
		{"SELECT * FROM system.tables", false},
		{"SELECT * FROM system.databases", false},
		{"SELECT * FROM system.parts", false},
		{"SELECT t.* FROM system.parts AS t", false},
		{"SELECT * EXCEPT (data_paths, metadata_path) FROM system.tables", false}, // refused too: the guard does not expand *
		{"SELECT COLUMNS('path') FROM system.parts", false},
		{"SELECT t.COLUMNS('path') FROM system.parts AS t", false},
		{"SELECT COLUMNS(path, name) FROM system.parts", false},
		{"SELECT concat(*) FROM system.databases", false},
		{"SELECT (*,) FROM system.parts", false},
		{"SELECT name FROM (SELECT * FROM system.tables)", false},
		{"WITH t AS (SELECT * FROM system.databases) SELECT name FROM t", false},
		{"SELECT name FROM system.tables WHERE has(data_paths, '') = 0", false},
		{"SELECT x FROM system.tables ARRAY JOIN data_paths AS x", false},
		{"SELECT 1 FROM system.parts WHERE path LIKE '%datadir%'", false},
		// What clients read at connect and to list the store stays open.
		{"SELECT name, engine FROM system.tables WHERE database = currentDatabase()", true},
		{"SELECT name, engine FROM system.databases", true},
		{"SELECT count(*) FROM system.parts", true},
		{"SELECT table, sum(rows) FROM system.parts WHERE active GROUP BY table", true},
		{"SELECT * FROM audit_events", true},
		{"SHOW TABLES", true},
		{"SHOW DATABASES", true},
	})
}

// TestAttackNewlineInQuotedName catches the issue 9 review's finding F3:
// EXPLAIN AST prints aliases and identifiers unescaped, one node a line,
// and the parser check reads the tree from the lines. A newline in a
// backquoted alias forged lines of its own: `SELECT 1 AS `a\n  Function
// count…`, * FROM system.tables` passed as count(*) and returned
// data_paths, and `('x' AS `x\n     Foo`) IN system.processes` reached a
// refused table. A control character or a backslash (an escape that
// ClickHouse turns into one) in a quoted name is refused by the lexical
// guard; names without them still work.
func TestAttackNewlineInQuotedName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "datadir-of-the-store")
	eng := clickhousetest.OpenEmbedded(t, dir)
	if err := eng.Exec(context.Background(), "CREATE TABLE audit_events (x UInt8) ENGINE = MergeTree ORDER BY x"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewQueryHandler(eng, nil, QueryHandlerOptions{}))
	defer srv.Close()
	forged := "\n  Function count\n   ExpressionList\n    Literal x"
	checkDataDirHidden(t, srv, []dataDirCase{
		{"SELECT 1 AS `a" + forged + "`, * FROM system.tables WHERE database = 'default'", false},
		{"SELECT 1 AS \"a" + forged + "\", * FROM system.parts", false},
		{"SELECT 1 AS `a\\n  Function count\\n   ExpressionList\\n    Literal x`, * FROM system.tables", false},
		{"SELECT 1 AS `a\r  Function count`, * FROM system.tables", false},
		{"SELECT 1 AS `a\x01`, * FROM system.tables", false},
		{"SELECT ('x' AS `x\n     Foo`) IN system.processes", false},
		{"SELECT ('x' AS `x\n     Foo`) IN system.server_settings", false},
		{"SELECT 1 AS `plain name`, x AS \"other\" FROM audit_events", true},
	})
}
