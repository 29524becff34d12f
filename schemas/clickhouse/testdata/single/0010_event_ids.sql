-- The event ids stored in audit_events, ordered by id: what the
-- first-write-wins lookup reads (issues 9, 17).
--
-- Before a batch is inserted, the indexer asks which of its event ids are
-- stored already. Asked of audit_events (ordered by req_auth_id, host, ts,
-- event_id), the question scans event_id in every granule: each holds one
-- of a batch's random ids, so neither the sorting key nor the bloom filter
-- prunes, and the lookup grows with the table (about 75 ms per million
-- stored rows for 10 000 ids). This table is ordered by the id, so its
-- primary key prunes once the table is large, and each row is 8 bytes
-- where audit_events' event_id is 32.
--
-- id is the first 64 bits of the event id (its first 16 hex digits, as an
-- unsigned big-endian number; clickhouse.EventIDKey in Go, the expression
-- of the backfill below in SQL). The table is a filter, never the answer:
-- an id that is not here was never inserted into audit_events; an id that
-- is here is looked up in audit_events for its stored content hash (few
-- ids, which audit_events' bloom filter prunes well). So an id written here
-- whose event then failed to land (a crash between the two inserts, a
-- refused row, a 64-bit collision) costs a second query and is not lost:
-- every writer (Engine.InsertEvents, both engines) inserts a batch's ids
-- here first and its events second.
--
-- Plain MergeTree: several rows of one id (a batch retried in another cut)
-- are harmless. The insert deduplication token and window are those of
-- audit_events' inserts. Retention: ts is the event's time to the second;
-- the indexer sets the configured retention here as on audit_events. On a
-- cluster the table is sharded by id (a retried insert sends the same rows
-- to the same shards, where its token drops them); the lookup reads every
-- shard through the Distributed table.
CREATE TABLE IF NOT EXISTS event_ids
(
    id UInt64 CODEC(Delta, ZSTD(1)),
    ts DateTime('UTC') CODEC(ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY id
TTL toDateTime(ts) + INTERVAL 3650 DAY
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 1024;

-- The ids of the events stored before this migration (no SETTINGS clause:
-- the query endpoint appends its own; with final = 1, as the embedded
-- engine sets it, each stored id comes once).
INSERT INTO event_ids (id, ts)
SELECT reinterpretAsUInt64(reverse(unhex(substring(event_id, 1, 16)))), toDateTime(ts)
FROM audit_events;
