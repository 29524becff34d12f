#!/usr/bin/env bash
# Collector decode path (parse, assemble, build, encode JSON) against
# go-libaudit's stock path (auparse.ParseLogLine + its Reassembler +
# aucoalesce.CoalesceMessages + json.Marshal) on the same corpus, one core,
# same run. Figures go to bench/README.md ("Collector").
set -euo pipefail
cd "$(dirname "$0")/../.."
go test ./collector/ -run '^$' -bench '^Benchmark(Decoder|StockLibaudit)$' -benchtime=5x -count="${BENCH_COUNT:-3}" -cpu 1 -timeout 20m
