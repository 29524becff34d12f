package clickhouse

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Output formats of WriteResult.
const (
	OutputTable = "table"
	OutputJSON  = "json"
	OutputCSV   = "csv"
	// OutputEvents is JSON lines of contract events: rows of audit_events
	// (SELECT *) without the columns the store adds (kafka_partition,
	// kafka_offset, inserted_at, content_hash), ts in RFC 3339 as the
	// contract has it.
	// What `auditpipe forward` and `auditpipe index` read back.
	OutputEvents = "events"
)

// storeColumns are the columns of audit_events that are not the event's.
var storeColumns = map[string]bool{"kafka_partition": true, "kafka_offset": true, "inserted_at": true, "content_hash": true}

// WriteResult prints r as an aligned table, JSON lines (one object per
// row) or CSV with a header.
func WriteResult(w io.Writer, r *Result, format string) error {
	switch format {
	case OutputTable, "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(r.Columns, "\t"))
		for _, row := range r.Rows {
			cells := make([]string, len(row))
			for i, v := range row {
				cells[i] = strings.NewReplacer("\t", `\t`, "\n", `\n`).Replace(ValueString(v))
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		return tw.Flush()
	case OutputJSON, OutputEvents:
		events := format == OutputEvents
		enc := json.NewEncoder(w)
		for _, row := range r.Rows {
			var b strings.Builder
			b.WriteByte('{')
			n := 0
			for i, v := range row {
				if events {
					if storeColumns[r.Columns[i]] {
						continue
					}
					if r.Columns[i] == "ts" {
						v = rfc3339(v)
					}
				}
				if n > 0 {
					b.WriteByte(',')
				}
				n++
				k, _ := json.Marshal(r.Columns[i])
				b.Write(k)
				b.WriteByte(':')
				val, err := json.Marshal(v)
				if err != nil {
					return fmt.Errorf("clickhouse: encode %s: %w", r.Columns[i], err)
				}
				b.Write(val)
			}
			b.WriteByte('}')
			if err := enc.Encode(json.RawMessage(b.String())); err != nil {
				return err
			}
		}
		return nil
	case OutputCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(r.Columns); err != nil {
			return err
		}
		for _, row := range r.Rows {
			rec := make([]string, len(row))
			for i, v := range row {
				rec[i] = ValueString(v)
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}
	return fmt.Errorf("clickhouse: unknown output format %q (want table, json, csv or events)", format)
}

// rfc3339 turns ClickHouse's DateTime64(3, 'UTC') text
// ("2020-10-29 03:20:22.418") into the contract's ts
// ("2020-10-29T03:20:22.418Z"); anything else is left as it is.
func rfc3339(v any) any {
	s, ok := v.(string)
	if !ok || len(s) < 19 || s[10] != ' ' {
		return v
	}
	return s[:10] + "T" + s[11:] + "Z"
}

// ValueString renders one result value as text.
func ValueString(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return x
	case json.Number:
		return x.String()
	case []byte:
		return string(x)
	case fmt.Stringer:
		return x.String()
	case []any, map[string]any, []string:
		b, _ := json.Marshal(x)
		return string(b)
	default:
		return fmt.Sprint(x)
	}
}

// ValueStrings reads an Array(String) result value of any engine: a
// []string (a server) or a []any of strings (the embedded and HTTP
// engines); nil is an empty array.
func ValueStrings(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []string:
		return x, nil
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("clickhouse: array element %d is %T, want a string", i, e)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("clickhouse: %T, want an array of strings", v)
}
