#!/usr/bin/env bash
# Installs what auditpipe needs on a fresh machine, idempotently: Go modules,
# then every installer in scripts/deps.d (chDB, rsyslog, …) in name order.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${AUDITPIPE_CACHE:=$HOME/.cache/auditpipe}"
export AUDITPIPE_CACHE
mkdir -p "$AUDITPIPE_CACHE"
# One installer at a time: two at once (make mutate, which runs deps, beside
# a make deps) removed each other's half-built helm.
exec 9>"$AUDITPIPE_CACHE/.deps.lock"
flock 9
go mod download
for f in scripts/deps.d/*.sh; do
	[ -e "$f" ] || continue
	bash "$f"
done
