#!/usr/bin/env bash
# Installs what the package-manager adapter's tests drive (agent/pkgmgr):
# apt-get and dpkg run against a private root the test builds, dpkg-deb
# builds its packages and dpkg-scanpackages (dpkg-dev) indexes its local
# repository. Idempotent.
set -euo pipefail
. "$(dirname "$0")/../lib/apt.sh"

apt_install apt dpkg dpkg-dev
need_cmds apt-get dpkg dpkg-deb dpkg-scanpackages
