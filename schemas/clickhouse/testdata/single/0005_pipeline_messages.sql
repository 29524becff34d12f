-- Messages of the other topics the indexer follows (opctl.lifecycle.v1,
-- opctl.dispatch.v1, opctl.deadletter.v1, …), kept whole: their contracts
-- belong to other components, so the payload is stored as it came and read
-- with ClickHouse's JSON functions. One row per topic/partition/offset,
-- deduplicated on that key.
CREATE TABLE IF NOT EXISTS pipeline_messages
(
    topic       LowCardinality(String),
    partition   Int32,
    offset      Int64,
    key         String,
    ts          DateTime64(3, 'UTC'),
    payload     String CODEC(ZSTD(3)),
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (topic, partition, offset)
TTL toDateTime(ts) + INTERVAL 3650 DAY
SETTINGS non_replicated_deduplication_window = 10000;
