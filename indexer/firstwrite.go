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
// and the conflicting copies. It queries q for the stored content hashes,
// of the ids that filter (when not nil) says may be stored. When every
// row is to be inserted (the usual batch), fresh is batch itself: a batch
// of events is about 6 MB of rows, not copied for nothing.
func splitStored[R any](ctx context.Context, q clickhouse.Querier, table string, batch []R, key storedRow[R], filter idFilter) (fresh []R, dups int, conflicts []conflict[R], err error) {
	first := make(map[string]int, len(batch)) // event_id → index of its first copy in batch
	ids := make([]string, 0, len(batch))
	for i := range batch {
		id, _ := key(&batch[i])
		if _, ok := first[id]; !ok {
			first[id] = i
			ids = append(ids, id)
		}
	}
	if filter != nil {
		if ids, err = filter(ctx, q, ids); err != nil {
			return nil, 0, nil, err
		}
	}
	stored := make(map[string]string)
	for start := 0; start < len(ids); start += lookupChunk {
		if err := lookupHashes(ctx, q, table, ids[start:min(start+lookupChunk, len(ids))], stored); err != nil {
			return nil, 0, nil, err
		}
	}
	copied := false // fresh is a copy, no longer batch[:i]
	for i := range batch {
		r := &batch[i]
		id, hash := key(r)
		want, isStored := stored[id]
		if !isStored && first[id] == i {
			if copied {
				fresh = append(fresh, *r)
			}
			continue
		}
		if !copied {
			fresh = append(make([]R, 0, len(batch)-1), batch[:i]...)
			copied = true
		}
		if !isStored {
			_, want = key(&batch[first[id]])
		}
		if want == hash || want == "" {
			// "" is a row indexed before content hashes were stored: it
			// stays, and this copy cannot be compared with it.
			dups++
		} else {
			conflicts = append(conflicts, conflict[R]{row: r, firstHash: want})
		}
	}
	if !copied {
		fresh = batch
	}
	return fresh, dups, conflicts, nil
}

// idFilter returns those of ids that may be stored: every one that is,
// and perhaps others.
type idFilter func(ctx context.Context, q clickhouse.Querier, ids []string) ([]string, error)

// idsChunk bounds the keys of one query of event_ids: 20 digits and a
// comma each, under max_query_size (256 KiB) should they go in as a literal.
const idsChunk = 10000

// inEventIDs is audit_events' idFilter: the ids whose key is in event_ids,
// where every writer puts an event's id before the event (migration 0010).
// An id that is not there was never stored, and most of a batch's ids are
// new: only the few left are looked up in audit_events, whose bloom filter
// prunes well for a few ids, where a lookup of a whole batch scans its
// event_id column (see the migration).
func inEventIDs(ctx context.Context, q clickhouse.Querier, ids []string) ([]string, error) {
	var keys map[uint64]bool // of the chunk's keys found; most batches find none
	var maybe []string
	var list []byte
	for start := 0; start < len(ids); start += idsChunk {
		chunk := ids[start:min(start+idsChunk, len(ids))]
		list = append(list[:0], '[')
		for i, id := range chunk {
			k, ok := clickhouse.EventIDKey(id)
			if !ok {
				return nil, fmt.Errorf("look up stored event ids: event_id %q: want 32 hex digits", id)
			}
			if i > 0 {
				list = append(list, ',')
			}
			list = strconv.AppendUint(list, k, 10)
		}
		list = append(list, ']')
		const sel = "SELECT DISTINCT id FROM event_ids WHERE id IN "
		var found []uint64
		if pq, ok := q.(paramQuerier); ok {
			out, err := pq.QueryFormatParams(ctx, sel+"{ids:Array(UInt64)}", "TSV", []clickhouse.Param{{Name: "ids", Value: string(list)}})
			if err != nil {
				return nil, fmt.Errorf("look up stored event ids in event_ids: %w", err)
			}
			for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
				if line == "" {
					continue
				}
				k, err := strconv.ParseUint(line, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("look up stored event ids in event_ids: %q: %w", line, err)
				}
				found = append(found, k)
			}
		} else {
			// A literal, as lookupHashes sends the server engine.
			res, err := q.Query(ctx, sel+string(list))
			if err != nil {
				return nil, fmt.Errorf("look up stored event ids in event_ids: %w", err)
			}
			for _, row := range res.Rows {
				if len(row) != 1 {
					return nil, fmt.Errorf("look up stored event ids in event_ids: %d columns, want 1", len(row))
				}
				k, err := strconv.ParseUint(clickhouse.ValueString(row[0]), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("look up stored event ids in event_ids: %w", err)
				}
				found = append(found, k)
			}
		}
		if len(found) == 0 {
			continue
		}
		if keys == nil {
			keys = make(map[uint64]bool, len(found))
		}
		clear(keys)
		for _, k := range found {
			keys[k] = true
		}
		for _, id := range chunk {
			if k, _ := clickhouse.EventIDKey(id); keys[k] {
				maybe = append(maybe, id)
			}
		}
	}
	return maybe, nil
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
