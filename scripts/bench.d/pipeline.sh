#!/usr/bin/env bash
# The whole pipeline under load (make bench-pipeline; see bench/README.md,
# "Pipeline"): bench/pipeline's benchmarks run the built binary on traffic
# from internal/auditgen and print their figures beside the targets.
#
#   rate       the all-in-one at AUDITPIPE_BENCH_RATE contract events/s
#              (default 50000) for AUDITPIPE_BENCH_DURATION (60s), with a
#              forwarder to rsyslog (AUDITPIPE_BENCH_SIEM=none: without)
#   drain      the all-in-one draining a pre-written log of
#              AUDITPIPE_BENCH_EVENTS contract events (330000)
#   split      the rate run with the collector, indexer and forwarder
#              targets as processes against a real Apache Kafka
#   collector  `auditpipe parse` as a process against go-libaudit's stock
#              path on the same corpus
#
# BENCH_PIPELINE="rate drain split collector" chooses (default: all four,
# in that order). AUDITPIPE_BENCH_PERF=1 adds a perf profile of the
# all-in-one (written to AUDITPIPE_BENCH_PERF_DIR, default bench/out).
# AUDITPIPE_BENCH_CONFIG=FILE passes --config FILE to the all-in-one (for
# example other indexer batch sizes).
# The script fails when an event is lost (a correctness failure); a
# missed speed target is printed, and fails the script only with
# BENCH_STRICT=1 (the machine is shared: see the load averages).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${AUDITPIPE_CACHE:=$HOME/.cache/auditpipe}"
export AUDITPIPE_CACHE
runs=${BENCH_PIPELINE:-rate drain split collector}
outdir=$(realpath -m "${AUDITPIPE_BENCH_PERF_DIR:-bench/out}")
mkdir -p "$outdir"
export AUDITPIPE_BENCH_PERF_DIR="$outdir"
echo "== pipeline: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/^Mem/ {print $2}') GiB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
go build -o "$outdir/auditpipe" ./cmd/auditpipe
export AUDITPIPE_BIN="$outdir/auditpipe"
status=0
for run in $runs; do
	out="$outdir/pipeline-$run.txt"
	log="$outdir/pipeline-$run.log"
	case $run in
	rate) bench='^BenchmarkAllInOne$' ;;
	drain) bench='^BenchmarkAllInOne$'; export AUDITPIPE_BENCH_RATE=0 ;;
	split) bench='^BenchmarkSplit$' ;;
	collector) bench='^BenchmarkCollectorProcess$' ;;
	*) echo "unknown run $run" >&2; exit 2 ;;
	esac
	echo "== $run"
	if ! AUDITPIPE_BENCH_OUT="$out" go test -count=1 -timeout 60m -run '^$' -bench "$bench" -benchtime=1x ./bench/pipeline >"$log" 2>&1; then
		echo "pipeline bench $run failed; its log: $log" >&2
		grep -E -- '--- FAIL|harness_test|allinone_test|collector_test' "$log" | head -20 >&2 || true
		status=1
	fi
	unset AUDITPIPE_BENCH_RATE
	[ -f "$out" ] && cat "$out"
done
if [ "${BENCH_STRICT:-0}" = 1 ] && grep -h '^target: .*MISSED' "$outdir"/pipeline-*.txt >/dev/null 2>&1; then
	status=1
fi
exit $status
