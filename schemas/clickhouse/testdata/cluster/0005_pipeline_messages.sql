-- 0005_pipeline_messages rendered for cluster "audit", database "auditpipe" (checksum b51aa419c40c991f5265a129d3cda99f104adaaf0430354c6ddb1e7abf44dac1)

CREATE TABLE IF NOT EXISTS pipeline_messages_local ON CLUSTER `audit`
(
    topic       LowCardinality(String),
    partition   Int32,
    offset      Int64,
    key         String,
    ts          DateTime64(3, 'UTC'),
    payload     String CODEC(ZSTD(3)),
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/pipeline_messages_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (topic, partition, offset)
TTL toDateTime(ts) + INTERVAL 3650 DAY
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS pipeline_messages ON CLUSTER `audit` AS `auditpipe`.pipeline_messages_local
ENGINE = Distributed(`audit`, 'auditpipe', 'pipeline_messages_local', cityHash64(topic, partition, offset));

