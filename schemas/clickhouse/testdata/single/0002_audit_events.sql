-- Audit events of topic opctl.audit.v1, one row per event (schemas.Event).
--
-- Dedup: a row's sorting key ends in event_id and every column before it is
-- a function of the event itself, so ReplacingMergeTree folds copies of one
-- event (a batch retried after a crash, a spool replayed, a backfill run
-- twice) into one row at merge time, and SELECT … FINAL (or the setting
-- final = 1, which the embedded engine and `auditpipe query` set) shows each
-- event once right away. On top, every insert carries an
-- insert_deduplication_token derived from its rows, and the table keeps the
-- last 10000 tokens (non_replicated_deduplication_window), so a retried
-- identical insert is dropped before it is even written.
--
-- Retention: the TTL below is a placeholder; the indexer sets the configured
-- retention (clickhouse.retention_days) at every start with
-- ALTER TABLE … MODIFY TTL, or removes it when retention is 0 (keep forever).
CREATE TABLE IF NOT EXISTS audit_events
(
    ts          DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    event       LowCardinality(String),
    layer       LowCardinality(String),
    host        LowCardinality(String),
    req_auth_id LowCardinality(String),
    loginid     LowCardinality(String),
    event_id    FixedString(32),
    seq         UInt64 CODEC(Delta, ZSTD(1)),

    -- Seed fields, as strings like the contract.
    srchost     LowCardinality(String),
    desthost    LowCardinality(String),
    res         LowCardinality(String),
    pid         String,
    ppid        String,
    ses         String,
    rec_id      String,
    tty         LowCardinality(String),
    euid        LowCardinality(String),
    exe         LowCardinality(String),
    cwd         String CODEC(ZSTD(1)),
    title       String CODEC(ZSTD(3)),
    args        Array(String) CODEC(ZSTD(3)),
    keys        String CODEC(ZSTD(3)),
    time        String CODEC(ZSTD(1)),
    raw_data    String CODEC(ZSTD(3)),

    -- Where the row came from (empty for backfills) and when it was written.
    kafka_partition Int32 DEFAULT -1,
    kafka_offset    Int64 DEFAULT -1,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3),

    INDEX idx_host     host     TYPE set(1000)                    GRANULARITY 4,
    INDEX idx_loginid  loginid  TYPE bloom_filter(0.01)           GRANULARITY 4,
    INDEX idx_event_id event_id TYPE bloom_filter(0.001)          GRANULARITY 4,
    INDEX idx_title    title    TYPE ngrambf_v1(3, 65536, 2, 0)   GRANULARITY 4,
    INDEX idx_raw_data raw_data TYPE tokenbf_v1(65536, 2, 0)      GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (req_auth_id, host, ts, event_id)
TTL toDateTime(ts) + INTERVAL 3650 DAY
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192;
