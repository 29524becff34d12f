#!/usr/bin/env bash
# Installs OpenSSH's server (Debian's openssh-server) for the live operator
# session tests (internal/sshdtest): they start their own sshd with their
# own config on a loopback port. The system's ssh service is neither
# enabled nor started: policy-rc.d refuses every start while the package
# installs. Idempotent: does nothing when the package is installed.
set -euo pipefail
. "$(dirname "$0")/../lib/apt.sh"

if [ -z "$(apt_missing openssh-server)" ]; then
	exit 0
fi

# Refuse service starts during the install (invoke-rc.d exit 101), unless a
# policy is already in place.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
	as_root chmod 755 "$policy"
	added_policy=1
fi
cleanup() {
	if [ "$added_policy" = 1 ]; then
		as_root rm -f "$policy"
	fi
}
trap cleanup EXIT
apt_install openssh-server
# Not enabled at boot either (systemd hosts; a no-op elsewhere).
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	as_root systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
fi
need_cmds sshd
