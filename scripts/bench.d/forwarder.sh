#!/usr/bin/env bash
# Forwarder throughput to a real rsyslog (TLS, RFC 5425) against a raw TLS
# writer sending the same pre-framed bytes to the same rsyslog, same run.
# Figures go to bench/README.md ("Forwarder").
set -euo pipefail
cd "$(dirname "$0")/../.."
go test ./forwarder/ -run '^$' -bench '^BenchmarkForwarderVsRaw$' -benchtime=1x -count="${BENCH_COUNT:-3}" -timeout 20m
