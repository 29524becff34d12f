-- A test of the placeholders no shipped migration uses yet: a
-- materialized view over a sharded table, writing a sharded table.
CREATE TABLE IF NOT EXISTS {{table "src" "cityHash64(host)"}}
(
    host String,
    ts   DateTime64(3, 'UTC')
)
ENGINE = {{engine "MergeTree"}}
ORDER BY (host, ts);

CREATE TABLE IF NOT EXISTS {{table "per_host" "cityHash64(host)"}}
(
    host   String,
    events UInt64
)
ENGINE = {{engine "SummingMergeTree(events)"}}
ORDER BY host;

CREATE MATERIALIZED VIEW IF NOT EXISTS per_host_mv{{onCluster}} TO {{local "per_host"}} AS
SELECT host, count() AS events FROM {{local "src"}} GROUP BY host;
