// Package queryapi serves SQL over an auditpipe store: the HTTP query
// endpoint in the shape of ClickHouse's HTTP interface (NewQueryHandler),
// with its read-only guard (one read statement, no function that reaches
// outside the store, readonly = 1, no cross-site browser requests); a
// client of that endpoint or of any ClickHouse HTTP interface (HTTPClient);
// and the auditor's named queries (NamedQueries, Named, PrintNamedQueries).
//
// The store itself is package clickhouse.
package queryapi
