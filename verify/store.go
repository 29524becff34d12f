package verify

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/schemas"
)

// Filter narrows what LoadStore reads.
type Filter struct {
	Host     string
	From, To time.Time // ts range, [From, To); zero: open
	// Request restricts the hosts to those where the request has events
	// (every event of those hosts is read: the chain runs through them).
	Request string
}

const storeColumns = "event, layer, host, req_auth_id, loginid, event_id, seq, srchost, desthost, res, pid, ppid, ses, rec_id, tty, " +
	"euid, exe, cwd, title, args, keys, time, raw_data, escaped, prev_hash, content_hash, chain_first, chain_last, chain_count, " +
	"chain_head, key_id, sig, toUnixTimestamp64Milli(ts), kafka_partition, kafka_offset"

// StorePageSeqs is how many seq values of one host LoadStore reads in one
// query.
const StorePageSeqs = 20_000

// LoadStore reads every stored row of audit_events (without FINAL: each
// copy) and the event_conflicts that f selects.
func LoadStore(ctx context.Context, q clickhouse.Querier, f Filter) ([]Record, []Conflict, error) {
	return loadStore(ctx, q, f, StorePageSeqs)
}

// loadStore is LoadStore reading page seq values of a host a query.
func loadStore(ctx context.Context, q clickhouse.Querier, f Filter, page uint64) ([]Record, []Conflict, error) {
	var where []string
	if f.Host != "" {
		where = append(where, "host = "+clickhouse.QuoteString(f.Host))
	}
	if f.Request != "" {
		where = append(where, "host IN (SELECT DISTINCT host FROM audit_events WHERE req_auth_id = "+clickhouse.QuoteString(f.Request)+")")
	}
	cond := strings.Join(where, " AND ")
	evCond := where
	if !f.From.IsZero() {
		evCond = append(evCond, fmt.Sprintf("ts >= fromUnixTimestamp64Milli(%d)", f.From.UnixMilli()))
	}
	if !f.To.IsZero() {
		evCond = append(evCond, fmt.Sprintf("ts < fromUnixTimestamp64Milli(%d)", f.To.UnixMilli()))
	}
	// Host by host, StorePageSeqs seq values at a time: one query of the
	// whole table (every row's raw_data, sorted) outgrew the query
	// endpoint's memory limit (1 GiB) at 200 000 events.
	base := strings.Join(evCond, " AND ")
	if base == "" {
		base = "1"
	}
	// Each host's pages start at every page-th seq present, so that the
	// queries are as many as the pages of seqs stored, whatever their
	// values: pages of a width of seq space made one forged event of seq
	// 2^40 cost 55 million queries.
	res, err := q.Query(ctx, fmt.Sprintf("SELECT host, seq FROM "+
		"(SELECT host, seq, row_number() OVER (PARTITION BY host ORDER BY seq) AS n FROM (SELECT DISTINCT host, seq FROM audit_events WHERE %s)) "+
		"WHERE (n - 1) %% %d = 0 ORDER BY host, seq SETTINGS final = 0", base, page))
	if err != nil {
		return nil, nil, fmt.Errorf("verify: read audit_events: %w", err)
	}
	type hostPages struct {
		host   string
		starts []uint64 // the first seq of each page, ascending
	}
	var hosts []hostPages
	for _, row := range res.Rows {
		if len(row) != 2 {
			return nil, nil, fmt.Errorf("verify: audit_events pages: %d columns, want 2", len(row))
		}
		host := str(row[0])
		seq, err := uint64Of(row[1])
		if err != nil {
			return nil, nil, fmt.Errorf("verify: audit_events pages of host %q: %w", host, err)
		}
		if len(hosts) == 0 || hosts[len(hosts)-1].host != host {
			hosts = append(hosts, hostPages{host: host})
		}
		hosts[len(hosts)-1].starts = append(hosts[len(hosts)-1].starts, seq)
	}
	var recs []Record
	for _, hp := range hosts {
		for i, from := range hp.starts {
			// The order is total (rows of one seq and insert time, the
			// checkpoints' seq 0 among them, by event_id and offset), so
			// that pages of any size read the same records in the same order.
			upTo := "" // the last page: to the host's last seq
			if i+1 < len(hp.starts) {
				upTo = fmt.Sprintf(" AND seq < %d", hp.starts[i+1])
			}
			sql := fmt.Sprintf("SELECT %s FROM audit_events WHERE %s AND host = %s AND seq >= %d%s ORDER BY seq, inserted_at, event_id, kafka_partition, kafka_offset SETTINGS final = 0",
				storeColumns, base, clickhouse.QuoteString(hp.host), from, upTo)
			res, err := q.Query(ctx, sql)
			if err != nil {
				return nil, nil, fmt.Errorf("verify: read audit_events: %w", err)
			}
			for j, row := range res.Rows {
				r, err := recordFromRow(row)
				if err != nil {
					return nil, nil, fmt.Errorf("verify: audit_events row %d of host %q from seq %d: %w", j, hp.host, from, err)
				}
				recs = append(recs, r)
			}
		}
	}
	csql := "SELECT event_id, host, seq, first_hash, conflict_hash, kafka_partition, kafka_offset FROM event_conflicts"
	if cond != "" {
		csql += " WHERE " + cond
	}
	csql += " ORDER BY host, seq, inserted_at SETTINGS final = 0"
	cres, err := q.Query(ctx, csql)
	if err != nil {
		return nil, nil, fmt.Errorf("verify: read event_conflicts: %w", err)
	}
	var cs []Conflict
	for _, row := range cres.Rows {
		if len(row) != 7 {
			return nil, nil, fmt.Errorf("verify: event_conflicts: %d columns, want 7", len(row))
		}
		seq, _ := strconv.ParseUint(clickhouse.ValueString(row[2]), 10, 64)
		cs = append(cs, Conflict{
			EventID: str(row[0]), Host: str(row[1]), Seq: seq, FirstHash: str(row[3]), ConflictHash: str(row[4]),
			Where: schemas.TopicAudit + "/" + clickhouse.ValueString(row[5]) + "/" + clickhouse.ValueString(row[6]),
		})
	}
	return recs, cs, nil
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return clickhouse.ValueString(v)
}

func uint64Of(v any) (uint64, error) {
	n, err := strconv.ParseUint(clickhouse.ValueString(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("want an unsigned integer: %w", err)
	}
	return n, nil
}

// recordFromRow rebuilds the event of one audit_events row (storeColumns)
// and recomputes its hash.
func recordFromRow(row []any) (Record, error) {
	if len(row) != 35 {
		return Record{}, fmt.Errorf("%d columns, want 35", len(row))
	}
	var e schemas.Event
	var err error
	e.Event = schemas.Kind(str(row[0]))
	e.Layer, e.Host, e.ReqAuthID, e.LoginID, e.EventID = str(row[1]), str(row[2]), str(row[3]), str(row[4]), str(row[5])
	if e.Seq, err = uint64Of(row[6]); err != nil {
		return Record{}, fmt.Errorf("seq: %w", err)
	}
	e.SrcHost, e.DestHost, e.Res, e.PID, e.PPID, e.Ses, e.RecID, e.TTY = str(row[7]), str(row[8]), str(row[9]), str(row[10]), str(row[11]), str(row[12]), str(row[13]), str(row[14])
	e.EUID, e.Exe, e.Cwd, e.Title = str(row[15]), str(row[16]), str(row[17]), str(row[18])
	if e.Args, err = clickhouse.ValueStrings(row[19]); err != nil {
		return Record{}, fmt.Errorf("args: %w", err)
	}
	if len(e.Args) == 0 {
		e.Args = nil
	}
	e.Keys, e.Time, e.RawData = str(row[20]), str(row[21]), str(row[22])
	if e.Escaped, err = clickhouse.ValueStrings(row[23]); err != nil {
		return Record{}, fmt.Errorf("escaped: %w", err)
	}
	if len(e.Escaped) == 0 {
		e.Escaped = nil
	}
	e.PrevHash = str(row[24])
	claimed := str(row[25])
	for i, p := range []*uint64{&e.ChainFirst, &e.ChainLast, &e.ChainCount} {
		if *p, err = uint64Of(row[26+i]); err != nil {
			return Record{}, fmt.Errorf("chain range: %w", err)
		}
	}
	e.ChainHead, e.KeyID, e.Sig = str(row[29]), str(row[30]), str(row[31])
	ms, err := strconv.ParseInt(clickhouse.ValueString(row[32]), 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("ts: %w", err)
	}
	e.TS = time.UnixMilli(ms).UTC().Format(schemas.TSLayout)
	return Record{
		Event: e, Hash: e.Hash(), Claimed: claimed, ContentChecked: true,
		Where: schemas.TopicAudit + "/" + clickhouse.ValueString(row[33]) + "/" + clickhouse.ValueString(row[34]),
	}, nil
}
