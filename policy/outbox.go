package policy

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
)

// OutboxRecord is one message waiting in the outbox: written in the
// transaction of the state change it reports, published by the Relay to
// Topic with Key, Value and Headers.
type OutboxRecord struct {
	ID        int64
	Topic     string
	Key       []byte
	Value     []byte
	Headers   []kafka.Header
	Created   time.Time
	Published time.Time // zero while pending
}

// Record returns the Kafka record to publish.
func (r OutboxRecord) Record() kafka.Record {
	return kafka.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers}
}

type wireHeader struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// outbox adds rec to the outbox in this transaction.
func (t *txn) outbox(topic string, rec kafka.Record, now time.Time) error {
	hs := make([]wireHeader, len(rec.Headers))
	for i, h := range rec.Headers {
		hs[i] = wireHeader{Key: h.Key, Value: h.Value}
	}
	hb, err := json.Marshal(hs)
	if err != nil {
		return fmt.Errorf("policy store: outbox headers: %w", err)
	}
	if _, err := t.exec("INSERT INTO outbox (topic, msg_key, msg_value, headers, created_ms) VALUES (?, ?, ?, ?, ?)",
		topic, rec.Key, rec.Value, string(hb), now.UnixMilli()); err != nil {
		return fmt.Errorf("policy store: outbox: %w", err)
	}
	t.outboxed = true
	return nil
}

// PendingOutbox returns up to limit unpublished records, oldest first
// (by id: the order their transactions wrote them; two changes of one
// object are always in commit order, since the object's row is locked
// while its change is written).
func (s *Store) PendingOutbox(ctx context.Context, limit int) ([]OutboxRecord, error) {
	return s.outboxRows(ctx, "WHERE published_ms IS NULL ORDER BY id LIMIT ?", limit)
}

// Outbox returns up to limit records, published or not, from id after
// on, in id order (for tests and inspection).
func (s *Store) Outbox(ctx context.Context, after int64, limit int) ([]OutboxRecord, error) {
	return s.outboxRows(ctx, "WHERE id > ? ORDER BY id LIMIT ?", after, limit)
}

func (s *Store) outboxRows(ctx context.Context, where string, args ...any) ([]OutboxRecord, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind("SELECT id, topic, msg_key, msg_value, headers, created_ms, published_ms FROM outbox "+where), args...)
	if err != nil {
		return nil, fmt.Errorf("policy store: outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxRecord
	for rows.Next() {
		var (
			r         OutboxRecord
			headers   string
			created   int64
			published sql.NullInt64
		)
		if err := rows.Scan(&r.ID, &r.Topic, &r.Key, &r.Value, &headers, &created, &published); err != nil {
			return nil, fmt.Errorf("policy store: outbox: %w", err)
		}
		var hs []wireHeader
		if err := json.Unmarshal([]byte(headers), &hs); err != nil {
			return nil, fmt.Errorf("policy store: outbox %d headers: %w", r.ID, err)
		}
		for _, h := range hs {
			r.Headers = append(r.Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
		r.Created = time.UnixMilli(created).UTC()
		if published.Valid {
			r.Published = time.UnixMilli(published.Int64).UTC()
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// MarkPublished records that the records ids were published at t. A
// record marked already keeps its first time. It returns how many it
// marked.
func (s *Store) MarkPublished(ctx context.Context, t time.Time, ids ...int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := []any{t.UnixMilli()}
	marks := make([]string, len(ids))
	for i, id := range ids {
		marks[i] = "?"
		args = append(args, id)
	}
	res, err := s.db.ExecContext(ctx, s.d.rebind("UPDATE outbox SET published_ms = ? WHERE published_ms IS NULL AND id IN ("+strings.Join(marks, ", ")+")"), args...)
	if err != nil {
		return 0, fmt.Errorf("policy store: mark published: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// PurgeOutbox deletes the records published before t and returns how
// many; pending records are never deleted.
func (s *Store) PurgeOutbox(ctx context.Context, before time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, s.d.rebind("DELETE FROM outbox WHERE published_ms IS NOT NULL AND published_ms < ?"), before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("policy store: purge outbox: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// OutboxStats is the outbox's depth and the age of its oldest pending
// record (for the relay's metrics).
type OutboxStats struct {
	Pending       int
	OldestPending time.Time // zero when none
}

// OutboxStats counts the pending records.
func (s *Store) OutboxStats(ctx context.Context) (OutboxStats, error) {
	var (
		st     OutboxStats
		oldest sql.NullInt64
	)
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*), MIN(created_ms) FROM outbox WHERE published_ms IS NULL").Scan(&st.Pending, &oldest); err != nil {
		return st, fmt.Errorf("policy store: outbox stats: %w", err)
	}
	if oldest.Valid {
		st.OldestPending = time.UnixMilli(oldest.Int64).UTC()
	}
	return st, nil
}
