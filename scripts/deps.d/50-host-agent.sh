#!/usr/bin/env bash
# Installs what the host agent's live tests drive (agent/): sudo (visudo -c
# checks every sudoers fragment, sudo -l shows it), auditd for auditctl
# (the agent's audit rules; Debian's 3.0.9, its daemon is not started by
# the tests) and the PAM modules (pam_tty_audit for keystroke grants).
# auditd also brings ausearch, the reference the collector's raw_data is
# compared with (collector/ausearch_diff_test.go, testenv dependency
# "ausearch"). Idempotent.
set -euo pipefail
. "$(dirname "$0")/../lib/apt.sh"

apt_install sudo auditd libpam-modules
need_cmds visudo auditctl ausearch
