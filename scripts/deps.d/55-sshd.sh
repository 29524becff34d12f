#!/usr/bin/env bash
# Installs OpenSSH's server (Debian's openssh-server) for the live operator
# session tests (internal/sshdtest): they start their own sshd with their
# own config on a loopback port. The system's ssh service is neither
# enabled nor started: policy-rc.d refuses every start while the package
# installs. Idempotent: does nothing when the package is installed.
set -euo pipefail

if dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q 'install ok installed'; then
	exit 0
fi

echo "deps: installing openssh-server"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# Refuse service starts during the install (invoke-rc.d exit 101), unless a
# policy is already in place.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
	"${sudo[@]}" chmod 755 "$policy"
	added_policy=1
fi
cleanup() {
	if [ "$added_policy" = 1 ]; then
		"${sudo[@]}" rm -f "$policy"
	fi
}
trap cleanup EXIT
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends openssh-server
# Not enabled at boot either (systemd hosts; a no-op elsewhere).
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	"${sudo[@]}" systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
fi
[ -x /usr/sbin/sshd ] || { echo "deps: /usr/sbin/sshd not found after install" >&2; exit 1; }
