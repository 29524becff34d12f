package indexer

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/auditpipe/auditpipe/clickhouse"
)

// First write wins (issue 9). audit_events is a ReplacingMergeTree ordered
// by (req_auth_id, host, ts, event_id): a later copy of an event with the
// same key replaced the stored one at merge time (and in every FINAL
// query), and a copy with another req_auth_id or ts became a second row.
// So before a batch is inserted, its event ids are looked up: an id
// already stored, or seen earlier in the batch, is not inserted again. A
// copy with the same content hash is a harmless duplicate (a redelivery, a
// replayed spool); a copy with another one is a conflict, kept apart in
// event_conflicts for auditpipe verify.

// lookupChunk bounds the event ids of one lookup query.
const lookupChunk = 5000 // 33 bytes each: under max_query_size (256 KiB)

// conflict is a copy of an event that differs from the one stored first.
type conflict[R any] struct {
	row       *R
	firstHash string
}

// storedRow says how a row of a first-write-wins table is looked up: its
// event id and content hash.
type storedRow[R any] func(*R) (id, hash string)

// eventKey is audit_events' storedRow.
func eventKey(r *clickhouse.EventRow) (string, string) { return r.Event.EventID, r.ContentHash }

// splitStored returns the rows of batch to insert (each id once, none
// already stored in table), the number of identical duplicates dropped
// and the conflicting copies. It queries q for the stored content hashes.
func splitStored[R any](ctx context.Context, q clickhouse.Querier, table string, batch []R, key storedRow[R]) (fresh []R, dups int, conflicts []conflict[R], err error) {
	first := make(map[string]string, len(batch)) // event_id → content hash of its first copy
	ids := make([]string, 0, len(batch))
	for i := range batch {
		id, hash := key(&batch[i])
		if _, ok := first[id]; !ok {
			first[id] = hash
			ids = append(ids, id)
		}
	}
	stored := make(map[string]string)
	for start := 0; start < len(ids); start += lookupChunk {
		if err := lookupHashes(ctx, q, table, ids[start:min(start+lookupChunk, len(ids))], stored); err != nil {
			return nil, 0, nil, err
		}
	}
	fresh = make([]R, 0, len(batch))
	taken := make(map[string]bool, len(batch))
	for i := range batch {
		r := &batch[i]
		id, hash := key(r)
		want, isStored := stored[id]
		if !isStored {
			want = first[id]
		}
		switch {
		case !isStored && !taken[id]:
			taken[id] = true
			fresh = append(fresh, *r)
		case want == hash || want == "":
			// "" is a row indexed before content hashes were stored: it
			// stays, and this copy cannot be compared with it.
			dups++
		default:
			conflicts = append(conflicts, conflict[R]{row: r, firstHash: want})
		}
	}
	return fresh, dups, conflicts, nil
}

// paramQuerier is an engine that binds query parameters (embedded chDB).
type paramQuerier interface {
	QueryFormatParams(ctx context.Context, sql, format string, params []clickhouse.Param) ([]byte, error)
}

// The lookup: the ids go in as one comma-separated string split by the
// server, bound as a parameter where the engine can (chDB binds it after
// parsing: a 165 KB literal per 5000 ids cost its SQL parser about a fifth
// of the indexer's time), else as a literal (a list of literals costs the
// parser five times as much again).
const (
	lookupSelect = "SELECT event_id, content_hash, toUnixTimestamp64Milli(inserted_at) FROM %s " +
		"WHERE event_id IN (SELECT arrayJoin(splitByChar(',', "
	lookupTail = "))) SETTINGS final = 0"
)

// lookupHashes adds the content hash of each of ids that table
// (audit_events, lifecycle_events) holds to stored: of the row inserted
// first, should there be several.
func lookupHashes(ctx context.Context, q clickhouse.Querier, table string, ids []string, stored map[string]string) error {
	for _, id := range ids {
		if !isHex32(id) {
			return fmt.Errorf("look up stored event ids: event_id %q: want 32 hex digits", id)
		}
	}
	list := strings.Join(ids, ",")
	var res *clickhouse.Result
	var err error
	if pq, ok := q.(paramQuerier); ok {
		var out []byte
		out, err = pq.QueryFormatParams(ctx, fmt.Sprintf(lookupSelect, table)+"{ids:String}"+lookupTail, "JSONCompact",
			[]clickhouse.Param{{Name: "ids", Value: list}})
		if err == nil {
			res, err = clickhouse.DecodeJSONCompact(out)
		}
	} else {
		res, err = q.Query(ctx, fmt.Sprintf(lookupSelect, table)+"'"+list+"'"+lookupTail)
	}
	if err != nil {
		return fmt.Errorf("look up stored event ids: %w", err)
	}
	firstAt := make(map[string]string, len(res.Rows))
	for _, row := range res.Rows {
		if len(row) != 3 {
			return fmt.Errorf("look up stored event ids: %d columns, want 3", len(row))
		}
		id, h, at := clickhouse.ValueString(row[0]), clickhouse.ValueString(row[1]), clickhouse.ValueString(row[2])
		if prev, ok := firstAt[id]; ok && (len(prev) < len(at) || len(prev) == len(at) && prev <= at) {
			continue // a later row of the same id
		}
		firstAt[id] = at
		stored[id] = h
	}
	return nil
}

// conflictsInsert is the statement that keeps cs in event_conflicts.
func conflictsInsert(cs []conflict[clickhouse.EventRow]) string {
	var b strings.Builder
	b.WriteString("INSERT INTO event_conflicts (event_id, host, seq, first_hash, conflict_hash, json, kafka_partition, kafka_offset) VALUES ")
	for i, c := range cs {
		if i > 0 {
			b.WriteByte(',')
		}
		e := &c.row.Event
		fmt.Fprintf(&b, "(%s,%s,%d,%s,%s,%s,%s,%s)", clickhouse.QuoteString(e.EventID), clickhouse.QuoteString(e.Host), e.Seq,
			clickhouse.QuoteString(c.firstHash), clickhouse.QuoteString(c.row.ContentHash), clickhouse.QuoteString(string(c.row.JSON)),
			strconv.Itoa(int(c.row.Partition)), strconv.FormatInt(c.row.Offset, 10))
	}
	return b.String()
}
