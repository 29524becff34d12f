package verify

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/schemas"
)

// Filter narrows what CheckStore reads.
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

// StorePageSeqs is how many seq values of one host CheckStore reads in one
// query. A page's decoded answer (raw_data included) is most of verify's
// memory: 5000 seqs hold a host of 40 000 events to 130 MB of heap, where
// 20 000 took 320 to 340 MB, for 15 to 25 % more time (BenchmarkCheckStore).
const StorePageSeqs = 5000

// CheckStore checks the stored rows of audit_events (without FINAL: each
// copy) and the event_conflicts that f selects, host by host: one host's
// records are in memory at a time, and of each event only what the checks
// read (its raw_data, keys, args and escaped are dropped as soon as it is
// read and hashed, but for the commands of Options.Request).
func CheckStore(ctx context.Context, q clickhouse.Querier, f Filter, opt Options) (*Report, error) {
	return checkStore(ctx, q, f, opt, StorePageSeqs)
}

// checkStore is CheckStore reading page seq values of a host a query.
func checkStore(ctx context.Context, q clickhouse.Querier, f Filter, opt Options, page uint64) (*Report, error) {
	s, err := openStore(ctx, q, f, page)
	if err != nil {
		return nil, err
	}
	conflicts, err := s.conflicts(ctx)
	if err != nil {
		return nil, err
	}
	rep := newReport(opt)
	checked := map[string]bool{}
	// Each record is compacted as it is read (the commands of the request
	// asked for are kept whole: its report lists them).
	compact := func(r *Record) {
		if opt.Request == "" || r.Event.ReqAuthID != opt.Request || r.Event.Event != schemas.KindCommand {
			r.compact()
		}
	}
	var recs []Record
	var ptrs []*Record
	for _, hp := range s.hosts {
		if recs, err = s.host(ctx, hp, recs[:0], compact); err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			// Its pages listed seqs, and reading them found no row: the
			// rows cannot be checked (removed meanwhile?). Not intact.
			return nil, fmt.Errorf("verify: host %q: its seqs are listed, but no row of them could be read", hp.host)
		}
		ptrs = ptrs[:0]
		for i := range recs {
			ptrs = append(ptrs, &recs[i])
		}
		rep.addHost(hp.host, ptrs, conflicts, opt)
		checked[hp.host] = true
	}
	for _, c := range conflicts { // a host with conflicts and no row left
		if !checked[c.Host] {
			rep.addHost(c.Host, nil, conflicts, opt)
			checked[c.Host] = true
		}
	}
	rep.sort()
	return rep, nil
}

// compact drops what the checks never read of an event once it is
// hashed: its raw_data, keys, args and escaped. A checkpoint is kept
// whole (its signature covers it).
func (r *Record) compact() {
	if r.Event.Event == schemas.KindChain {
		return
	}
	r.Event.RawData, r.Event.Keys = "", ""
	r.Event.Args, r.Event.Escaped = nil, nil
}

// store is what CheckStore reads: the conditions f makes, and the pages of
// each host's rows.
type store struct {
	q clickhouse.Querier
	// rows selects the rows of audit_events, conds those of
	// event_conflicts (no ts range: a conflict has none).
	rows, conds string
	hosts       []hostPages
}

// hostPages is where the pages of one host's rows start.
type hostPages struct {
	host   string   // its bytes as stored (read in hex: not valid UTF-8, maybe)
	starts []uint64 // the first seq of each page, ascending
}

// openStore reads which hosts f selects and where their pages start.
func openStore(ctx context.Context, q clickhouse.Querier, f Filter, page uint64) (*store, error) {
	var where []string
	if f.Host != "" {
		where = append(where, "host = "+clickhouse.QuoteString(f.Host))
	}
	if f.Request != "" {
		where = append(where, "host IN (SELECT DISTINCT host FROM audit_events WHERE req_auth_id = "+clickhouse.QuoteString(f.Request)+")")
	}
	s := &store{q: q, conds: strings.Join(where, " AND ")}
	evCond := where
	if !f.From.IsZero() {
		evCond = append(evCond, fmt.Sprintf("ts >= fromUnixTimestamp64Milli(%d)", f.From.UnixMilli()))
	}
	if !f.To.IsZero() {
		evCond = append(evCond, fmt.Sprintf("ts < fromUnixTimestamp64Milli(%d)", f.To.UnixMilli()))
	}
	// Host by host, StorePageSeqs seq values at a time: one query of the
	// whole table (every row's raw_data, sorted) outgrew the query
	// endpoint's memory limit (1 GiB) at 200 000 events, and a page's
	// answer is most of verify's own memory.
	s.rows = strings.Join(evCond, " AND ")
	if s.rows == "" {
		s.rows = "1"
	}
	// Each host's pages start at every page-th seq present, so that the
	// queries are as many as the pages of seqs stored, whatever their
	// values: pages of a width of seq space made one forged event of seq
	// 2^40 cost 55 million queries.
	// The host is read in hex: a name that is not valid UTF-8 would come
	// back from JSON with U+FFFD in place of its bytes, match no row, and
	// leave its rows unread (issue 9 review of the host-by-host check).
	res, err := q.Query(ctx, fmt.Sprintf("SELECT hex(host), seq FROM "+
		"(SELECT host, seq, row_number() OVER (PARTITION BY host ORDER BY seq) AS n FROM (SELECT DISTINCT host, seq FROM audit_events WHERE %s)) "+
		"WHERE (n - 1) %% %d = 0 ORDER BY host, seq SETTINGS final = 0", s.rows, page))
	if err != nil {
		return nil, fmt.Errorf("verify: read audit_events: %w", err)
	}
	for _, row := range res.Rows {
		if len(row) != 2 {
			return nil, fmt.Errorf("verify: audit_events pages: %d columns, want 2", len(row))
		}
		host, err := unhex(row[0])
		if err != nil {
			return nil, fmt.Errorf("verify: audit_events pages: %w", err)
		}
		seq, err := uint64Of(row[1])
		if err != nil {
			return nil, fmt.Errorf("verify: audit_events pages of host %q: %w", host, err)
		}
		if len(s.hosts) == 0 || s.hosts[len(s.hosts)-1].host != host {
			s.hosts = append(s.hosts, hostPages{host: host})
		}
		s.hosts[len(s.hosts)-1].starts = append(s.hosts[len(s.hosts)-1].starts, seq)
	}
	return s, nil
}

// host appends the records of one host's rows to recs, page by page,
// each passed to each (when not nil) as it is read.
func (s *store) host(ctx context.Context, hp hostPages, recs []Record, each func(*Record)) ([]Record, error) {
	for i, from := range hp.starts {
		// The order is total (rows of one seq and insert time, the
		// checkpoints' seq 0 among them, by event_id and offset), so
		// that pages of any size read the same records in the same order.
		upTo := "" // the last page: to the host's last seq
		if i+1 < len(hp.starts) {
			upTo = fmt.Sprintf(" AND seq < %d", hp.starts[i+1])
		}
		sql := fmt.Sprintf("SELECT %s FROM audit_events WHERE %s AND host = unhex('%s') AND seq >= %d%s ORDER BY seq, inserted_at, event_id, kafka_partition, kafka_offset SETTINGS final = 0",
			storeColumns, s.rows, hex.EncodeToString([]byte(hp.host)), from, upTo)
		res, err := s.q.Query(ctx, sql)
		if err != nil {
			return nil, fmt.Errorf("verify: read audit_events: %w", err)
		}
		for j, row := range res.Rows {
			r, err := recordFromRow(row)
			if err != nil {
				return nil, fmt.Errorf("verify: audit_events row %d of host %q from seq %d: %w", j, hp.host, from, err)
			}
			if each != nil {
				each(&r)
			}
			recs = append(recs, r)
		}
	}
	return recs, nil
}

// conflicts reads the event_conflicts rows of the hosts selected.
func (s *store) conflicts(ctx context.Context) ([]Conflict, error) {
	csql := "SELECT event_id, hex(host), seq, first_hash, conflict_hash, kafka_partition, kafka_offset FROM event_conflicts"
	if s.conds != "" {
		csql += " WHERE " + s.conds
	}
	csql += " ORDER BY host, seq, inserted_at SETTINGS final = 0"
	cres, err := s.q.Query(ctx, csql)
	if err != nil {
		return nil, fmt.Errorf("verify: read event_conflicts: %w", err)
	}
	var cs []Conflict
	for _, row := range cres.Rows {
		if len(row) != 7 {
			return nil, fmt.Errorf("verify: event_conflicts: %d columns, want 7", len(row))
		}
		host, err := unhex(row[1])
		if err != nil {
			return nil, fmt.Errorf("verify: event_conflicts: %w", err)
		}
		seq, _ := strconv.ParseUint(clickhouse.ValueString(row[2]), 10, 64)
		cs = append(cs, Conflict{
			EventID: str(row[0]), Host: host, Seq: seq, FirstHash: str(row[3]), ConflictHash: str(row[4]),
			Where: schemas.TopicAudit + "/" + clickhouse.ValueString(row[5]) + "/" + clickhouse.ValueString(row[6]),
		})
	}
	return cs, nil
}

// unhex decodes a host read as hex(host).
func unhex(v any) (string, error) {
	b, err := hex.DecodeString(str(v))
	if err != nil {
		return "", fmt.Errorf("host %q: not hex: %w", str(v), err)
	}
	return string(b), nil
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
