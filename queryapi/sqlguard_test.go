package queryapi

import (
	"errors"
	"strings"
	"testing"
)

func TestGuardSQLRefuses(t *testing.T) {
	for _, tc := range []struct{ name, sql, why string }{
		{"file table function", "SELECT * FROM file('/etc/passwd', 'LineAsString')", "function file"},
		{"file upper case", "SELECT * FROM FILE('/etc/passwd')", "function FILE"},
		{"file scalar", "SELECT file('/etc/passwd')", "function file"},
		{"file in subquery", "SELECT count() FROM (SELECT * FROM file('/etc/passwd'))", "function file"},
		{"file in CTE", "WITH x AS (SELECT * FROM file('/etc/passwd')) SELECT * FROM x", "function file"},
		{"file in IN", "SELECT 1 WHERE 'a' IN (SELECT * FROM file('/etc/passwd'))", "function file"},
		{"fileCluster", "SELECT * FROM fileCluster('c', '/etc/passwd')", "function fileCluster"},
		{"comment before paren", "SELECT * FROM file/* x */('/etc/passwd')", "function file"},
		{"line comment before paren", "SELECT * FROM file -- x\n('/etc/passwd')", "function file"},
		{"newline before paren", "SELECT * FROM file\n\t('/etc/passwd')", "function file"},
		{"unicode space before paren", "SELECT * FROM file\u00a0('/etc/passwd')", "function file"},
		{"backquoted name", "SELECT * FROM `file`('/etc/passwd')", "function file"},
		{"double-quoted name", `SELECT * FROM "FiLe"('/etc/passwd')`, "function FiLe"},
		{"escaped quoted name", "SELECT * FROM `\\x66ile`('/etc/passwd')", "escaped"},
		{"url", "SELECT * FROM url('http://169.254.169.254/', 'LineAsString')", "function url"},
		{"urlCluster", "SELECT * FROM urlCluster('c', 'http://x/')", "function urlCluster"},
		{"s3", "SELECT * FROM s3('https://b.s3.amazonaws.com/x')", "function s3"},
		{"s3Cluster", "SELECT * FROM s3Cluster('c', 'https://x')", "function s3Cluster"},
		{"gcs", "SELECT * FROM gcs('https://x')", "function gcs"},
		{"hdfs", "SELECT * FROM hdfs('hdfs://x/y')", "function hdfs"},
		{"remote", "SELECT * FROM remote('10.0.0.1', system.one)", "function remote"},
		{"remoteSecure", "SELECT * FROM remoteSecure('10.0.0.1', system.one)", "function remoteSecure"},
		{"cluster", "SELECT * FROM cluster('c', system.one)", "function cluster"},
		{"clusterAllReplicas", "SELECT * FROM clusterAllReplicas('c', system.one)", "function clusterAllReplicas"},
		{"mysql", "SELECT * FROM mysql('h:3306', 'db', 't', 'u', 'p')", "function mysql"},
		{"postgresql", "SELECT * FROM postgresql('h', 'db', 't', 'u', 'p')", "function postgresql"},
		{"jdbc", "SELECT * FROM jdbc('x', 't')", "function jdbc"},
		{"odbc", "SELECT * FROM odbc('x', 't')", "function odbc"},
		{"mongodb", "SELECT * FROM mongodb('h', 'db', 'c', 'u', 'p', 'x String')", "function mongodb"},
		{"redis", "SELECT * FROM redis('h', 'k', 'k String')", "function redis"},
		{"sqlite", "SELECT * FROM sqlite('/x.db', 't')", "function sqlite"},
		{"executable", "SELECT * FROM executable('sh', 'LineAsString', 'x String')", "function executable"},
		{"azureBlobStorage", "SELECT * FROM azureBlobStorage('c', 'x')", "function azureBlobStorage"},
		{"azureBlobStorageCluster", "SELECT * FROM azureBlobStorageCluster('c', 'x')", "function azureBlobStorageCluster"},
		{"input", "SELECT * FROM input('x String')", "function input"},
		{"iceberg", "SELECT * FROM iceberg('x')", "function iceberg"},
		{"icebergLocal", "SELECT * FROM icebergLocal('/x')", "function icebergLocal"},
		{"deltaLake", "SELECT * FROM deltaLake('x')", "function deltaLake"},
		{"hudi", "SELECT * FROM hudi('x')", "function hudi"},
		{"dictGet", "SELECT dictGet('d', 'a', 1)", "function dictGet"},
		{"dictionary", "SELECT * FROM dictionary('d')", "function dictionary"},
		{"catboostEvaluate", "SELECT catboostEvaluate('/m.bin', 1)", "function catboostEvaluate"},
		{"into outfile", "SELECT 'x' INTO OUTFILE '/tmp/x'", "OUTFILE"},
		{"into outfile lower", "select 1 into outfile 'x' truncate", "OUTFILE"},
		{"from infile", "SELECT 1 FROM INFILE '/etc/passwd'", "OUTFILE"},
		{"two statements", "SELECT 1; SELECT 2", "one statement"},
		{"statement after semicolon", "SELECT 1; DROP TABLE audit_events", "one statement"},
		{"drop", "DROP TABLE audit_events", "only SELECT"},
		{"insert", "INSERT INTO audit_events SELECT * FROM audit_events", "only SELECT"},
		{"insert into function", "INSERT INTO FUNCTION file('/tmp/x') SELECT 1", "only SELECT"},
		{"set", "SET readonly = 0", "only SELECT"},
		{"system", "SYSTEM FLUSH LOGS", "only SELECT"},
		{"comment hides keyword", "/* SELECT */ DROP TABLE x", "only SELECT"},
		{"empty after comments", "-- nothing\n/* at all */", "only SELECT"},
		{"readonly setting", "SELECT 1 SETTINGS readonly = 0", "readonly"},
		{"readonly in subquery", "SELECT * FROM (SELECT 1 SETTINGS readonly = 0)", "readonly"},
		{"file-reading setting", "SELECT 1 FORMAT Template SETTINGS format_template_resultset = '/etc/passwd'", "format_template_resultset"},
		{"file-writing setting", "SELECT 1 FORMAT Protobuf SETTINGS output_format_schema = '/tmp/x.proto'", "output_format_schema"},
		{"second setting", "SELECT 1 SETTINGS max_threads = 1, allow_introspection_functions = 1", "allow_introspection_functions"},
		{"setting after float value", "SELECT 1 SETTINGS max_execution_time = 1.5, format_schema = 'x'", "format_schema"},
		{"setting after negative value", "SELECT 1 SETTINGS max_threads = -1, format_schema = 'x'", "format_schema"},
		{"setting after exponent", "SELECT 1 SETTINGS max_execution_time = 1e-3, format_schema = 'x'", "format_schema"},
		{"double equals", "SELECT 1 SETTINGS max_threads == 1, format_schema == 'x'", "format_schema"},
		{"first setting double equals", "SELECT 1 SETTINGS format_schema == 'x'", "format_schema"},
		{"commented setting", "SELECT 1 SETTINGS /* x */ format_schema /* y */ = 'x'", "format_schema"},
		{"quoted setting", "SELECT 1 SETTINGS `format_schema` = 'x'", "format_schema"},
		{"settings in subquery", "SELECT * FROM (SELECT 1 SETTINGS max_threads = 1, format_schema = 'x')", "format_schema"},
		{"setting after array value", "SELECT 1 SETTINGS max_threads = 1, final = [1, 2], format_schema = 'x'", "format_schema"},
		{"heredoc", "SELECT $$ ' $$, file('/etc/passwd') -- '", "'$'"},
		{"named heredoc", "SELECT $a$x$a$", "'$'"},
		{"dollar in name", "SELECT a$b", "'$'"},
		{"unclosed string", "SELECT 'abc", "unclosed"},
		{"unclosed comment", "SELECT 1 /* x", "unclosed"},
		{"nested comment", "SELECT 1 /* /* */ , file('/etc/passwd') */", "nested comment"},
		// Semicolons and quotes inside literals must not confuse the lexer
		// into skipping real code.
		{"escaped quote then file", `SELECT 'it\'s', file('/etc/passwd')`, "function file"},
		{"doubled quote then file", `SELECT 'it''s', file('/etc/passwd')`, "function file"},
		{"backslash at end of literal", `SELECT 'a\\', file('/etc/passwd')`, "function file"},
		{"semicolon in string then drop", "SELECT ';'; DROP TABLE x", "one statement"},
		{"hash comment", "SELECT 1 # x\n, file('/etc/passwd')", "function file"},
		{"slash comment", "SELECT 1 // x\n, file('/etc/passwd')", "function file"},
		{"CR does not end a comment", "SELECT 1 -- x\r'\n, file('/etc/passwd') --'", "function file"},
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
}

func TestGuardSQLAllows(t *testing.T) {
	for _, tc := range []struct{ name, sql, want string }{
		{"select", "SELECT 1", "SELECT 1\nSETTINGS readonly = 1"},
		{"trailing semicolon", "SELECT 1;  \n", "SELECT 1\nSETTINGS readonly = 1"},
		{"trailing comment", "SELECT 1 -- the end", "SELECT 1\nSETTINGS readonly = 1"},
		{"leading comment", "-- hi\n/* there */ SELECT 1", "-- hi\n/* there */ SELECT 1\nSETTINGS readonly = 1"},
		{"parenthesised", "(SELECT 1)", "(SELECT 1)\nSETTINGS readonly = 1"},
		{"format", "SELECT 1 FORMAT CSV", "SELECT 1 FORMAT CSV\nSETTINGS readonly = 1"},
		{"own settings", "SELECT 1 SETTINGS max_threads = 1", "SELECT 1 SETTINGS readonly = 1, max_threads = 1"},
		{"own settings before format", "SELECT 1 SETTINGS max_threads=1 FORMAT CSV", "SELECT 1 SETTINGS readonly = 1, max_threads=1 FORMAT CSV"},
		{"own settings after format", "SELECT 1 FORMAT CSV SETTINGS max_execution_time = 10, max_result_rows = 5",
			"SELECT 1 FORMAT CSV SETTINGS readonly = 1, max_execution_time = 10, max_result_rows = 5"},
		{"float setting value", "SELECT 1 SETTINGS max_execution_time = 1.5, max_threads = 2", "SELECT 1 SETTINGS readonly = 1, max_execution_time = 1.5, max_threads = 2"},
		{"subquery settings stay", "SELECT * FROM (SELECT 1 SETTINGS max_threads = 2)", "SELECT * FROM (SELECT 1 SETTINGS max_threads = 2)\nSETTINGS readonly = 1"},
		{"with", "WITH 1 AS x SELECT x", ""},
		{"show", "SHOW TABLES", ""},
		{"describe", "DESCRIBE TABLE audit_events", ""},
		{"desc", "desc audit_events", ""},
		{"exists", "EXISTS TABLE audit_events", ""},
		{"explain", "EXPLAIN SELECT count() FROM audit_events", ""},
		{"file in a string", "SELECT count() FROM audit_events WHERE exe = 'file(/etc/passwd)'", ""},
		{"outfile in a string", "SELECT 'INTO OUTFILE x'", ""},
		{"semicolon in a string", "SELECT count() FROM audit_events WHERE title = 'a;b'", ""},
		{"file in a comment", "SELECT /* file('/etc/passwd') */ 1", ""},
		{"file as a column", "SELECT file FROM (SELECT 1 AS file)", ""},
		{"quoted column", "SELECT `file` FROM (SELECT 1 AS `file`)", ""},
		{"system.settings", "SELECT name, value FROM system.settings WHERE name = 'readonly'", ""},
		{"ordinary functions", "SELECT toDate(ts) AS day, countIf(event = 'login'), uniqExact(host), arrayStringConcat(args, ' '), " +
			"match(exe, '/(su|sudo)$'), toUInt64OrZero(rec_id), groupArray(loginid), lower(host), if(res = 'success', 1, 0), " +
			"formatDateTime(ts, '%F'), domain('http://x/'), URLHash('x'), multiIf(1, 2, 3) " +
			"FROM audit_events FINAL WHERE req_auth_id = 'x' GROUP BY day ORDER BY day LIMIT 10", ""},
		{"format function", "SELECT format('{} {}', 'a', 'b')", ""},
		{"numbers", "SELECT * FROM numbers(3)", ""},
		{"union", "SELECT 1 UNION ALL SELECT 2", ""},
		{"non-ASCII literal", "SELECT 'héllo wörld'", ""},
		{"dollar in string", "SELECT match(exe, '^/usr/bin/.*$')", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := guardSQL(tc.sql)
			if err != nil {
				t.Fatalf("guardSQL(%q): %v", tc.sql, err)
			}
			want := tc.want
			if want == "" {
				want = tc.sql + "\nSETTINGS readonly = 1"
			}
			if got != want {
				t.Errorf("guardSQL(%q)\n got %q\nwant %q", tc.sql, got, want)
			}
		})
	}
	for _, nq := range NamedQueries() {
		args := make([]string, len(nq.Args))
		for i := range args {
			args[i] = "ocid1.opctlaccessrequest.a"
		}
		if _, err := guardSQL(nq.SQL(args)); err != nil {
			t.Errorf("named query %s refused: %v", nq.Name, err)
		}
	}
}

func TestQueryFormat(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT 1":                                        "",
		"SELECT 1 FORMAT CSV":                             "CSV",
		"SELECT 1 FORMAT JSONEachRow;":                    "JSONEachRow",
		"SELECT 1 FORMAT CSV SETTINGS max_threads = 1":    "CSV",
		"SELECT format('{}', 1) AS f":                     "",
		"SELECT * FROM (SELECT 1 FORMAT TSV) FORMAT JSON": "JSON",
		"SELECT 'FORMAT CSV'":                             "",
		"SELECT 1 FORMAT CSV -- and a comment":            "CSV",
	} {
		if got := queryFormat(sql); got != want {
			t.Errorf("queryFormat(%q) = %q, want %q", sql, got, want)
		}
	}
}
