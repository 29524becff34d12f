#!/usr/bin/env bash
# Creates the Python virtual environment that the query endpoint's client
# tests use (queryapi: clickhouse-connect against the endpoint) in
# "$AUDITPIPE_CACHE/venv", with clickhouse-connect from PyPI at the pinned
# version. Idempotent: does nothing when the venv holds that version.
set -euo pipefail
: "${AUDITPIPE_CACHE:=$HOME/.cache/auditpipe}"
version="1.12.0"
dest="$AUDITPIPE_CACHE/venv"
stamp="$dest/AUDITPIPE_VERSION"

if [ -x "$dest/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "clickhouse-connect==$version" ]; then
	exit 0
fi
py="$(command -v python3.11 || command -v python3 || true)"
if [ -z "$py" ]; then
	echo "deps: venv: python3 not found; the clickhouse-connect test will be skipped" >&2
	exit 0
fi
echo "deps: venv: creating $dest with clickhouse-connect==$version" >&2
mkdir -p "$AUDITPIPE_CACHE"
# The stamp is written last: an interrupted run leaves no stamp and is redone.
rm -rf "$dest"
"$py" -m venv "$dest"
"$dest/bin/python" -m pip install --quiet --disable-pip-version-check "clickhouse-connect==$version"
echo "clickhouse-connect==$version" >"$stamp"
echo "deps: venv: installed $dest" >&2
