// Package clickhouse is auditpipe's access to ClickHouse: the Engine
// interface with its two implementations — a ClickHouse server through
// clickhouse-go/v2 (OpenServer) and embedded chDB in this process
// (OpenEmbedded, on the purego binding in clickhouse/chdb) —, the store
// configuration that chooses between them (StoreConfig, Open), the schema
// migrations and retention (Migrate), the insert deduplication tokens, and
// the printing of query results (WriteResult).
//
// It is what everything that reads or writes the audit store imports: the
// indexer (the Kafka consumer), the query endpoint (queryapi), reports and
// `auditpipe verify`. It imports none of them.
package clickhouse
