#!/usr/bin/env bash
# Unpacks syslog-ng (Debian's syslog-ng-core and the libraries it needs that
# the machine lacks) into $AUDITPIPE_CACHE/syslog-ng, without installing it:
# the second real TLS syslog receiver (RFC 5425) of the forwarder's interop
# tests. Debian's syslog-ng-core conflicts with rsyslog as a package, so it
# is fetched with `apt-get download` and unpacked with `dpkg-deb -x`; the
# tests run it from there with LD_LIBRARY_PATH (internal/siemtest/syslogng.go).
# Idempotent: does nothing when the unpacked version is the candidate one.
set -euo pipefail
. "$(dirname "$0")/../lib/apt.sh"

: "${AUDITPIPE_CACHE:=$HOME/.cache/auditpipe}"
dest="$AUDITPIPE_CACHE/syslog-ng"
stamp="$dest/.version"

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }

ver=$(candidate syslog-ng-core)
if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
	as_root apt-get update -qq
	ver=$(candidate syslog-ng-core)
fi
if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
	echo "deps: syslog-ng-core is not in the package lists" >&2
	exit 1
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$ver" ] && [ -x "$dest/usr/sbin/syslog-ng" ]; then
	exit 0
fi

echo "deps: unpacking syslog-ng-core $ver into $dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The libraries syslog-ng-core depends on that are not installed here
# (libivykis0, libnet1, … on a stock Debian): unpacked beside it.
pkgs=(syslog-ng-core)
mapfile -t -O 1 pkgs < <(apt_missing $(apt-cache depends syslog-ng-core | awk '$1 == "Depends:" && $2 ~ /^lib/ {print $2}' | sort -u))
# As root, apt hands the download to _apt: give it a directory it may write.
chmod 0777 "$work"
(cd "$work" && apt-get download -qq "${pkgs[@]}")
rm -rf "$dest.new"
mkdir -p "$dest.new"
for deb in "$work"/*.deb; do
	dpkg-deb -x "$deb" "$dest.new"
done
# Check that it runs from there before it replaces what was there.
libs="$dest.new/usr/lib/syslog-ng:$dest.new/usr/lib/x86_64-linux-gnu:$dest.new/lib/x86_64-linux-gnu"
LD_LIBRARY_PATH="$libs" "$dest.new/usr/sbin/syslog-ng" --module-path="$dest.new/usr/lib/syslog-ng/3.38" --version >/dev/null ||
	{ echo "deps: the unpacked syslog-ng does not run" >&2; exit 1; }
rm -rf "$dest"
mv "$dest.new" "$dest"
echo "$ver" >"$stamp"
