#!/usr/bin/env bash
# Installs lintian, Debian's package checker, which the deploy tests run on
# the .deb that scripts/deb.sh builds (deploy/deb_test.go). Idempotent.
set -euo pipefail
. "$(dirname "$0")/../lib/apt.sh"

apt_install lintian
need_cmds lintian
