#!/usr/bin/env bash
# Installs what auditpipe needs on a fresh machine, idempotently: Go modules,
# then every installer in scripts/deps.d (chDB, rsyslog, …) in name order.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${AUDITPIPE_CACHE:=$HOME/.cache/auditpipe}"
export AUDITPIPE_CACHE
mkdir -p "$AUDITPIPE_CACHE"
go mod download
for f in scripts/deps.d/*.sh; do
	[ -e "$f" ] || continue
	bash "$f"
done
