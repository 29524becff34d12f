-- 0002_audit_events rendered for cluster "audit", database "auditpipe" (checksum 2df30405ccab3ba53484477e892266f3dafa7d85faf37265e85d88f63f83be49)

CREATE TABLE IF NOT EXISTS audit_events_local ON CLUSTER `audit`
(
    ts          DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    event       LowCardinality(String),
    layer       LowCardinality(String),
    host        LowCardinality(String),
    req_auth_id LowCardinality(String),
    loginid     LowCardinality(String),
    event_id    FixedString(32),
    seq         UInt64 CODEC(Delta, ZSTD(1)),

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

    kafka_partition Int32 DEFAULT -1,
    kafka_offset    Int64 DEFAULT -1,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3),

    INDEX idx_host     host     TYPE set(1000)                    GRANULARITY 4,
    INDEX idx_loginid  loginid  TYPE bloom_filter(0.01)           GRANULARITY 4,
    INDEX idx_event_id event_id TYPE bloom_filter(0.001)          GRANULARITY 4,
    INDEX idx_title    title    TYPE ngrambf_v1(3, 65536, 2, 0)   GRANULARITY 4,
    INDEX idx_raw_data raw_data TYPE tokenbf_v1(65536, 2, 0)      GRANULARITY 4
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/audit_events_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (req_auth_id, host, ts, event_id)
TTL toDateTime(ts) + INTERVAL 3650 DAY
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800, index_granularity = 8192;

CREATE TABLE IF NOT EXISTS audit_events ON CLUSTER `audit` AS `auditpipe`.audit_events_local
ENGINE = Distributed(`audit`, 'auditpipe', 'audit_events_local', cityHash64(event_id));

