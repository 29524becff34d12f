-- Lifecycle events of topic opctl.lifecycle.v1 (schemas.Lifecycle), one
-- row per state change of an operator control, an assignment or an access
-- request (issue 10), in typed columns, with the payload as it came and its
-- Kafka position. The indexer inserts them directly (typed, as
-- audit_events), not through pipeline_messages: a payload that is not a
-- valid lifecycle event is dead-lettered with the reason, never stored as
-- if it were one.
--
-- Dedup: the first write wins, as in audit_events. The indexer looks the
-- event ids of a batch up before inserting it and inserts only those not
-- stored yet: an identical copy (an outbox relay publishing again after a
-- crash, a redelivery) is counted as a duplicate, a differing copy is
-- dead-lettered as lifecycle_conflict and the stored row stays. Every insert
-- carries an insert_deduplication_token derived from its event ids (the
-- last 10000 are kept), so a batch retried after a crash is dropped whole;
-- and the sorting key ends in event_id with only columns of the event before
-- it, so ReplacingMergeTree folds a copy that slipped past both into one
-- row (FINAL, or final = 1, which the embedded engine sets).
--
-- Retention: as audit_events, the indexer sets the configured retention on
-- time at every start; the TTL below is a placeholder.
CREATE TABLE IF NOT EXISTS {{table "lifecycle_events" "cityHash64(event_id)"}}
(
    time            DateTime64(3, 'UTC'),
    event_id        FixedString(32),
    kind            LowCardinality(String),
    object_type     LowCardinality(String),
    object_id       String,
    resource_id     LowCardinality(String),
    compartment_id  LowCardinality(String),
    state_from      LowCardinality(String),
    state_to        LowCardinality(String),
    actor           LowCardinality(String),
    details         Map(String, String),

    -- The indexer's SHA-256 of the event's canonical JSON: what a later
    -- copy with the same event_id is compared with.
    content_hash    String,
    payload         String CODEC(ZSTD(3)),

    kafka_partition Int32 DEFAULT -1,
    kafka_offset    Int64 DEFAULT -1,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3),

    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_actor    actor    TYPE set(1000)           GRANULARITY 4
)
ENGINE = {{engine "ReplacingMergeTree"}}
PARTITION BY toYYYYMM(time)
ORDER BY (resource_id, object_id, time, event_id)
TTL toDateTime(time) + INTERVAL 3650 DAY
SETTINGS {{dedupWindow 10000}};
