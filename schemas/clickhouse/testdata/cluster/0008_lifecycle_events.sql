-- 0008_lifecycle_events rendered for cluster "audit", database "auditpipe" (checksum c6b51534eb56c18df0bd4287fc02f8111fe316d59aad693d96f5ee36c346a0e2)

CREATE TABLE IF NOT EXISTS lifecycle_events_local ON CLUSTER `audit`
(
    time            DateTime64(3, 'UTC'),
    event_id        FixedString(32),
    kind            LowCardinality(String),
    object_type     LowCardinality(String),
    object_id       String,
    resource_id     LowCardinality(String),
    compartment_id  LowCardinality(String),
    state_from      LowCardinality(String),
    state_to        LowCardinality(String),
    actor           LowCardinality(String),
    details         Map(String, String),

    content_hash    String,
    payload         String CODEC(ZSTD(3)),

    kafka_partition Int32 DEFAULT -1,
    kafka_offset    Int64 DEFAULT -1,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3),

    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_actor    actor    TYPE set(1000)           GRANULARITY 4
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/lifecycle_events_local', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (resource_id, object_id, time, event_id)
TTL toDateTime(time) + INTERVAL 3650 DAY
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS lifecycle_events ON CLUSTER `audit` AS `auditpipe`.lifecycle_events_local
ENGINE = Distributed(`audit`, 'auditpipe', 'lifecycle_events_local', cityHash64(event_id));

