package queryapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"

	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
)

func TestGuardStatementSettings(t *testing.T) {
	for _, tc := range []struct {
		name, sql string
		opt       guardOptions
		want, why string // want the guarded SQL, or why it is refused
	}{
		{"URL setting, select", "SELECT 1", guardOptions{settings: []Setting{{"final", "1"}}}, "SELECT 1\nSETTINGS final = 1, readonly = 1", ""},
		{"URL settings before the query's own", "SELECT 1 SETTINGS final = 0", guardOptions{settings: []Setting{{"final", "1"}, {"max_threads", "2"}}}, "SELECT 1 SETTINGS final = 1, max_threads = 2, readonly = 1, final = 0", ""},
		{"string value quoted", "SELECT 1", guardOptions{settings: []Setting{{"date_time_output_format", "iso' , readonly = '0"}}}, "SELECT 1\nSETTINGS date_time_output_format = 'iso\\' , readonly = \\'0', readonly = 1", ""},
		{"URL readonly refused", "SELECT 1", guardOptions{settings: []Setting{{"readonly", "0"}}}, "", "setting readonly"},
		{"URL setting off the list", "SELECT 1", guardOptions{settings: []Setting{{"format_schema", "/etc/passwd"}}}, "", "setting format_schema"},
		{"URL setting bad name", "SELECT 1", guardOptions{settings: []Setting{{"max_threads = 1, readonly", "0"}}}, "", "not allowed"},
		{"writer setting refused to a reader", "SELECT 1", guardOptions{settings: []Setting{{"insert_deduplication_token", "x"}}}, "", "insert_deduplication_token"},
		{"readonly as a column", "SELECT name, readonly FROM system.settings", guardOptions{}, "SELECT name, readonly FROM system.settings\nSETTINGS readonly = 1", ""},
		{"readonly assigned", "SELECT 1 WHERE readonly = 0", guardOptions{}, "", "readonly"},
		{"quoted readonly assigned", "SELECT 1 SETTINGS max_threads = 1, `readonly` = 0", guardOptions{}, "", "readonly"},
		{"insert refused to a reader", "INSERT INTO t FORMAT Native", guardOptions{}, "", "only SELECT"},

		{"writer insert, settings before FORMAT", "INSERT INTO t (a) FORMAT Native", guardOptions{write: true, settings: []Setting{{"insert_deduplication_token", "tok"}}}, "INSERT INTO t (a) SETTINGS insert_deduplication_token = 'tok' FORMAT Native", ""},
		{"writer insert, own SETTINGS", "INSERT INTO t SETTINGS async_insert = 0 VALUES (1)", guardOptions{write: true, settings: []Setting{{"final", "1"}}}, "INSERT INTO t SETTINGS final = 1, async_insert = 0 VALUES (1)", ""},
		{"writer insert values", "INSERT INTO t VALUES (1, 'a')", guardOptions{write: true}, "INSERT INTO t VALUES (1, 'a')", ""},
		{"writer DDL keeps its table settings", "CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a SETTINGS index_granularity = 8192", guardOptions{write: true, settings: []Setting{{"final", "1"}}}, "CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a SETTINGS index_granularity = 8192", ""},
		{"writer select: no readonly", "SELECT 1", guardOptions{write: true}, "SELECT 1", ""},
		{"writer alter", "ALTER TABLE t MODIFY TTL toDateTime(ts) + INTERVAL 3 DAY", guardOptions{write: true}, "ALTER TABLE t MODIFY TTL toDateTime(ts) + INTERVAL 3 DAY", ""},
		{"writer insert into function", "INSERT INTO FUNCTION file('/tmp/x', 'CSV') SELECT 1", guardOptions{write: true}, "", "FUNCTION"},
		{"writer insert into table function", "INSERT INTO TABLE FUNCTION url('http://x/', 'CSV') SELECT 1", guardOptions{write: true}, "", "INSERT INTO a table only"},
		{"writer File engine", "CREATE TABLE x (a String) ENGINE = File(CSV, '/tmp/x')", guardOptions{write: true}, "", "engine File"},
		{"writer quoted engine", "CREATE TABLE x (a String) ENGINE = `EmbeddedRocksDB` PRIMARY KEY a", guardOptions{write: true}, "", "engine EmbeddedRocksDB"},
		{"writer Log engine", "CREATE TABLE x (a String) ENGINE = Log", guardOptions{write: true}, "", "engine Log"},
		{"writer disk setting", "CREATE TABLE x (a UInt8) ENGINE = MergeTree ORDER BY a SETTINGS disk = disk(type = local, path = '/tmp/x/')", guardOptions{write: true}, "", "DISK"},
		{"writer storage policy", "CREATE TABLE x (a UInt8) ENGINE = MergeTree ORDER BY a SETTINGS storage_policy = 'p'", guardOptions{write: true}, "", "storage_policy"},
		{"writer dictionary", "CREATE DICTIONARY d (a String) PRIMARY KEY a SOURCE(CLICKHOUSE(TABLE 't')) LAYOUT(FLAT()) LIFETIME(0)", guardOptions{write: true}, "", "DICTIONARY"},
		{"writer attach", "ALTER TABLE t ATTACH PARTITION ID '1' FROM t2", guardOptions{write: true}, "", "ATTACH"},
		{"writer system", "SYSTEM FLUSH LOGS", guardOptions{write: true}, "", "only SELECT"},
		{"writer two statements", "INSERT INTO t VALUES (1); DROP TABLE t", guardOptions{write: true}, "", "one statement"},
		{"writer outfile", "SELECT 1 INTO OUTFILE '/tmp/x'", guardOptions{write: true}, "", "OUTFILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := guardStatement(tc.sql, tc.opt)
			if tc.why != "" {
				if err == nil || !errors.Is(err, errRefused) || !strings.Contains(err.Error(), tc.why) {
					t.Fatalf("guardStatement(%q) = %q, %v; want refused mentioning %q", tc.sql, got, err, tc.why)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("guardStatement(%q)\n got %q, %v\nwant %q", tc.sql, got, err, tc.want)
			}
		})
	}
}

// nativeBlock encodes one revision-0 Native block (what chDB writes) with
// a UInt32, a String and a LowCardinality(String) column, row i holding
// (i, s[i], lc[i]).
func nativeBlock(t testing.TB, s, lc []string) []byte {
	t.Helper()
	b := proto.Block{ServerContext: &column.ServerContext{}}
	for _, c := range [][2]string{{"n", "UInt32"}, {"s", "String"}, {"lc", "LowCardinality(String)"}} {
		if err := b.AddColumn(c[0], column.Type(c[1])); err != nil {
			t.Fatal(err)
		}
	}
	for i := range s {
		if err := b.Append(uint32(i), s[i], lc[i]); err != nil {
			t.Fatal(err)
		}
	}
	buf := new(chproto.Buffer)
	if err := encodeBlock(buf, &b, 0); err != nil {
		t.Fatal(err)
	}
	return buf.Buf
}

// decodeNative decodes every block of b at revision into rows of text.
func decodeNative(t testing.TB, b []byte, revision uint64) [][]string {
	t.Helper()
	r := chproto.NewReader(bytes.NewReader(b))
	rows := [][]string{}
	for blocks := 0; ; blocks++ {
		blk := proto.Block{ServerContext: &column.ServerContext{}}
		if err := blk.Decode(r, revision); err != nil {
			if blocks == 0 {
				t.Fatalf("no block decoded at revision %d: %v", revision, err)
			}
			return rows
		}
		for i := range blk.Rows() {
			row := []string{}
			for _, c := range blk.Columns {
				row = append(row, fmt.Sprint(c.Row(i, false)))
			}
			rows = append(rows, row)
		}
	}
}

func TestNativeForRevision(t *testing.T) {
	two := append(nativeBlock(t, []string{"a", "b", "c"}, []string{"x", "y", "x"}), nativeBlock(t, nil, nil)...)
	for _, rev := range []uint64{revisionLowCardinality, revisionCustomSerialization, proto.DBMS_TCP_PROTOCOL_VERSION} {
		out, err := nativeForRevision(two, rev)
		if err != nil {
			t.Fatalf("revision %d: %v", rev, err)
		}
		// A ClickHouse client of that revision reads both blocks back.
		r := chproto.NewReader(bytes.NewReader(out))
		var rows []int
		for {
			b := proto.Block{ServerContext: &column.ServerContext{}}
			if err := b.Decode(r, rev); err != nil {
				break
			}
			rows = append(rows, b.Rows())
		}
		if len(rows) != 2 || rows[0] != 3 || rows[1] != 0 {
			t.Errorf("revision %d: blocks with %v rows, want [3 0]", rev, rows)
		}
		// Block info (8 bytes) first, as clickhouse-connect's probe checks.
		if !bytes.HasPrefix(out, []byte{1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0, 3, 3, 1, 'n'}) {
			t.Errorf("revision %d: starts % x", rev, out[:12])
		}
	}
	if out, err := nativeForRevision(two, 0); err != nil || !bytes.Equal(out, two) {
		t.Errorf("revision 0 changed the bytes: %v", err)
	}
	if _, err := nativeForRevision(two, 54400); err == nil {
		t.Error("revision 54400 (no LowCardinality) accepted")
	}
	if _, err := nativeForRevision(two[:len(two)-5], revisionCustomSerialization); err == nil {
		t.Error("truncated Native accepted")
	}
}

// FuzzGuardStatement checks invariants of what guardStatement lets through
// with a request setting: the guarded statement lexes, holds no ';', ends
// its settings with readonly = 1 for a reader, and carries the setting's
// value as exactly one literal token.
func FuzzGuardStatement(f *testing.F) {
	f.Add("SELECT 1", "final", "1", false)
	f.Add("SELECT 1 SETTINGS max_threads = 2 FORMAT CSV", "max_execution_time", "x' , readonly = '0", false)
	f.Add("INSERT INTO t (a) FORMAT Native", "insert_deduplication_token", "tok\\'", true)
	f.Add("WITH 1 AS x SELECT x -- c", "final", "-1.5", false)
	f.Fuzz(func(t *testing.T, sql, name, value string, write bool) {
		opt := guardOptions{write: write, settings: []Setting{{name, value}}}
		out, err := guardStatement(sql, opt)
		if err != nil {
			return
		}
		toks, err := lexSQL(out)
		if err != nil {
			t.Fatalf("guarded %q does not lex: %v", out, err)
		}
		for _, tk := range toks {
			if tk.text == ";" {
				t.Fatalf("guarded %q holds a ';'", out)
			}
		}
		if !write && !strings.Contains(out, "readonly = 1") {
			t.Fatalf("reader's %q lacks readonly = 1", out)
		}
		if lit := settingLiteral(value); strings.HasPrefix(lit, "'") {
			vt, err := lexSQL(lit)
			if err != nil || len(vt) != 1 || vt[0].kind != tokString || vt[0].text != lit {
				t.Fatalf("value %q as %s is not one string literal: %v %v", value, lit, vt, err)
			}
		}
	})
}

// FuzzNativeForRevision: a block as chDB writes it (revision 0) comes out
// for a client of revision 54454 with the same rows. The input is built
// from the fuzzed values: nativeForRevision reads chDB's own output, not
// the client's bytes (and clickhouse-go's decoder, which it uses, allocates
// what a length in its input says, so raw bytes only find that).
func FuzzNativeForRevision(f *testing.F) {
	f.Add("a", "x", "bb", "x", uint8(2))
	f.Add("", "", "", "", uint8(0))
	f.Add("tab\tnew\nline", "ü", "\x00", "lc", uint8(1))
	f.Fuzz(func(t *testing.T, s1, lc1, s2, lc2 string, n uint8) {
		s, lc := []string{s1, s2, s1 + s2}, []string{lc1, lc2, lc1}
		k := int(n % 4)
		in := nativeBlock(t, s[:k], lc[:k])
		out, err := nativeForRevision(append(in, in...), revisionCustomSerialization)
		if err != nil {
			t.Fatal(err)
		}
		want := decodeNative(t, append(in, in...), 0)
		if got := decodeNative(t, out, revisionCustomSerialization); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("rows %v, want %v", got, want)
		}
	})
}

// TestQueryHandlerProtocol: what the ClickHouse clients rely on, over
// plain HTTP: Native for a client_protocol_version, RowBinary formats as
// chDB writes them, param_x, settings in the URL (allowed, refused),
// query_id, and block compression refused.
func TestQueryHandlerProtocol(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	srv := httptest.NewServer(NewQueryHandler(eng, nil, QueryHandlerOptions{}))
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		params url.Values
		body   string
		status int
		check  func(t *testing.T, b []byte, h http.Header)
	}{
		{"Native, revision 54460", url.Values{"default_format": {"Native"}, "client_protocol_version": {"54460"}}, "SELECT 1 AS check", 200,
			func(t *testing.T, b []byte, _ http.Header) {
				if want := "\x01\x00\x02\xff\xff\xff\xff\x00\x01\x01\x05check\x05UInt8\x00\x01"; string(b) != want {
					t.Errorf("got %q, want %q", b, want)
				}
			}},
		{"Native, revision 0", url.Values{"default_format": {"Native"}}, "SELECT 1 AS check", 200,
			func(t *testing.T, b []byte, _ http.Header) {
				if want := "\x01\x01\x05check\x05UInt8\x01"; string(b) != want {
					t.Errorf("got %q, want %q", b, want)
				}
			}},
		{"RowBinaryWithNamesAndTypes", nil, "SELECT toUInt8(7) AS x FORMAT RowBinaryWithNamesAndTypes", 200,
			func(t *testing.T, b []byte, h http.Header) {
				if want := "\x01\x01x\x05UInt8\x07"; string(b) != want || h.Get("Content-Type") != "application/octet-stream" {
					t.Errorf("got %q %s, want %q", b, h.Get("Content-Type"), want)
				}
			}},
		{"param_x", url.Values{"param_who": {"it's"}, "param_n": {"41"}}, "SELECT {who:String}, {n:UInt8} + 1", 200,
			func(t *testing.T, b []byte, _ http.Header) {
				if string(b) != "it\\'s\t42\n" {
					t.Errorf("got %q", b)
				}
			}},
		{"URL setting applied", url.Values{"max_block_size": {"1234"}}, "SELECT getSetting('max_block_size')", 200,
			func(t *testing.T, b []byte, _ http.Header) {
				if string(b) != "1234\n" {
					t.Errorf("got %q", b)
				}
			}},
		{"URL setting refused", url.Values{"format_schema": {"/etc/passwd"}}, "SELECT 1", 403, nil},
		{"URL readonly refused", url.Values{"readonly": {"0"}}, "SELECT 1", 403, nil},
		{"query_id echoed", url.Values{"query_id": {"q-1"}}, "SELECT 1", 200,
			func(t *testing.T, _ []byte, h http.Header) {
				if h.Get("X-ClickHouse-Query-Id") != "q-1" {
					t.Errorf("X-ClickHouse-Query-Id %q", h.Get("X-ClickHouse-Query-Id"))
				}
			}},
		{"block compression refused", url.Values{"compress": {"1"}}, "SELECT 1", 400, nil},
		{"transport params ignored", url.Values{"session_id": {"s"}, "wait_end_of_query": {"1"}, "database": {"default"}, "send_progress_in_http_headers": {"1"}}, "SELECT 2", 200,
			func(t *testing.T, b []byte, _ http.Header) {
				if string(b) != "2\n" {
					t.Errorf("got %q", b)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+"/?"+tc.params.Encode(), "text/plain", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, b, tc.status)
			}
			if tc.check != nil {
				tc.check(t, b, resp.Header)
			}
		})
	}
}
