package clickhouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/auditpipe/auditpipe/schemas"
)

// LifecycleRow is one lifecycle event (opctl.lifecycle.v1) to insert into
// lifecycle_events.
type LifecycleRow struct {
	Event schemas.Lifecycle
	// Payload is the message's value as received (valid UTF-8 JSON).
	Payload []byte
	// ContentHash is the hex SHA-256 of the event's canonical JSON, stored
	// in content_hash.
	ContentHash string
	// Partition and Offset locate the Kafka message; -1 when none.
	Partition int32
	Offset    int64
}

// LifecycleToken is the deduplication token of an insert of rows: a
// digest of their event ids in order, so the same rows retried give the
// same token.
func LifecycleToken(rows []LifecycleRow) string {
	h := sha256.New()
	for i := range rows {
		h.Write([]byte(rows[i].Event.EventID))
	}
	return "lc-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// lifecycleColumns are the columns an insert of LifecycleRows sets, in
// the order of the server engine's batch.
const lifecycleColumns = "time, event_id, kind, object_type, object_id, resource_id, compartment_id, state_from, state_to, actor, " +
	"details, content_hash, payload, kafka_partition, kafka_offset"

// InsertLifecycle implements Engine: the typed columns as JSONEachRow.
func (e *Embedded) InsertLifecycle(_ context.Context, token string, rows []LifecycleRow) error {
	n := 160
	for i := range rows {
		n += 2*len(rows[i].Payload) + 512
	}
	b := fmt.Appendf(make([]byte, 0, n), "INSERT INTO lifecycle_events SETTINGS insert_deduplication_token = %s, "+
		"input_format_skip_unknown_fields = 0 FORMAT JSONEachRow\n", QuoteString(token))
	for i := range rows {
		r := &rows[i]
		l := &r.Event
		b = append(b, `{"time":"`...)
		b = l.Time.UTC().AppendFormat(b, "2006-01-02 15:04:05.000")
		b = append(b, '"')
		for _, kv := range [...]struct{ k, v string }{
			{"event_id", l.EventID}, {"kind", l.Kind}, {"object_type", l.ObjectType}, {"object_id", l.ObjectID},
			{"resource_id", l.ResourceID}, {"compartment_id", l.CompartmentID}, {"state_from", l.StateFrom},
			{"state_to", l.StateTo}, {"actor", l.Actor}, {"content_hash", r.ContentHash}, {"payload", string(r.Payload)},
		} {
			b = append(b, ',', '"')
			b = append(b, kv.k...)
			b = append(b, '"', ':')
			b = appendJSONString(b, kv.v)
		}
		b = append(b, `,"details":{`...)
		for j, k := range slices.Sorted(maps.Keys(l.Details)) {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, l.Details[k])
		}
		b = append(b, `},"kafka_partition":`...)
		b = strconv.AppendInt(b, int64(r.Partition), 10)
		b = append(b, `,"kafka_offset":`...)
		b = strconv.AppendInt(b, r.Offset, 10)
		b = append(b, '}', '\n')
	}
	b = append(b, 0)
	_, err := e.sess.QueryBytes(b, "")
	return err
}

// InsertLifecycle implements Engine with a typed batch.
func (s *Server) InsertLifecycle(ctx context.Context, token string, rows []LifecycleRow) error {
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token}))
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO lifecycle_events ("+lifecycleColumns+")")
	if err != nil {
		return err
	}
	defer func() { _ = b.Abort() }()
	for i := range rows {
		r := &rows[i]
		l := &r.Event
		details := l.Details
		if details == nil {
			details = map[string]string{}
		}
		if err := b.Append(l.Time.UTC(), l.EventID, l.Kind, l.ObjectType, l.ObjectID, l.ResourceID, l.CompartmentID,
			l.StateFrom, l.StateTo, l.Actor, details, r.ContentHash, string(r.Payload), r.Partition, r.Offset); err != nil {
			return fmt.Errorf("row %d (event_id %s): %w: %w", i, l.EventID, errRowAppend, err)
		}
	}
	return b.Send()
}
