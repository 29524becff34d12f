#!/usr/bin/env bash
# Installs systemd-analyze (Debian's systemd package), which the deploy
# tests run on deploy/systemd (`systemd-analyze verify` and `security
# --offline` against a private root; deploy/kit_test.go). Nothing is
# started: the tests need the tool, not systemd as the init system.
# Idempotent.
set -euo pipefail
. "$(dirname "$0")/../lib/apt.sh"

apt_install systemd
need_cmds systemd-analyze
