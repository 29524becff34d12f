#!/usr/bin/env bash
# Unpacks Debian's prometheus package (Prometheus 2.42 and promtool) into
# $AUDITPIPE_CACHE/prometheus, without installing it: the deploy tests run
# `promtool check config|rules` and `promtool test rules` on
# deploy/prometheus (deploy/kit_test.go). Installing the package would
# create a system user and, where an init system runs, start a server;
# the tests need neither. Both binaries are static Go programs: nothing
# else is unpacked. Idempotent: does nothing when the unpacked version is
# the candidate one.
set -euo pipefail
. "$(dirname "$0")/../lib/apt.sh"

: "${AUDITPIPE_CACHE:=$HOME/.cache/auditpipe}"
dest="$AUDITPIPE_CACHE/prometheus"
stamp="$dest/.version"

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }

ver=$(candidate prometheus)
if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
	as_root apt-get update -qq
	ver=$(candidate prometheus)
fi
if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
	echo "deps: prometheus is not in the package lists" >&2
	exit 1
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$ver" ] && [ -x "$dest/usr/bin/promtool" ]; then
	exit 0
fi

echo "deps: unpacking prometheus $ver into $dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# As root, apt hands the download to _apt: give it a directory it may write.
chmod 0777 "$work"
(cd "$work" && apt-get download -qq prometheus)
rm -rf "$dest.new"
mkdir -p "$dest.new"
dpkg-deb -x "$work"/prometheus_*.deb "$dest.new"
# Check that it runs from there before it replaces what was there.
"$dest.new/usr/bin/promtool" --version >/dev/null 2>&1 ||
	{ echo "deps: the unpacked promtool does not run" >&2; exit 1; }
rm -rf "$dest"
mv "$dest.new" "$dest"
echo "$ver" >"$stamp"
