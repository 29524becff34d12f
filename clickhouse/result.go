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
)

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
	case OutputJSON:
		enc := json.NewEncoder(w)
		for _, row := range r.Rows {
			var b strings.Builder
			b.WriteByte('{')
			for i, v := range row {
				if i > 0 {
					b.WriteByte(',')
				}
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
	return fmt.Errorf("clickhouse: unknown output format %q (want table, json or csv)", format)
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
