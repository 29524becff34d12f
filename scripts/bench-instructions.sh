#!/usr/bin/env bash
# Instruction counts of one corpus pass, auditpipe's collector decode path
# against go-libaudit's stock path, under callgrind: steadier than
# wall-clock time on a shared machine. One pass = the difference between
# -benchtime=3x and 2x (the corpus and start-up cancel out). About 15 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(mktemp)"
trap 'rm -f "$bin"' EXIT
go test -c -o "$bin" ./collector
for b in Decoder StockLibaudit; do
	declare -A ir
	for n in 2 3; do
		ir[$n]=$(GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" \
			-test.run='^$' -test.bench="^Benchmark$b\$" -test.benchtime=${n}x -test.cpu=1 2>&1 |
			awk '/Collected/ {print $4}')
	done
	echo "$b: $(( (ir[3] - ir[2]) / 1000000 )) million instructions per pass"
done
