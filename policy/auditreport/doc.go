// Package auditreport builds an access request's audit log report, as OCI
// Operator Access Control's auditLogReport does: the request's login
// sessions (login → logout, source host, tty, audit session id) and, in
// each, the commands run as a process tree by pid and ppid, with su and
// sudo shown as the change of user they are, and the keystroke events
// counted (and listed on request).
//
// The report is read from ClickHouse (audit_events) through any
// clickhouse.ParamQuerier: either engine, or a query endpoint
// (queryapi.HTTPClient). The request id is bound as a query parameter,
// never spliced into SQL. Rows are read without FINAL and the first
// stored copy of each event_id wins, as auditpipe verify and the indexer
// read them: a later copy of an event, even one that names another
// request, changes nothing.
//
// It prints as a text tree (WriteText, in the manner of pstree) or as JSON
// (the Report type: the tree as nested objects), and is served over HTTP
// by NewHandler at /v1/accessRequests/{id}/auditLogReport.
package auditreport
