-- 0006_chain rendered for cluster "audit", database "auditpipe" (checksum 702914afc0ec1f1ef197466f1f53d57d3ea8340b9e0e46155bb53a8bf7f0e09a)

ALTER TABLE audit_events_local ON CLUSTER `audit`
    ADD COLUMN IF NOT EXISTS escaped      Array(String) AFTER raw_data,
    ADD COLUMN IF NOT EXISTS prev_hash    String AFTER escaped,
    ADD COLUMN IF NOT EXISTS content_hash String AFTER prev_hash,
    ADD COLUMN IF NOT EXISTS chain_first  UInt64 AFTER content_hash,
    ADD COLUMN IF NOT EXISTS chain_last   UInt64 AFTER chain_first,
    ADD COLUMN IF NOT EXISTS chain_count  UInt64 AFTER chain_last,
    ADD COLUMN IF NOT EXISTS chain_head   String AFTER chain_count,
    ADD COLUMN IF NOT EXISTS key_id       LowCardinality(String) AFTER chain_head,
    ADD COLUMN IF NOT EXISTS sig          String AFTER key_id;

ALTER TABLE audit_events ON CLUSTER `audit`
    ADD COLUMN IF NOT EXISTS escaped      Array(String) AFTER raw_data,
    ADD COLUMN IF NOT EXISTS prev_hash    String AFTER escaped,
    ADD COLUMN IF NOT EXISTS content_hash String AFTER prev_hash,
    ADD COLUMN IF NOT EXISTS chain_first  UInt64 AFTER content_hash,
    ADD COLUMN IF NOT EXISTS chain_last   UInt64 AFTER chain_first,
    ADD COLUMN IF NOT EXISTS chain_count  UInt64 AFTER chain_last,
    ADD COLUMN IF NOT EXISTS chain_head   String AFTER chain_count,
    ADD COLUMN IF NOT EXISTS key_id       LowCardinality(String) AFTER chain_head,
    ADD COLUMN IF NOT EXISTS sig          String AFTER key_id;

CREATE TABLE IF NOT EXISTS event_conflicts_local ON CLUSTER `audit`
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/event_conflicts_local', '{replica}')
ORDER BY (event_id, conflict_hash, kafka_partition, kafka_offset);

CREATE TABLE IF NOT EXISTS event_conflicts ON CLUSTER `audit` AS `auditpipe`.event_conflicts_local
ENGINE = Distributed(`audit`, 'auditpipe', 'event_conflicts_local', cityHash64(event_id));

