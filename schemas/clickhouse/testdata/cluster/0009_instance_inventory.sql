-- 0009_instance_inventory rendered for cluster "audit", database "auditpipe" (checksum 98dc2b407f907657ab107ae25e61d18dca0a118ae5126f4244ede58e6bc55d62)

CREATE TABLE IF NOT EXISTS instance_inventory_local ON CLUSTER `audit`
(
    time              DateTime64(3, 'UTC'),
    instance_id       String,
    instance_name     String,
    compartment_id    String,
    compartment_path  Array(String),
    group_ids         Array(String),
    os_family         LowCardinality(String),
    package           String,
    version           String,
    arch              LowCardinality(String),
    update_version    String,
    update_type       LowCardinality(String),
    cves              Array(String)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/instance_inventory_local', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (instance_id, time, package)
TTL toDateTime(time) + INTERVAL 400 DAY;

CREATE TABLE IF NOT EXISTS instance_inventory ON CLUSTER `audit` AS `auditpipe`.instance_inventory_local
ENGINE = Distributed(`audit`, 'auditpipe', 'instance_inventory_local', cityHash64(instance_id));

