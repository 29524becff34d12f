-- The migrations table: one row per applied migration file. The runner
-- creates it first (this file is applied like any other and recorded too).
CREATE TABLE IF NOT EXISTS {{table "schema_migrations"}}
(
    version    UInt32,
    name       String,
    checksum   FixedString(64),
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{engine "ReplacingMergeTree(applied_at)"}}
ORDER BY version;
