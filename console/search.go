package console

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/api"
)

// searchRow is one event of the auditor's search.
type searchRow struct {
	TS        string   `json:"ts"`
	Event     string   `json:"event"`
	Host      string   `json:"host"`
	ReqAuthID string   `json:"req_auth_id"`
	LoginID   string   `json:"loginid"`
	EventID   string   `json:"event_id"`
	Args      []string `json:"args,omitempty"`
	Res       string   `json:"res,omitempty"`
	RawData   string   `json:"raw_data"`
}

// Search limits: a page of the table, and an export.
const (
	searchPage   = 50
	searchExport = 100000
)

// searchSQL filters by request, operator (their requests' ids), host, a
// time range and a text in the command line or raw_data; every value is a
// bound parameter.
const searchSQL = `SELECT toString(ts), event, host, req_auth_id, loginid, event_id, args, res, raw_data
FROM audit_events
WHERE ({req:String} = '' OR req_auth_id = {req:String})
  AND ({byop:UInt8} = 0 OR has({reqs:Array(String)}, req_auth_id))
  AND ({host:String} = '' OR host = {host:String})
  AND ts >= fromUnixTimestamp64Milli({from:Int64}) AND ts < fromUnixTimestamp64Milli({to:Int64})
  AND ({text:String} = '' OR positionCaseInsensitive(title, {text:String}) > 0 OR positionCaseInsensitive(raw_data, {text:String}) > 0)
ORDER BY ts DESC, event_id
LIMIT {limit:UInt64} OFFSET {offset:UInt64}
SETTINGS final = 1, max_execution_time = 30, max_memory_usage = 2000000000, max_result_bytes = 512000000`

// searchPage is the auditor's search: events by request, operator, host,
// time and text, a page at a time, or all of them (up to searchExport) as
// JSON lines (?format=jsonl) or CSV (?format=csv).
func (c *Console) searchPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if c.deps.Store == nil || (s.who.Role != auth.RoleAuditor && s.who.Role != auth.RoleAdmin) {
		return notAuthorized("the search is for auditors, on a process that holds the audit store")
	}
	ctx := r.Context()
	q := r.URL.Query()
	bad := func(field, msg string) error {
		return &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidParameter, Message: field + ": " + msg}
	}
	from, to := int64(0), time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for _, x := range []struct {
		name string
		dst  *int64
	}{{"from", &from}, {"to", &to}} {
		if v := strings.TrimSpace(q.Get(x.name)); v != "" {
			t, err := time.Parse("2006-01-02T15:04", v)
			if err != nil {
				return bad(x.name, "not a date and time like 2026-12-02T06:00 (UTC): "+v)
			}
			*x.dst = t.UnixMilli()
		}
	}
	page := 0
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return bad("page", "not a page number: "+v)
		}
		page = n
	}
	operator := strings.TrimSpace(q.Get("operator"))
	var reqs []string
	if operator != "" {
		p := policy.Page{Limit: 1000}
		for {
			items, next, err := c.deps.API.VisibleRequests(ctx, s.who, policy.RequestFilter{RequestorID: operator, Page: p})
			if err != nil {
				return err
			}
			for _, it := range items {
				reqs = append(reqs, it.ID)
			}
			if next == "" {
				break
			}
			p.After = next
		}
	}
	format := q.Get("format")
	limit, offset := searchPage+1, page*searchPage
	if format != "" {
		limit, offset = searchExport, 0
	}
	byop := "0"
	if operator != "" {
		byop = "1"
	}
	quoted := make([]string, len(reqs))
	for i, id := range reqs {
		quoted[i] = clickhouse.QuoteString(id)
	}
	arr := "[" + strings.Join(quoted, ",") + "]"
	params := []clickhouse.Param{
		clickhouse.StringParam("req", strings.TrimSpace(q.Get("request"))), {Name: "byop", Value: byop},
		{Name: "reqs", Value: arr},
		clickhouse.StringParam("host", strings.TrimSpace(q.Get("host"))),
		{Name: "from", Value: strconv.FormatInt(from, 10)}, {Name: "to", Value: strconv.FormatInt(to, 10)},
		clickhouse.StringParam("text", q.Get("text")),
		{Name: "limit", Value: strconv.Itoa(limit)}, {Name: "offset", Value: strconv.Itoa(offset)},
	}
	res, err := c.deps.Store.QueryParams(ctx, searchSQL, params)
	if err != nil {
		c.log.Warn("console: search", "err", err)
		return &api.Error{Status: http.StatusBadGateway, Code: api.CodeInternalServerError, Message: "the audit store did not answer the search"}
	}
	rows := make([]searchRow, 0, len(res.Rows))
	for _, x := range res.Rows {
		if len(x) != 9 {
			continue
		}
		sr := searchRow{TS: clickhouse.ValueString(x[0]), Event: clickhouse.ValueString(x[1]), Host: clickhouse.ValueString(x[2]),
			ReqAuthID: clickhouse.ValueString(x[3]), LoginID: clickhouse.ValueString(x[4]), EventID: clickhouse.ValueString(x[5]),
			Res: clickhouse.ValueString(x[7]), RawData: clickhouse.ValueString(x[8])}
		if a, ok := x[6].([]any); ok {
			for _, v := range a {
				sr.Args = append(sr.Args, clickhouse.ValueString(v))
			}
		}
		rows = append(rows, sr)
	}
	switch format {
	case "jsonl":
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Content-Disposition", `attachment; filename="audit-events.jsonl"`)
		enc := json.NewEncoder(w)
		for i := range rows {
			if err := enc.Encode(&rows[i]); err != nil {
				return nil
			}
		}
		return nil
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="audit-events.csv"`)
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"ts", "event", "host", "req_auth_id", "loginid", "event_id", "args", "res", "raw_data"})
		for _, x := range rows {
			_ = cw.Write(csvCells(x.TS, x.Event, x.Host, x.ReqAuthID, x.LoginID, x.EventID, strings.Join(x.Args, " "), x.Res, x.RawData))
		}
		cw.Flush()
		return nil
	case "":
	default:
		return bad("format", "jsonl or csv, not "+format)
	}
	more := len(rows) > searchPage
	if more {
		rows = rows[:searchPage]
	}
	qs := q
	qs.Del("page")
	qs.Del("format")
	c.render(w, r, s, http.StatusOK, "search", map[string]any{"Rows": rows, "Q": q, "Page": page, "More": more, "Query": qs.Encode()})
	return nil
}

// csvCells guards the cells of a CSV export against formula injection: a
// cell a spreadsheet would read as a formula (one that starts with =, +,
// -, @, a tab or a carriage return: an operator chooses argv[0] and the
// arguments of what they run) gets a leading single quote, as OWASP
// advises. The JSON lines export is verbatim.
func csvCells(cells ...string) []string {
	for i, c := range cells {
		if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			cells[i] = "'" + c
		}
	}
	return cells
}
