#!/usr/bin/env bash
# Installs what the host agent's live tests drive (agent/): sudo (visudo -c
# checks every sudoers fragment, sudo -l shows it), auditd for auditctl
# (the agent's audit rules; Debian's 3.0.9, its daemon is not started by
# the tests) and the PAM modules (pam_tty_audit for keystroke grants).
# auditd also brings ausearch, the reference the collector's raw_data is
# compared with (collector/ausearch_diff_test.go, testenv dependency
# "ausearch").
# Idempotent: does nothing when every package is installed.
set -euo pipefail

pkgs=(sudo auditd libpam-modules)
missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "deps: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# --no-install-recommends: the agent runs visudo, sudo and auditctl; nothing else is wanted.
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
for c in visudo auditctl ausearch; do
	command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || { echo "deps: $c not found after install" >&2; exit 1; }
done
