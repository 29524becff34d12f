package queryapi

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/auditpipe/auditpipe/clickhouse"
)

// The read-only guard of the query endpoint. chDB runs in this process with
// this process's rights, and ClickHouse can read and write files, call URLs
// and other servers and run programs from SQL (file(), url(), remote(),
// executable(), INTO OUTFILE, …). A statement is let through only when:
//
//   - it is one statement (a ';' may only end it) that starts with SELECT,
//     WITH, SHOW, DESCRIBE/DESC, EXISTS or EXPLAIN (or '(' then one of them);
//   - no function (table or scalar) it calls is one that reaches files,
//     URLs, other servers, dictionaries or programs (blockedFunction);
//   - it has no INTO OUTFILE or FROM INFILE;
//   - every setting it sets in a SETTINGS clause is on a short list of
//     harmless ones (allowedSettings): settings can also reach files
//     (format_schema, output_format_schema, format_template_*, …);
//   - it has no '$' outside literals (heredoc strings are not needed, and
//     refusing them keeps this lexer's idea of a string equal to
//     ClickHouse's).
//
// The check runs on tokens, as ClickHouse's own lexer (src/Parsers/Lexer.cpp)
// cuts them: string literals, quoted identifiers and comments (--, //, "# ",
// nested /* */) are skipped, so a ';' or a function name inside a string
// changes nothing, and a comment between a name and its '(' hides nothing.
//
// Then, as a second layer, the statement runs with readonly = 1 appended as
// a query-level setting (guardSQL): in chDB 26.7 that refuses every table
// function with a source (file, url, remote, executable, s3, mysql, …) even if
// the list above missed one, and any write. It does not stop INTO OUTFILE or
// the scalar file() function, which is why the lexer check comes first.

// errRefused is wrapped by every refusal of guardSQL.
var errRefused = errors.New("this endpoint is read-only")

type tokKind int

const (
	tokWord   tokKind = iota // bare word: keyword, identifier, number
	tokQuoted                // "identifier" or `identifier`
	tokString                // 'literal'
	tokPunct                 // one other character: ( ) , ; = . …
)

type sqlToken struct {
	kind       tokKind
	text       string // the word, the punctuation, or the raw quoted token
	start, end int    // byte offsets in the statement
}

// lexSQL cuts sql into significant tokens, dropping whitespace and
// comments. It fails on an unclosed literal or comment, a nested block
// comment, and on '$' outside literals.
func lexSQL(sql string) ([]sqlToken, error) {
	var toks []sqlToken
	i, n := 0, len(sql)
	for i < n {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c >= 0x80:
			// ClickHouse skips Unicode whitespace and refuses any other
			// non-ASCII byte outside literals; either way it separates.
			i++
		case c == '-' && i+1 < n && sql[i+1] == '-',
			c == '/' && i+1 < n && sql[i+1] == '/',
			c == '#' && i+1 < n && (sql[i+1] == ' ' || sql[i+1] == '!'):
			// Line comment: to the next '\n' only, as ClickHouse does.
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				i = n
			} else {
				i += j + 1
			}
		case c == '/' && i+1 < n && sql[i+1] == '*':
			// ClickHouse nests block comments. Refuse nesting rather than
			// rely on every reader of the text agreeing on it.
			j := strings.Index(sql[i+2:], "*/")
			if j < 0 {
				return nil, fmt.Errorf("%w: unclosed comment", errRefused)
			}
			if strings.Contains(sql[i+2:i+2+j], "/*") {
				return nil, fmt.Errorf("%w: nested comment", errRefused)
			}
			i += 2 + j + 2
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for {
				if j >= n {
					return nil, fmt.Errorf("%w: unclosed %c", errRefused, c)
				}
				if sql[j] == '\\' {
					j += 2
					continue
				}
				if sql[j] == c {
					if j+1 < n && sql[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			k := tokString
			if c != '\'' {
				k = tokQuoted
				// EXPLAIN AST prints identifiers and aliases as they are
				// (string literals escaped): a control character in one,
				// raw or as a backslash escape, could add lines of its own
				// to the tree the parser check reads (issue 9 review, F3).
				// No client needs one in a name.
				if bad := strings.IndexFunc(sql[i+1:j], func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }); bad >= 0 {
					return nil, fmt.Errorf("%w: a control character or an escaped character (backslash) in the quoted name at byte %d", errRefused, i+1+bad)
				}
			}
			toks = append(toks, sqlToken{kind: k, text: sql[i : j+1], start: i, end: j + 1})
			i = j + 1
		case c == '$':
			return nil, fmt.Errorf("%w: '$' (heredoc strings) not allowed", errRefused)
		case isWordByte(c):
			j := i + 1
			for j < n && isWordByte(sql[j]) {
				j++
			}
			if j < n && sql[j] == '$' {
				return nil, fmt.Errorf("%w: '$' (heredoc strings) not allowed", errRefused)
			}
			toks = append(toks, sqlToken{kind: tokWord, text: sql[i:j], start: i, end: j})
			i = j
		case c == '=' && i+1 < n && sql[i+1] == '=':
			// "==" is one token (equals) to ClickHouse.
			toks = append(toks, sqlToken{kind: tokPunct, text: "==", start: i, end: i + 2})
			i += 2
		default:
			toks = append(toks, sqlToken{kind: tokPunct, text: sql[i : i+1], start: i, end: i + 1})
			i++
		}
	}
	return toks, nil
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// quotedName returns the name in a quoted identifier, and false when it has
// a backslash escape (whose meaning this lexer does not decode).
func quotedName(raw string) (string, bool) {
	q := raw[:1]
	inner := raw[1 : len(raw)-1]
	if strings.ContainsRune(inner, '\\') {
		return "", false
	}
	return strings.ReplaceAll(inner, q+q, q), true
}

// readOnlyFirstWords are the statements the endpoint runs.
var readOnlyFirstWords = map[string]bool{
	"SELECT": true, "WITH": true, "SHOW": true, "DESCRIBE": true, "DESC": true, "EXISTS": true, "EXPLAIN": true,
}

// blockedExact and blockedPrefixes name, lower-cased, the functions (table
// or scalar) that reach outside the store: files, URLs, object stores, other
// servers and databases, message brokers, programs, dictionaries (whose
// sources can be any of those), models loaded from files, and the server's
// own configuration. A name is refused when it equals one of blockedExact
// or starts with one of blockedPrefixes.
var (
	blockedExact = map[string]bool{
		"url": true, "urlcluster": true, "input": true, "oss": true, "osscluster": true,
		"cosn": true, "hive": true, "jdbc": true, "odbc": true, "cluster": true,
		"clusterallreplicas": true, "remote": true, "remotesecure": true,
		// eval() runs SQL built from a string at run time: text this guard
		// never reads as SQL.
		"eval": true,
		// getServerSetting reads the server's configuration: the store's
		// data directory ('path'), the paths of its user files and logs,
		// its ports.
		"getserversetting": true,
	}
	blockedPrefixes = []string{
		"file", // file, fileCluster, and filesystem* (harmless, refused with them)
		"s3", "gcs", "hdfs", "azure", "iceberg", "deltalake", "hudi", "paimon",
		"datalake", "arrowflight", "ytsaurus",
		"mysql", "postgres", "mongo", "redis", "sqlite", "kafka", "nats", "rabbitmq",
		"executable", "dict", "catboost", "python", "disk",
		// joinGet names its table in a string, which the table check of
		// the parser's tree cannot see.
		"joinget",
	}
)

// allowedTableFunctions are the table functions a reader may call
// (lower-cased): generators of numbers and constant rows, none of which
// reads anything. Every other table function is refused, here when its
// name is in tableFunctions, and by the parser check (checkAST) whatever
// its name.
var allowedTableFunctions = map[string]bool{
	"numbers": true, "numbers_mt": true, "generateseries": true, "generate_series": true, "values": true,
}

// tableFunctions are the table functions of ClickHouse 26.7 (chDB
// 26.7.3's system.table_functions, lower-cased), less format and the
// allowed ones. format is also a scalar function (format('{} {}', a, b)),
// so this lexical check cannot refuse its name; checkAST refuses it as a
// table function. file and fuzzQuery are also scalar functions, refused as
// both. TestAttackEveryTableFunction fails when chDB gains a name that is
// neither here nor allowed.
var tableFunctions = map[string]bool{
	"arrowstream": true, "azureblobstorage": true, "azureblobstoragecluster": true, "cluster": true,
	"clusterallreplicas": true, "cosn": true, "deltalake": true, "deltalakeazure": true,
	"deltalakeazurecluster": true, "deltalakecluster": true, "deltalakelocal": true, "deltalakes3": true,
	"deltalakes3cluster": true, "dictionary": true, "eval": true, "executable": true, "file": true,
	"filecluster": true, "filesystem": true, "fuzzjson": true, "fuzzquery": true, "gcs": true,
	"generaterandom": true, "hdfs": true, "hdfscluster": true, "hudi": true, "hudicluster": true,
	"iceberg": true, "icebergazure": true, "icebergazurecluster": true, "icebergcluster": true,
	"iceberghdfs": true, "iceberghdfscluster": true, "iceberglocal": true, "iceberglocalcluster": true,
	"icebergs3": true, "icebergs3cluster": true, "input": true, "jdbc": true, "loop": true, "merge": true,
	"mergetreeanalyzeindexes": true, "mergetreeanalyzeindexesuuid": true, "mergetreeindex": true,
	"mergetreeprojection": true, "mergetreetextindex": true, "mongodb": true, "mysql": true, "null": true,
	"odbc": true, "oss": true, "paimon": true, "paimonazure": true, "paimonazurecluster": true,
	"paimoncluster": true, "paimonhdfs": true, "paimonhdfscluster": true, "paimonlocal": true,
	"paimons3": true, "paimons3cluster": true, "postgresql": true, "primes": true, "prometheusquery": true,
	"prometheusqueryrange": true, "redis": true, "remote": true, "remotesecure": true, "s3": true,
	"s3cluster": true, "sqlite": true, "sqlstandardvalues": true, "timeseriesdata": true,
	"timeseriesmetrics": true, "timeseriessamples": true, "timeseriesselector": true, "timeseriestags": true,
	"url": true, "urlcluster": true, "view": true, "viewexplain": true, "viewifpermitted": true, "ytsaurus": true,
	"zeros": true, "zeros_mt": true, // refused by chDB 26.7 under readonly = 1 anyway
}

// blockedFunction reports whether a call of name (table or scalar
// function) is refused: it reaches outside the store, builds SQL at run
// time, or is a table function off the allow-list.
func blockedFunction(name string) bool {
	l := strings.ToLower(name)
	if blockedExact[l] || tableFunctions[l] && !allowedTableFunctions[l] {
		return true
	}
	for _, p := range blockedPrefixes {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

// allowedSettings are the settings a statement may set in its own SETTINGS
// clause: limits and output details, none of which names a file.
var allowedSettings = map[string]bool{
	"max_threads": true, "max_execution_time": true, "max_memory_usage": true,
	"max_result_rows": true, "max_result_bytes": true, "result_overflow_mode": true,
	"max_rows_to_read": true, "max_bytes_to_read": true, "read_overflow_mode": true,
	"timeout_overflow_mode": true, "max_block_size": true, "join_use_nulls": true,
	"date_time_output_format": true, "output_format_json_quote_64bit_integers": true,
	"output_format_json_quote_denormals": true, "output_format_decimal_trailing_zeros": true,
	"session_timezone": true, "final": true,
}

// guardSQL checks that sql is a read-only statement (see the comment at the
// top of this file) and returns it with readonly = 1 added as a query-level
// setting, ready to run; or an error wrapping errRefused that says why not.
func guardSQL(sql string) (string, error) {
	return guardStatement(sql, guardOptions{})
}

// Setting is a query-level setting that the request sets outside the SQL
// (a URL parameter of ClickHouse's HTTP interface, such as final=1 or
// insert_deduplication_token=…). Value is the text as sent.
type Setting struct {
	Name, Value string
}

// guardOptions tune guardStatement.
type guardOptions struct {
	// write lets an authenticated writer through: the statements of
	// writeFirstWords too (see checkWrite), the settings of writeSettings,
	// and no readonly = 1.
	write bool
	// settings are the request's own settings (URL parameters). They are
	// checked against the same allow-list as a SETTINGS clause and added to
	// the statement's query-level settings, before its own (which win, as
	// in ClickHouse). DDL does not get them (a CREATE TABLE's SETTINGS are
	// table settings).
	settings []Setting
	// limits are forced on a reader's statement, after readonly = 1 and
	// before the statement's own settings, which may only lower them.
	limits Limits
}

// guardStatement checks sql as guardSQL does, or, with opt.write, as a
// statement of an authenticated writer, and returns it ready to run, with
// opt.settings (and, unless opt.write, readonly = 1) added as query-level
// settings.
func guardStatement(sql string, opt guardOptions) (string, error) {
	toks, err := lexSQL(sql)
	if err != nil {
		return "", err
	}
	// One statement: a ';' may only end it.
	for i, t := range toks {
		if t.kind == tokPunct && t.text == ";" {
			if i != len(toks)-1 {
				return "", fmt.Errorf("%w: one statement per request", errRefused)
			}
			toks = toks[:i]
		}
	}
	first := 0
	for first < len(toks) && toks[first].kind == tokPunct && toks[first].text == "(" {
		first++
	}
	if first >= len(toks) || toks[first].kind != tokWord {
		return "", fmt.Errorf("%w: only SELECT, WITH, SHOW, DESCRIBE, EXISTS and EXPLAIN are allowed", errRefused)
	}
	verb := strings.ToUpper(toks[first].text)
	switch {
	case readOnlyFirstWords[verb]:
	case opt.write && writeFirstWords[verb] && first == 0:
		if err := checkWrite(toks); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("%w: only SELECT, WITH, SHOW, DESCRIBE, EXISTS and EXPLAIN are allowed", errRefused)
	}
	allowed := func(name string) bool {
		l := strings.ToLower(name)
		return allowedSettings[l] || opt.write && writeSettings[l]
	}

	depth := 0
	lastSettings := -1 // token index of the last top-level SETTINGS clause
	insertAt := -1     // token index before which an INSERT's settings go
	// own are the settings that clause names (lower case). The settings
	// added to it leave them out: after readonly = 1, chDB refuses to give
	// a setting another value than the same clause gave it before.
	var own map[string]bool
	for i, t := range toks {
		next := func(k int) *sqlToken {
			if i+k < len(toks) {
				return &toks[i+k]
			}
			return nil
		}
		switch t.kind {
		case tokPunct:
			switch t.text {
			case "(":
				depth++
			case ")":
				depth--
			}
		case tokQuoted:
			if name, ok := quotedName(t.text); ok && strings.EqualFold(name, "readonly") {
				if nx := next(1); nx != nil && isEquals(*nx) {
					return "", fmt.Errorf("%w: the readonly setting cannot be changed", errRefused)
				}
			}
			if nx := next(1); nx != nil && nx.text == "(" && nx.kind == tokPunct {
				name, ok := quotedName(t.text)
				if !ok {
					return "", fmt.Errorf("%w: escaped quoted function name %s", errRefused, t.text)
				}
				if blockedFunction(name) {
					return "", fmt.Errorf("%w: function %s is not allowed here", errRefused, name)
				}
			}
		case tokWord:
			u := strings.ToUpper(t.text)
			switch u {
			case "OUTFILE", "INFILE":
				return "", fmt.Errorf("%w: INTO OUTFILE and FROM INFILE are not allowed", errRefused)
			case "READONLY":
				// As a name (system.settings has a column readonly) it is
				// fine; followed by '=' it may be setting it, wherever the
				// clause is.
				if nx := next(1); nx != nil && isEquals(*nx) {
					return "", fmt.Errorf("%w: the readonly setting cannot be changed", errRefused)
				}
			}
			if nx := next(1); nx != nil && nx.kind == tokPunct && nx.text == "(" && blockedFunction(t.text) {
				return "", fmt.Errorf("%w: function %s is not allowed here", errRefused, t.text)
			}
			if u == "SETTINGS" && (i == 0 || toks[i-1].text != ".") {
				// Every SETTINGS word starts a clause whose items are checked,
				// bare (SETTINGS name, which sets a boolean to 1) or assigned.
				// As a column name it must be quoted.
				names := map[string]bool{}
				if err := checkSettings(sql, toks[i+1:], allowed, opt.limits, names); err != nil {
					return "", err
				}
				if depth == 0 && insertAt < 0 {
					lastSettings, own = i, names
				}
			}
			if verb == "INSERT" && depth == 0 && insertAt < 0 && (u == "FORMAT" || u == "VALUES" || u == "SELECT" || u == "WITH") {
				insertAt = i
			}
		}
	}
	for _, st := range opt.settings {
		if !settingNameRE.MatchString(st.Name) || !allowed(st.Name) {
			return "", fmt.Errorf("%w: setting %s is not allowed here", errRefused, st.Name)
		}
	}
	urlSettings := make([]Setting, len(opt.settings))
	for i, st := range opt.settings {
		v, err := opt.limits.clamp(st.Name, st.Value)
		if err != nil {
			return "", err
		}
		urlSettings[i] = Setting{Name: st.Name, Value: v}
	}

	body := sql
	if len(toks) > 0 {
		body = sql[:toks[len(toks)-1].end]
	}
	var add []string
	if !writeFirstWords[verb] || verb == "INSERT" {
		for _, st := range urlSettings {
			if !own[strings.ToLower(st.Name)] { // the statement's own wins
				add = append(add, st.Name+" = "+settingLiteral(st.Value))
			}
		}
	}
	if !opt.write {
		// readonly = 1 comes after the request's settings, which can never
		// name it (refused above and below).
		// The limits, but those the URL or the statement's clause set
		// (clamped to them, or checked against them, above), go before
		// readonly = 1: chDB refuses to change a setting after it in the
		// same clause.
		set := make(map[string]bool, len(urlSettings)+len(own))
		for _, st := range urlSettings {
			set[strings.ToLower(st.Name)] = true
		}
		for name := range own {
			set[name] = true
		}
		add = append(add, opt.limits.settings(set)...)
		add = append(add, "readonly = 1")
	}
	if len(add) == 0 {
		return body, nil
	}
	list := strings.Join(add, ", ")
	switch {
	case lastSettings >= 0:
		// After the keyword of the statement's own last top-level SETTINGS
		// clause (two clauses in a row are a syntax error), before its own
		// settings, which win.
		at := toks[lastSettings].end
		return body[:at] + " " + list + "," + body[at:], nil
	case insertAt >= 0 && strings.ToUpper(toks[insertAt].text) != "SELECT" && strings.ToUpper(toks[insertAt].text) != "WITH":
		// INSERT … SETTINGS … FORMAT|VALUES: before the data.
		at := toks[insertAt].start
		return body[:at] + "SETTINGS " + list + " " + body[at:], nil
	}
	// A clause of its own at the end, after any FORMAT, on a new line (the
	// statement may end in a -- comment).
	return body + "\nSETTINGS " + list, nil
}

var settingNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// settingLiteral returns a setting's value as SQL: a number as it is, any
// other text as a string literal (ClickHouse parses a setting from either).
func settingLiteral(v string) string {
	if numberRE.MatchString(v) {
		return v
	}
	return clickhouse.QuoteString(v)
}

var numberRE = regexp.MustCompile(`^-?[0-9]{1,19}(\.[0-9]{1,19})?$`)

// writeFirstWords are the statements an authenticated writer may run on top
// of the read-only ones: what the indexer's migrations and inserts need.
var writeFirstWords = map[string]bool{
	"INSERT": true, "CREATE": true, "ALTER": true, "DROP": true, "TRUNCATE": true, "OPTIMIZE": true,
}

// writeSettings are the settings a writer may set on top of allowedSettings:
// deduplication, input parsing and the table settings of the migrations.
var writeSettings = map[string]bool{
	"insert_deduplication_token": true, "non_replicated_deduplication_window": true,
	"index_granularity": true, "date_time_input_format": true, "input_format_skip_unknown_fields": true,
	"async_insert": true, "wait_for_async_insert": true, "max_insert_block_size": true,
	"mutations_sync": true, "alter_sync": true, "cast_string_to_dynamic_use_inference": true,
}

// writeRefusedWords are refused anywhere in a writer's statement: they attach
// or export data from or to paths and other servers (ALTER … ATTACH PART,
// FETCH PARTITION, FREEZE, MOVE … TO DISK) or create objects whose sources
// reach outside the store (dictionaries, functions).
var writeRefusedWords = map[string]bool{
	"ATTACH": true, "DETACH": true, "FETCH": true, "FREEZE": true, "UNFREEZE": true, "MOVE": true,
	"EXPORT": true, "DICTIONARY": true, "FUNCTION": true, "USER": true, "ROLE": true, "QUOTA": true,
	"POLICY": true, "PROFILE": true, "NAMED": true, "DISK": true, "VOLUME": true,
}

// checkWrite checks a writer's statement (toks[0] is one of
// writeFirstWords): no word of writeRefusedWords, INSERT only INTO a table,
// and every ENGINE a MergeTree, Memory, Null or (for a database) Atomic.
func checkWrite(toks []sqlToken) error {
	verb := strings.ToUpper(toks[0].text)
	if verb == "INSERT" && (len(toks) < 3 || !strings.EqualFold(toks[1].text, "INTO") || toks[2].kind == tokWord && strings.EqualFold(toks[2].text, "TABLE")) {
		return fmt.Errorf("%w: INSERT INTO a table only", errRefused)
	}
	for i, t := range toks {
		if t.kind != tokWord {
			continue
		}
		u := strings.ToUpper(t.text)
		if writeRefusedWords[u] {
			return fmt.Errorf("%w: %s is not allowed here", errRefused, u)
		}
		if u == "ENGINE" && i+2 < len(toks) && isEquals(toks[i+1]) {
			e := toks[i+2].text
			if toks[i+2].kind == tokQuoted {
				e, _ = quotedName(e)
			}
			l := strings.ToLower(e)
			if !strings.HasSuffix(l, "mergetree") && l != "memory" && l != "null" && l != "atomic" {
				return fmt.Errorf("%w: engine %s is not allowed here", errRefused, e)
			}
		}
	}
	return nil
}

// checkSettings checks the items of a SETTINGS clause, toks starting
// after the keyword: item [, item]…, each "name = value" or a bare "name"
// (which ClickHouse reads as name = 1). Every item's name must be allowed;
// a setting that lim caps must have a plain number value within the cap.
// A value is skipped up to the next ',' outside brackets; the clause ends
// at a ')' that closes an enclosing bracket, a ';', or a word that cannot
// be in a value (FORMAT, INTO, UNION, …). Reading too far can only refuse
// more, never less. The names it reads go into names, lower case.
func checkSettings(sql string, toks []sqlToken, allowed func(name string) bool, lim Limits, names map[string]bool) error {
	i := 0
	for i < len(toks) {
		t := toks[i]
		name := t.text
		switch t.kind {
		case tokQuoted:
			var ok bool
			if name, ok = quotedName(name); !ok {
				return fmt.Errorf("%w: escaped setting name %s", errRefused, t.text)
			}
		case tokWord:
			if settingsEnd[strings.ToUpper(name)] {
				return nil
			}
		default:
			if t.text == ")" || t.text == ";" {
				return nil
			}
			return fmt.Errorf("%w: cannot read the SETTINGS clause at %q", errRefused, t.text)
		}
		if !allowed(name) {
			return fmt.Errorf("%w: setting %s is not allowed here", errRefused, name)
		}
		names[strings.ToLower(name)] = true
		i++
		if i >= len(toks) {
			return lim.check(name, "1")
		}
		if !isEquals(toks[i]) {
			// A bare name: then ',' for the next item, or the clause ends.
			if err := lim.check(name, "1"); err != nil {
				return err
			}
			switch nx := toks[i]; {
			case nx.kind == tokPunct && nx.text == ",":
				i++
				continue
			case nx.kind == tokPunct && (nx.text == ")" || nx.text == ";"),
				nx.kind == tokWord && settingsEnd[strings.ToUpper(nx.text)]:
				return nil
			}
			return fmt.Errorf("%w: cannot read the SETTINGS clause at %q", errRefused, toks[i].text)
		}
		i++
		start, d, end := i, 0, false
		for ; i < len(toks); i++ {
			t := toks[i]
			if t.kind == tokWord && settingsEnd[strings.ToUpper(t.text)] {
				end = true
				break
			}
			if t.kind != tokPunct {
				continue
			}
			if t.text == "," && d == 0 {
				break
			}
			switch t.text {
			case "(", "[", "{":
				d++
			case ")", "]", "}":
				d--
			}
			if d < 0 || t.text == ";" {
				end = true
				break
			}
		}
		value := ""
		if i > start {
			value = sql[toks[start].start:toks[i-1].end]
		}
		if err := lim.check(name, value); err != nil {
			return err
		}
		if end || i >= len(toks) {
			return nil
		}
		i++ // the ','
	}
	return nil
}

// settingsEnd are the words that end a SETTINGS clause.
var settingsEnd = map[string]bool{
	"FORMAT": true, "INTO": true, "UNION": true, "EXCEPT": true, "INTERSECT": true, "SETTINGS": true,
}

func isEquals(t sqlToken) bool { return t.kind == tokPunct && (t.text == "=" || t.text == "==") }

// isSelect reports whether sql is a SELECT (WITH … SELECT, a union, in
// parentheses or not): the statements chDB can stream.
func isSelect(sql string) bool {
	toks, err := lexSQL(sql)
	if err != nil {
		return false
	}
	for _, t := range toks {
		if t.kind == tokPunct && t.text == "(" {
			continue
		}
		return t.kind == tokWord && (strings.EqualFold(t.text, "SELECT") || strings.EqualFold(t.text, "WITH"))
	}
	return false
}

// queryFormat returns the name in the statement's top-level FORMAT clause,
// or "".
func queryFormat(sql string) string {
	toks, err := lexSQL(sql)
	if err != nil {
		return ""
	}
	depth, f := 0, ""
	for i, t := range toks {
		switch {
		case t.kind == tokPunct && t.text == "(":
			depth++
		case t.kind == tokPunct && t.text == ")":
			depth--
		case depth == 0 && t.kind == tokWord && strings.EqualFold(t.text, "FORMAT") && i+1 < len(toks):
			// FORMAT name, then the end or a SETTINGS clause.
			if i+2 < len(toks) && !strings.EqualFold(toks[i+2].text, "SETTINGS") && toks[i+2].text != ";" {
				continue
			}
			nx := toks[i+1]
			if nx.kind == tokWord {
				f = nx.text
			} else if nx.kind == tokQuoted {
				if name, ok := quotedName(nx.text); ok {
					f = name
				}
			}
		}
	}
	return f
}
