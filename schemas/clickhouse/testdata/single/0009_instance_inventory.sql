-- The instances' package inventory (issue 12): what each host agent
-- reports on a schedule and after every work request, read by
-- `auditpipe report compliance`. One report is the rows of one instance
-- with the same time: a header row with package = '' naming the instance
-- (so an instance with nothing outstanding is still counted), then one row
-- per installed package with its available update, if any (update_type
-- SECURITY, BUGFIX, ENHANCEMENT or OTHER, and the CVEs the update fixes).
-- compartment_path is the compartment and its ancestors, the root first,
-- so that a recursive report is has(compartment_path, ID); group_ids are
-- the instance groups the instance belongs to. A report sent twice
-- collapses (ReplacingMergeTree on the whole key).
-- (0008 is left to lifecycle_events, taken by another branch.)
CREATE TABLE IF NOT EXISTS instance_inventory
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
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (instance_id, time, package)
TTL toDateTime(time) + INTERVAL 400 DAY;
