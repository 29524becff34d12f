#!/usr/bin/env bash
# Indexer throughput: rows/s through the indexer (kfake → consumer group →
# decode → chDB → commit) against chDB's own INSERT … FORMAT JSONEachRow of
# the same rows, in the same run. Target: at least 70 %. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${AUDITPIPE_CACHE:=$HOME/.cache/auditpipe}"
export AUDITPIPE_CACHE AUDITPIPE_BENCH=1
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
echo "== indexer"
# Against the broker as unit tests run it, then as the all-in-one runs it
# (TLS, SASL/SCRAM-SHA-512, ACLs; the indexer's own principal).
for mode in plaintext secure; do
	AUDITPIPE_BENCH_KAFKA="$mode" AUDITPIPE_BENCH_OUT="$out" go test -count=1 -timeout 20m -run '^TestThroughputIndexerVsChDB$' ./indexer >/dev/null
	cat "$out"
done
