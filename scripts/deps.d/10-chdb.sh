#!/usr/bin/env bash
# Installs libchdb.so (embedded ClickHouse, used by the indexer's embedded
# engine and the all-in-one) into "$AUDITPIPE_CACHE/chdb/libchdb.so" from the
# npm package that ships it. Idempotent: does nothing when the library of the
# pinned version is already there. About 178 MB to download, 566 MB unpacked.
set -euo pipefail
: "${AUDITPIPE_CACHE:=$HOME/.cache/auditpipe}"
pkg="@chdb/lib-linux-x64-gnu"
version="26.7.3-stable.1"
dest="$AUDITPIPE_CACHE/chdb"
stamp="$dest/VERSION"

if [ -f "$dest/libchdb.so" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
	exit 0
fi
case "$(uname -s)-$(uname -m)" in
Linux-x86_64) ;;
*)
	echo "deps: chdb: no $pkg build for $(uname -s)-$(uname -m); the embedded engine will be unavailable" >&2
	exit 0
	;;
esac
if ! command -v npm >/dev/null 2>&1; then
	echo "deps: chdb: npm not found; install Node.js/npm to fetch $pkg" >&2
	exit 1
fi

echo "deps: chdb: fetching $pkg@$version (about 178 MB)" >&2
mkdir -p "$dest"
tmp="$(mktemp -d "$dest/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp"
lib="$(find "$tmp/package" -name 'libchdb.so' -type f | head -n 1)"
if [ -z "$lib" ]; then
	echo "deps: chdb: libchdb.so not found in $pkg@$version" >&2
	exit 1
fi
# Move into place atomically so a half-written library is never picked up.
mv -f "$lib" "$dest/libchdb.so.tmp"
mv -f "$dest/libchdb.so.tmp" "$dest/libchdb.so"
echo "$version" >"$stamp"
echo "deps: chdb: installed $dest/libchdb.so" >&2
