package indexer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/internal/backoff"
	"github.com/auditpipe/auditpipe/schemas"
)

// Lifecycle events (issue 10): messages of opctl.lifecycle.v1 are
// decoded strictly as schemas.Lifecycle and inserted into
// lifecycle_events in typed columns, first write wins by event_id as in
// audit_events. A message that is not a valid lifecycle event is a
// counted dead letter with the reason, never a row.

// lifecycleKey is lifecycle_events' storedRow.
func lifecycleKey(r *clickhouse.LifecycleRow) (string, string) { return r.Event.EventID, r.ContentHash }

// DecodeLifecycle decodes and checks one lifecycle event as the indexer
// would index it, with its content hash (LifecycleHash). Partition and
// Offset of the row are -1. The error, when not nil, carries the
// dead-letter reason (see RejectReason): oversize, invalid_utf8,
// invalid_json, schema_mismatch (an unknown field, a wrong type, data
// after the object) or invalid_lifecycle (fails schemas.Lifecycle's
// validation).
func DecodeLifecycle(value []byte, maxRowBytes int) (clickhouse.LifecycleRow, error) {
	r := clickhouse.LifecycleRow{Partition: -1, Offset: -1}
	if maxRowBytes > 0 && len(value) > maxRowBytes {
		return r, &rejectError{ReasonOversize, fmt.Errorf("%d bytes, limit %d", len(value), maxRowBytes)}
	}
	if !utf8.Valid(value) {
		return r, &rejectError{ReasonInvalidUTF8, errors.New("lifecycle event is not UTF-8")}
	}
	v := bytes.TrimSpace(value)
	if len(v) < 2 || v[0] != '{' || !json.Valid(v) {
		return r, &rejectError{ReasonInvalidJSON, errors.New("lifecycle event: not a JSON object")}
	}
	l, err := schemas.DecodeLifecycle(v)
	if err != nil {
		// Which of the two: decoded leniently, does it validate?
		var loose schemas.Lifecycle
		if json.Unmarshal(v, &loose) == nil && loose.Validate() != nil {
			return r, &rejectError{ReasonInvalidLifecycle, err}
		}
		return r, &rejectError{ReasonSchemaMismatch, err}
	}
	l.Time = l.Time.UTC()
	r.Event = l
	r.Payload = v
	r.ContentHash = LifecycleHash(&l)
	return r, nil
}

// LifecycleHash is the hex SHA-256 of l's canonical JSON (encoding/json of
// the event with its time in UTC: fields in the struct's order, details
// sorted by key), what two copies of one event_id are compared by.
func LifecycleHash(l *schemas.Lifecycle) string {
	c := *l
	c.Time = c.Time.UTC()
	b, _ := json.Marshal(&c) // strings, a map of strings and a time: always encodes
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// firstWriteWinsLifecycle returns the rows of the batch whose event ids
// are not stored yet, each once (splitStored), and the differing copies
// of stored ones as dead letters (ReasonLifecycleConflict): the stored
// event stays as it is. The lookup is retried like an insert.
func (ix *Indexer) firstWriteWinsLifecycle(ctx context.Context, rows []clickhouse.LifecycleRow) ([]clickhouse.LifecycleRow, []*schemas.DeadLetter, error) {
	var (
		fresh     []clickhouse.LifecycleRow
		dups      int
		conflicts []conflict[clickhouse.LifecycleRow]
	)
	if err := backoff.Retry(ctx, ix.retryPolicy("looking up stored lifecycle events"), func(ctx context.Context) (err error) {
		fresh, dups, conflicts, err = splitStored(ctx, ix.eng, "lifecycle_events", rows, lifecycleKey, nil)
		if err != nil {
			ix.m.insertErrors.Inc()
			return backoff.Retryable(err)
		}
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("indexer: look up stored lifecycle events: %w", err)
	}
	var dead []*schemas.DeadLetter
	for _, c := range conflicts {
		r := c.row
		err := fmt.Errorf("lifecycle event %s: a different copy is stored (content hash %s, this copy's %s): the first write wins",
			r.Event.EventID, c.firstHash, r.ContentHash)
		dead = append(dead, ix.deadLetter(ReasonLifecycleConflict, err, r.Payload, r.Event.Key(), lifecycleSource(r)))
	}
	ix.m.duplicates.Add(float64(dups))
	return fresh, dead, nil
}

func lifecycleSource(r *clickhouse.LifecycleRow) string {
	return fmt.Sprintf("%s/%d/%d", schemas.TopicLifecycle, r.Partition, r.Offset)
}

// insertLifecycle inserts rows into lifecycle_events, as insertEach does.
func (ix *Indexer) insertLifecycle(ctx context.Context, rows []clickhouse.LifecycleRow) ([]*schemas.DeadLetter, error) {
	return insertEach(ctx, ix, "lifecycle_events", rows,
		func(rs []clickhouse.LifecycleRow) error {
			return ix.eng.InsertLifecycle(ctx, clickhouse.LifecycleToken(rs), rs)
		},
		func(r *clickhouse.LifecycleRow, err error) *schemas.DeadLetter {
			return ix.deadLetter(ReasonInsertRejected, err, r.Payload, r.Event.Key(), lifecycleSource(r))
		})
}
