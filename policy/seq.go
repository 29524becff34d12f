package policy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/auditpipe/auditpipe/grants"
)

// nextSeq takes the next publish_seq of key's records on topic (from 1),
// in this transaction: the row is created or incremented and locked until
// the commit, so a transaction that rolls back gives its number back with
// its record, and no two committed records of a key share a number,
// whichever process (leader or not) wrote them. Every signed record the
// policy service writes to the outbox carries one (grants.Seqs).
func (t *txn) nextSeq(topic, key string) (int64, error) {
	var seq int64
	err := t.queryRow("INSERT INTO publish_seqs (topic, msg_key, seq) VALUES (?, ?, 1) ON CONFLICT (topic, msg_key) DO UPDATE SET seq = publish_seqs.seq + 1 RETURNING seq",
		topic, key).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("policy store: publish_seq of %s %q: %w", topic, key, err)
	}
	return seq, nil
}

// NextSeq takes the next publish_seq of key's records on topic, in this
// transaction (the scheduler's dispatch records).
func (t *Tx) NextSeq(topic, key string) (int64, error) { return t.t.nextSeq(topic, key) }

// PublishSeq returns the last publish_seq taken for key on topic (0:
// none), for tests and inspection.
func (s *Store) PublishSeq(ctx context.Context, topic, key string) (int64, error) {
	var seq int64
	err := s.read(ctx).queryRow("SELECT seq FROM publish_seqs WHERE topic = ? AND msg_key = ?", topic, key).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("policy store: publish_seq of %s %q: %w", topic, key, err)
	}
	return seq, nil
}

// AdmitSeq is the replay check of a consumer whose state is the store
// (consumer names it: "agent_reports", "work_progress"): it refuses a
// record of key numbered seq whose signed payload has digest
// (grants.PayloadDigest) by grants.CheckSeq against the last one the
// consumer admitted, with a *grants.RefusedError (ReasonReplayed), and
// else records it as the last, in one transaction (the row locked on
// PostgreSQL: two processes of one consumer group, before and after a
// rebalance, see one another's). A record admitted again (the same number
// and payload, read again after a crash or a rebalance) is admitted.
func (s *Store) AdmitSeq(ctx context.Context, consumer, key string, seq int64, digest string, now int64) error {
	return s.tx(ctx, func(tx *txn) error {
		if _, err := tx.exec("INSERT INTO applied_seqs (consumer, msg_key, seq, digest, applied_ms) VALUES (?, ?, 0, '', ?) ON CONFLICT (consumer, msg_key) DO NOTHING",
			consumer, key, now); err != nil {
			return fmt.Errorf("policy store: applied_seq of %s %q: %w", consumer, key, err)
		}
		var (
			last       int64
			lastDigest string
		)
		if err := tx.queryRow("SELECT seq, digest FROM applied_seqs WHERE consumer = ? AND msg_key = ?"+tx.d.forUpdate, consumer, key).Scan(&last, &lastDigest); err != nil {
			return fmt.Errorf("policy store: applied_seq of %s %q: %w", consumer, key, err)
		}
		if err := grants.CheckSeq("host", key, last, lastDigest, seq, digest); err != nil {
			return err
		}
		if _, err := tx.exec("UPDATE applied_seqs SET seq = ?, digest = ?, applied_ms = ? WHERE consumer = ? AND msg_key = ?", seq, digest, now, consumer, key); err != nil {
			return fmt.Errorf("policy store: applied_seq of %s %q: %w", consumer, key, err)
		}
		return nil
	})
}
