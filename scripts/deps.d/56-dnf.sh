#!/usr/bin/env bash
# Installs what the dnf adapter's tests drive (agent/pkgmgr): dnf runs
# against a private --installroot the test builds, rpmbuild (rpm) builds
# its packages, createrepo_c and modifyrepo_c (createrepo-c) index its
# local repository and add the updateinfo. Idempotent.
set -euo pipefail
. "$(dirname "$0")/../lib/apt.sh"

apt_install dnf rpm createrepo-c
need_cmds dnf rpm rpmbuild createrepo_c modifyrepo_c
