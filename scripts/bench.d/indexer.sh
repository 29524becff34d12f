#!/usr/bin/env bash
# Indexer throughput: rows/s through the indexer (kfake → consumer group →
# decode → chDB → commit) against chDB's own INSERT … FORMAT JSONEachRow of
# the same rows, in alternating rounds of one run; the test computes the
# median of the rounds' ratios, and this script fails when it is below
# BENCH_MIN_PERCENT (default 70). See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${AUDITPIPE_CACHE:=$HOME/.cache/auditpipe}"
export AUDITPIPE_CACHE AUDITPIPE_BENCH=1
min=${BENCH_MIN_PERCENT:-70}
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
# Against the broker as the unit tests run it, or (AUDITPIPE_BENCH_KAFKA=secure)
# as the all-in-one runs it: TLS, SASL/SCRAM-SHA-512, ACLs, the indexer's own
# principal.
log="$(mktemp)"
trap 'rm -f "$out" "$log"' EXIT
if ! AUDITPIPE_BENCH_OUT="$out" go test -count=1 -timeout 30m -run '^TestThroughputIndexerVsChDB$' ./indexer >"$log" 2>&1; then
	cat "$log" >&2 # a failed run says why
	exit 1
fi
echo "== indexer (kafka: ${AUDITPIPE_BENCH_KAFKA:-plaintext})"
cat "$out"
awk -v min="$min" '
	/^ratio: / { found = 1; v = $2; sub(/%$/, "", v); if (v + 0 < min + 0) { print "indexer bench: " v " % is below the target of " min " %"; bad = 1 } }
	END { if (!found) { print "indexer bench: no ratio in the output" > "/dev/stderr"; exit 2 } exit bad }' "$out"
