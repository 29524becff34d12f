#!/usr/bin/env bash
# SIEM throughput: `auditpipe forward` (the CLI subcommand) and the
# forwarder module against a raw TLS writer of the same RFC 5425 frames, to
# the same syslog-ng and to the same rsyslog, in alternating rounds of one
# run (raw, forward, forwarder, ...), unbound: no rate limit, senders and
# receivers share the CPUs (AUDITPIPE_BENCH_BIND=1 binds the receivers to
# the last CPU and the senders to the first). The benchmark computes each
# ratio (the median over the rounds of each round's sender/raw); this
# script fails when one is below BENCH_MIN_PERCENT (default 90). Figures go
# to bench/README.md ("Forwarder").
set -euo pipefail
cd "$(dirname "$0")/../.."
min=${BENCH_MIN_PERCENT:-90}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
AUDITPIPE_BENCH_ROUNDS="${AUDITPIPE_BENCH_ROUNDS:-9}" \
	go test ./forwarder/ -run '^$' -bench '^BenchmarkSIEMThroughput$' -benchtime=1x -count="${BENCH_COUNT:-1}" -timeout 30m -v | tee "$out"
# The result line: "BenchmarkSIEMThroughput-N 1 NS ns/op V1 UNIT1 V2 UNIT2 ...";
# the ratios are the units ending in _%_of_raw.
awk -v min="$min" '
	/^BenchmarkSIEMThroughput/ {
		for (i = 4; i <= NF; i++) if ($i ~ /_%_of_raw$/) {
			n++
			ok = ($(i - 1) + 0 >= min + 0)
			printf "forwarder bench: %s %.1f %% (target >= %s %%)%s\n", $i, $(i - 1), min, ok ? "" : "  BELOW TARGET"
			if (!ok) bad++
		}
	}
	END {
		if (n == 0) { print "forwarder bench: no ratio in the benchmark output" > "/dev/stderr"; exit 2 }
		exit bad > 0
	}' "$out"
