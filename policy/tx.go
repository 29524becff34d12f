package policy

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/schemas"
)

// Tx is a transaction of the store for the packages that keep their
// state in the policy store beside policy's own (policy/scheduler): the
// same database, migrations, retries, history and outbox, so their
// changes and what they publish commit together with policy's. Queries
// use ? placeholders (rebound for PostgreSQL); rows read for change take
// ForUpdate.
type Tx struct{ t *txn }

// Tx runs fn in a transaction and commits it, retrying the whole of fn
// when the database reports a retryable conflict (SQLite busy, a
// PostgreSQL serialization failure or deadlock): fn must start from
// scratch each time it is called.
func (s *Store) Tx(ctx context.Context, fn func(tx *Tx) error) error {
	return s.tx(ctx, func(t *txn) error { return fn(&Tx{t: t}) })
}

// Read returns a Tx that reads outside a transaction (each statement
// its own snapshot), for gets and lists.
func (s *Store) Read(ctx context.Context) *Tx { return &Tx{t: s.read(ctx)} }

// Exec runs a statement.
func (t *Tx) Exec(q string, args ...any) (sql.Result, error) { return t.t.exec(q, args...) }

// Query runs a query.
func (t *Tx) Query(q string, args ...any) (*sql.Rows, error) { return t.t.query(q, args...) }

// QueryRow runs a query of one row.
func (t *Tx) QueryRow(q string, args ...any) *sql.Row { return t.t.queryRow(q, args...) }

// ForUpdate is the clause that locks the rows a SELECT reads for change
// (" FOR UPDATE" on PostgreSQL; empty on SQLite, whose transactions hold
// the database's write lock from their start).
func (t *Tx) ForUpdate() string { return t.t.d.forUpdate }

// Outbox adds rec to the outbox, to be published on topic.
func (t *Tx) Outbox(topic string, rec kafka.Record, now time.Time) error {
	return t.t.outbox(topic, rec, now)
}

// Lifecycle validates ev and adds it to the outbox on opctl.lifecycle.v1,
// keyed as ev.Key says.
func (t *Tx) Lifecycle(ev schemas.Lifecycle) error { return t.t.lifecycle(ev) }

func (t *txn) lifecycle(ev schemas.Lifecycle) error {
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("policy: lifecycle event: %w", err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("policy: lifecycle event: %w", err)
	}
	return t.outbox(schemas.TopicLifecycle, kafka.Record{Key: []byte(ev.Key()), Value: b}, ev.Time)
}

// History adds h to the history of its object (Seq is assigned; Time is
// kept to the millisecond).
func (t *Tx) History(h HistoryEntry) error { return t.t.history(h) }

func (t *txn) history(h HistoryEntry) error {
	if _, err := t.exec("INSERT INTO history (object_type, object_id, time_ms, actor, from_state, to_state, action, comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		h.ObjectType, h.ObjectID, h.Time.UnixMilli(), h.Actor, h.From, h.To, h.Action, h.Comment); err != nil {
		return fmt.Errorf("policy store: history: %w", err)
	}
	return nil
}

// History returns the changes of an object, oldest first.
func (s *Store) History(ctx context.Context, object, id string) ([]HistoryEntry, error) {
	rows, err := s.read(ctx).query("SELECT seq, object_type, object_id, time_ms, actor, from_state, to_state, action, comment FROM history WHERE object_type = ? AND object_id = ? ORDER BY seq", object, id)
	if err != nil {
		return nil, fmt.Errorf("policy store: history: %w", err)
	}
	defer rows.Close()
	var out []HistoryEntry
	for rows.Next() {
		var (
			h  HistoryEntry
			ms int64
		)
		if err := rows.Scan(&h.Seq, &h.ObjectType, &h.ObjectID, &ms, &h.Actor, &h.From, &h.To, &h.Action, &h.Comment); err != nil {
			return nil, fmt.Errorf("policy store: history: %w", err)
		}
		h.Time = time.UnixMilli(ms).UTC()
		out = append(out, h)
	}
	return out, rows.Err()
}

// GetDoc reads the JSON document of row id of table into a T (for change
// when lock); a missing row is a *NotFoundError naming object.
func GetDoc[T any](tx *Tx, table, object, id string, lock bool) (T, error) {
	return getObj[T](tx.t, table, object, id, lock)
}

// Docs runs q, which selects one column of JSON documents, and decodes
// every row into a T.
func Docs[T any](tx *Tx, q string, args ...any) ([]T, error) { return docs[T](tx.t, q, args...) }

// List returns a page of table's documents matching conds (SQL with ?
// placeholders, joined with AND) newest first, by created_ms and id, and
// the cursor of the next page ("" at the end): the paging of policy's
// own lists.
func List[T any](ctx context.Context, st *Store, table string, conds []string, args []any, p Page) ([]T, string, error) {
	return list[T](ctx, st, table, where{conds: conds, args: args}, p)
}

// IsUniqueViolation reports whether err is a unique or primary key
// constraint failure.
func IsUniqueViolation(err error) bool { return uniqueViolation(err) }

// NewID returns a new id for an object of kind: ocid1.<kind>.<32 hex>.
func NewID(kind string) string { return newID(kind) }

// RandomHex returns 128 random bits as 32 lowercase hex digits (a
// lifecycle event's id).
func RandomHex() string { return randomHex() }
