-- 0007_query_log rendered for cluster "audit", database "auditpipe" (checksum 55ec71f25476d52a9563f6e692b09e279f3871121b3b71c9ec590f1b25ddfaaa)

CREATE TABLE IF NOT EXISTS query_log_local ON CLUSTER `audit`
(
    time          DateTime64(3, 'UTC'),
    who           String,
    who_role      LowCardinality(String),
    remote        String,
    query_id      String,
    sql           String CODEC(ZSTD(3)),
    sql_bytes     UInt64,
    result        LowCardinality(String),
    code          Int32,
    error         String,
    rows          UInt64,
    bytes         UInt64,
    result_bytes  UInt64,
    duration_ms   Float64
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/query_log_local', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (time, who)
TTL toDateTime(time) + INTERVAL 3650 DAY;

CREATE TABLE IF NOT EXISTS query_log ON CLUSTER `audit` AS `auditpipe`.query_log_local
ENGINE = Distributed(`audit`, 'auditpipe', 'query_log_local', rand());

