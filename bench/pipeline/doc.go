// Package pipeline is the load harness of the whole pipeline (make
// bench-pipeline, scripts/bench.d/pipeline.sh): its benchmarks run the
// built auditpipe binary as the all-in-one on traffic from
// internal/auditgen, written at a target rate into an audit log that
// rotates, and report sustained events/s with every event_id checked in
// ClickHouse and at the SIEM (rsyslog), end-to-end latency percentiles,
// and peak RSS and CPU of each process. The package has no code of its
// own outside its tests; bench/README.md holds the figures.
package pipeline
