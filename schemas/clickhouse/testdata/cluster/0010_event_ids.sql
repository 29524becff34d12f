-- 0010_event_ids rendered for cluster "audit", database "auditpipe" (checksum f0ff9866ee41bfb650d6b44b7f7bc2c4da2a630f266af144121001f374d355cd)

CREATE TABLE IF NOT EXISTS event_ids_local ON CLUSTER `audit`
(
    id UInt64 CODEC(Delta, ZSTD(1)),
    ts DateTime('UTC') CODEC(ZSTD(1))
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/event_ids_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY id
TTL toDateTime(ts) + INTERVAL 3650 DAY
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800, index_granularity = 1024;

CREATE TABLE IF NOT EXISTS event_ids ON CLUSTER `audit` AS `auditpipe`.event_ids_local
ENGINE = Distributed(`audit`, 'auditpipe', 'event_ids_local', id);

INSERT INTO event_ids (id, ts)
SELECT reinterpretAsUInt64(reverse(unhex(substring(event_id, 1, 16)))), toDateTime(ts)
FROM audit_events;

