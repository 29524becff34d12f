#!/usr/bin/env bash
# Installs Debian's Chromium for the console's browser tests (console/,
# driven headless over the DevTools protocol by chromedp). Idempotent: does
# nothing when the package is installed.
set -euo pipefail
. "$(dirname "$0")/../lib/apt.sh"

if [ -z "$(apt_missing chromium)" ]; then
	exit 0
fi
apt_install chromium
need_cmds chromium
