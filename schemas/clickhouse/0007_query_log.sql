-- The query endpoint's log (issue 9): one row per statement it answered or
-- refused, with who sent it, so that "who read what" is itself queryable.
-- The endpoint also logs each statement as a structured log line; this
-- table is written from a bounded buffer (auditpipe_query_log_dropped_total
-- counts rows lost when the store cannot keep up). sql is cut at 64 KiB;
-- sql_bytes is its full length.
CREATE TABLE IF NOT EXISTS {{table "query_log" "rand()"}}
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
ENGINE = {{engine "MergeTree"}}
PARTITION BY toYYYYMM(time)
ORDER BY (time, who)
TTL toDateTime(time) + INTERVAL 3650 DAY;
