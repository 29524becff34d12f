#!/usr/bin/env bash
# make bench: every benchmark against its baseline, in scripts/bench.d.
set -euo pipefail
cd "$(dirname "$0")/.."
for f in scripts/bench.d/*.sh; do
	echo "== $f"
	bash "$f"
done
