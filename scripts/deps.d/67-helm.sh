#!/usr/bin/env bash
# Builds helm (v3.22.0, Apache-2.0) from the Go module proxy into
# $AUDITPIPE_CACHE/helm/bin/helm, for the deploy tests (`helm lint`,
# `helm template` on deploy/helm/auditpipe: deploy/helm_test.go). Not in
# the main go.mod: `go install module@version` builds it in a module of its
# own. Idempotent: does nothing when the pinned version is there.
set -euo pipefail
: "${AUDITPIPE_CACHE:=$HOME/.cache/auditpipe}"
version="v3.22.0"
dest="$AUDITPIPE_CACHE/helm"
stamp="$dest/.version"

if [ -x "$dest/bin/helm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
	exit 0
fi
echo "deps: building helm $version into $dest (a few minutes, once)" >&2
mkdir -p "$dest"
rm -rf "$dest/bin.new"
GOBIN="$dest/bin.new" GOFLAGS=-buildvcs=false nice go install "helm.sh/helm/v3/cmd/helm@$version"
"$dest/bin.new/helm" version --short >/dev/null ||
	{ echo "deps: the built helm does not run" >&2; exit 1; }
rm -rf "$dest/bin"
mv "$dest/bin.new" "$dest/bin"
echo "$version" >"$stamp"
