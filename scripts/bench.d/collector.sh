#!/usr/bin/env bash
# Collector decode path (parse, assemble, build, encode JSON) against
# go-libaudit's stock path (auparse.ParseLogLine + its Reassembler +
# aucoalesce.CoalesceMessages + json.Marshal) on the same corpus, one core,
# in alternating rounds of one run; the benchmark computes the median of
# the rounds' ratios (records per CPU second), and this script fails when
# it is below BENCH_MIN_RATIO (default 10). Figures go to bench/README.md
# ("Collector").
set -euo pipefail
cd "$(dirname "$0")/../.."
min=${BENCH_MIN_RATIO:-10}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
AUDITPIPE_BENCH_ROUNDS="${AUDITPIPE_BENCH_ROUNDS:-7}" \
	go test ./collector/ -run '^$' -bench '^BenchmarkDecoderVsStock$' -benchtime=1x -count="${BENCH_COUNT:-1}" -cpu 1 -timeout 20m -v | tee "$out"
awk -v min="$min" '
	/^BenchmarkDecoderVsStock/ {
		for (i = 4; i <= NF; i++) if ($i == "auditpipe_x_stock") {
			n++
			ok = ($(i - 1) + 0 >= min + 0)
			printf "collector bench: %.1f× go-libaudit (target >= %s×)%s\n", $(i - 1), min, ok ? "" : "  BELOW TARGET"
			if (!ok) bad++
		}
	}
	END {
		if (n == 0) { print "collector bench: no ratio in the benchmark output" > "/dev/stderr"; exit 2 }
		exit bad > 0
	}' "$out"
