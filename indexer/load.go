package indexer

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/schemas"
)

// LoadOptions tune Load.
type LoadOptions struct {
	// BatchRows per insert. Default 10000.
	BatchRows int
	// MaxRowBytes: longer lines are rejected as "oversize". Default 1 MiB.
	MaxRowBytes int
	// Source names the input in dead letters ("-" for stdin). Default "input".
	Source string
	// Rejects, when not nil, receives one schemas.DeadLetter JSON line per
	// rejected line, so it can be fixed and replayed.
	Rejects io.Writer
	// Progress, when not nil, is called after each insert with the totals.
	Progress func(LoadStats)
}

// LoadStats counts what Load did.
type LoadStats struct {
	Lines      int   // non-empty lines read
	Inserted   int   // events inserted
	Duplicates int   // events already stored with the same content, not inserted again
	Conflicts  int   // events stored with other content: kept in event_conflicts, not inserted
	Rejected   int   // lines rejected, with a dead letter to Rejects
	Bytes      int64 // bytes read
}

// Load reads contract events, one JSON object per line, and inserts them
// into eng in batches: the backfill and dead-letter replay path of
// `auditpipe index`. A line may also be a dead letter (schemas.DeadLetter)
// whose raw input is an event: the event is indexed. Loading the same input
// twice inserts each event once: ids already stored are not inserted again
// (first write wins; a copy with other content goes to event_conflicts).
// Bad lines never stop the load.
func Load(ctx context.Context, eng clickhouse.Engine, in io.Reader, opt LoadOptions) (LoadStats, error) {
	if opt.BatchRows <= 0 {
		opt.BatchRows = 10000
	}
	if opt.MaxRowBytes <= 0 {
		opt.MaxRowBytes = 1 << 20
	}
	if opt.Source == "" {
		opt.Source = "input"
	}
	var st LoadStats
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), opt.MaxRowBytes*2+1024)
	rows := make([]clickhouse.EventRow, 0, opt.BatchRows)
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		all := rows
		fresh, dups, conflicts, err := splitStored(ctx, eng, "audit_events", rows, eventKey, inEventIDs)
		if err != nil {
			return fmt.Errorf("indexer: load: %w", err)
		}
		if len(conflicts) > 0 {
			if err := eng.Exec(ctx, conflictsInsert(conflicts)); err != nil {
				return fmt.Errorf("indexer: load: insert event conflicts: %w", err)
			}
		}
		st.Duplicates += dups
		st.Conflicts += len(conflicts)
		rows = fresh
		defer func() { rows = all[:0] }()
		if len(rows) == 0 {
			return nil
		} else if err := eng.InsertEvents(ctx, clickhouse.EventsToken(rows), rows); err != nil {
			// Find the rows the store refuses, insert the rest.
			if !clickhouse.IsRowError(err) {
				return fmt.Errorf("indexer: load: insert: %w", err)
			}
			for i := range rows {
				one := rows[i : i+1]
				if err := eng.InsertEvents(ctx, clickhouse.EventsToken(one), one); err != nil {
					if !clickhouse.IsRowError(err) {
						return fmt.Errorf("indexer: load: insert: %w", err)
					}
					st.Rejected++
					reject(opt, ReasonInsertRejected, err, rows[i].JSON, rows[i].Event.Host, "")
					continue
				}
				st.Inserted++
			}
		} else {
			st.Inserted += len(rows)
		}
		rows = rows[:0]
		if opt.Progress != nil {
			opt.Progress(st)
		}
		return nil
	}
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		st.Bytes += int64(len(b)) + 1
		if len(trimSpace(b)) == 0 {
			continue
		}
		st.Lines++
		row, err := DecodeEvent(b, opt.MaxRowBytes)
		if err != nil {
			if inner, ok := deadLetterEvent(b); ok {
				row, err = DecodeEvent(inner, opt.MaxRowBytes)
			}
		}
		if err != nil {
			st.Rejected++
			reject(opt, RejectReason(err), err, b, "", fmt.Sprintf("%s:%d", opt.Source, line))
			continue
		}
		row.JSON = append([]byte(nil), row.JSON...) // the scanner reuses its buffer
		rows = append(rows, row)
		if len(rows) >= opt.BatchRows {
			if err := flush(); err != nil {
				return st, err
			}
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("indexer: load: line %d: %w", line+1, err)
	}
	return st, flush()
}

func reject(opt LoadOptions, reason string, err error, raw []byte, host, source string) {
	if opt.Rejects == nil {
		return
	}
	d := schemas.NewDeadLetter("indexer", reason, err, raw, time.Now())
	d.Host, d.Source = host, source
	b, _ := json.Marshal(d)
	opt.Rejects.Write(append(b, '\n'))
}

// deadLetterEvent returns the raw input of a dead-letter line.
func deadLetterEvent(b []byte) ([]byte, bool) {
	var d schemas.DeadLetter
	if json.Unmarshal(b, &d) != nil || d.Component == "" || d.Reason == "" {
		return nil, false
	}
	if d.Raw != "" {
		return []byte(d.Raw), true
	}
	if d.RawB64 != "" {
		raw, err := base64.StdEncoding.DecodeString(d.RawB64)
		return raw, err == nil
	}
	return nil, false
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
