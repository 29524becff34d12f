-- The tamper-evident trail (issue 9).
--
-- Chain checkpoints (event = 'chain') are stored in audit_events like every
-- other event of the topic, so the first-write-wins rule and the dedup
-- cover them too; their own fields are the chain_* columns, empty on the
-- other kinds. content_hash is the indexer's SHA-256 of the event's
-- canonical bytes (schemas.Event.AppendJSON, prev_hash included) when it
-- stored the row; escaped was carried by events and not stored before.
-- Rows indexed before this migration have content_hash ''.
ALTER TABLE audit_events
    ADD COLUMN IF NOT EXISTS escaped      Array(String) AFTER raw_data,
    ADD COLUMN IF NOT EXISTS prev_hash    String AFTER escaped,
    ADD COLUMN IF NOT EXISTS content_hash String AFTER prev_hash,
    ADD COLUMN IF NOT EXISTS chain_first  UInt64 AFTER content_hash,
    ADD COLUMN IF NOT EXISTS chain_last   UInt64 AFTER chain_first,
    ADD COLUMN IF NOT EXISTS chain_count  UInt64 AFTER chain_last,
    ADD COLUMN IF NOT EXISTS chain_head   String AFTER chain_count,
    ADD COLUMN IF NOT EXISTS key_id       LowCardinality(String) AFTER chain_head,
    ADD COLUMN IF NOT EXISTS sig          String AFTER key_id;

-- Copies of an event that arrived after a different copy was stored: the
-- first write wins, these are kept apart for auditpipe verify. One row per
-- conflicting copy and Kafka position (a redelivered copy folds into one).
CREATE TABLE IF NOT EXISTS event_conflicts
(
    event_id        FixedString(32),
    host            LowCardinality(String),
    seq             UInt64,
    first_hash      String,
    conflict_hash   String,
    json            String CODEC(ZSTD(3)),
    kafka_partition Int32 DEFAULT -1,
    kafka_offset    Int64 DEFAULT -1,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (event_id, conflict_hash, kafka_partition, kafka_offset);
