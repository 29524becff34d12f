-- 0001_schema_migrations rendered for cluster "audit", database "auditpipe" (checksum b7a03c4f7c73cf2ef8f27fc3f9e1fde70fe7a7c1a52a56a461625caebcd2a45f)

CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER `audit`
(
    version    UInt32,
    name       String,
    checksum   FixedString(64),
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/schema_migrations', '{shard}-{replica}', applied_at)
ORDER BY version;

