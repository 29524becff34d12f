#!/usr/bin/env bash
# Forwarder throughput to a real rsyslog (TLS, RFC 5425) against a raw TLS
# writer sending the same pre-framed bytes to the same rsyslog, in
# alternating rounds of one run; rsyslogd and the sender are bound to one
# CPU each (AUDITPIPE_BENCH_BIND=0: not bound). Figures go to
# bench/README.md ("Forwarder").
set -euo pipefail
cd "$(dirname "$0")/../.."
AUDITPIPE_BENCH_ROUNDS="${AUDITPIPE_BENCH_ROUNDS:-9}" \
	go test ./forwarder/ -run '^$' -bench '^BenchmarkForwarderVsRaw$' -benchtime=1x -count="${BENCH_COUNT:-1}" -timeout 20m -v
