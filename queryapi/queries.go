package queryapi

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/auditpipe/auditpipe/clickhouse"
)

// NamedQuery is one of the auditor's questions, answered in SQL.
type NamedQuery struct {
	Name    string
	Summary string
	// Args names the arguments the query takes, in order.
	Args []string
	sql  func(args []string) string
}

// SQL returns the query's SQL for args (their count is checked by Named).
func (q NamedQuery) SQL(args []string) string { return q.sql(args) }

// The su/sudo test: argv[0] or the executable is su or sudo.
const viaSuSudo = "(arrayElement(args, 1) IN ('su', 'sudo') OR match(arrayElement(args, 1), '/(su|sudo)$') OR match(exe, '/(su|sudo)$'))"

var namedQueries = []NamedQuery{
	{
		Name:    "request-commands",
		Summary: "every command of one access request, in order",
		Args:    []string{"REQ_AUTH_ID"},
		sql: func(a []string) string {
			return `SELECT ts, host, loginid, pid, ppid, euid, cwd, arrayStringConcat(args, ' ') AS command, res
FROM audit_events FINAL
WHERE req_auth_id = ` + clickhouse.QuoteString(a[0]) + ` AND event = 'command'
ORDER BY ts, host, toUInt64OrZero(rec_id)`
		},
	},
	{
		Name:    "open-sessions",
		Summary: "sessions still open: a login without its logout",
		sql: func([]string) string {
			return `SELECT login_ts, host, loginid, req_auth_id, session, srchost, tty
FROM login_sessions
WHERE open
ORDER BY login_ts, host`
		},
	},
	{
		Name:    "su-sudo",
		Summary: "commands run through su or sudo: the su/sudo calls and every command run as another user than the login user",
		sql: func([]string) string {
			return `SELECT ts, host, loginid, req_auth_id, euid, arrayStringConcat(args, ' ') AS command,
       if(` + viaSuSudo + `, 'su/sudo', concat('as ', euid)) AS how
FROM audit_events FINAL
WHERE event = 'command' AND (` + viaSuSudo + ` OR (euid != '' AND loginid != '' AND euid != loginid))
ORDER BY ts, host, toUInt64OrZero(rec_id)`
		},
	},
	{
		Name:    "operator-activity",
		Summary: "activity per operator per day",
		sql: func([]string) string {
			return `SELECT toDate(ts) AS day, loginid AS operator, req_auth_id,
       countIf(event = 'login') AS logins, countIf(event = 'command') AS commands,
       countIf(event = 'keys') AS keystroke_events, uniqExact(host) AS hosts,
       min(ts) AS first_event, max(ts) AS last_event
FROM audit_events FINAL
WHERE loginid != ''
GROUP BY day, operator, req_auth_id
ORDER BY day, operator, req_auth_id`
		},
	},
}

// NamedQueries returns the named queries, in a stable order.
func NamedQueries() []NamedQuery { return append([]NamedQuery(nil), namedQueries...) }

// Named returns the SQL of the named query name with args, or ok == false
// when there is no such query. It fails when the argument count is wrong.
func Named(name string, args []string) (sql string, ok bool, err error) {
	for _, q := range namedQueries {
		if q.Name == name {
			if len(args) != len(q.Args) {
				return "", true, fmt.Errorf("query %s: want %d argument(s) %v, got %d", name, len(q.Args), q.Args, len(args))
			}
			return q.sql(args), true, nil
		}
	}
	return "", false, nil
}

// PrintNamedQueries runs every named query against q and prints each
// answer under a heading, in format; request-commands runs once for each
// access request found. It is what `make run` shows.
func PrintNamedQueries(ctx context.Context, q clickhouse.Querier, w io.Writer, format string) error {
	reqs, err := q.Query(ctx, "SELECT DISTINCT req_auth_id FROM audit_events FINAL WHERE req_auth_id != '' ORDER BY req_auth_id")
	if err != nil {
		return fmt.Errorf("queryapi: list access requests: %w", err)
	}
	var ids []string
	for _, r := range reqs.Rows {
		ids = append(ids, clickhouse.ValueString(r[0]))
	}
	sort.Strings(ids)
	for _, nq := range namedQueries {
		runs := [][]string{nil}
		if len(nq.Args) == 1 {
			runs = nil
			for _, id := range ids {
				runs = append(runs, []string{id})
			}
		}
		for _, args := range runs {
			title := nq.Name
			if len(args) > 0 {
				title += " " + strings.Join(args, " ")
			}
			fmt.Fprintf(w, "== %s: %s\n", title, nq.Summary)
			res, err := q.Query(ctx, nq.sql(args))
			if err != nil {
				return fmt.Errorf("queryapi: query %s: %w", nq.Name, err)
			}
			if err := clickhouse.WriteResult(w, res, format); err != nil {
				return err
			}
			fmt.Fprintln(w)
		}
	}
	return nil
}
