#!/usr/bin/env bash
# Installs rsyslog with its GnuTLS network stream driver: the real TLS
# syslog receiver (RFC 5425) that the forwarder's tests start on a loopback
# port. Idempotent: does nothing when both packages are installed.
set -euo pipefail

pkgs=(rsyslog rsyslog-gnutls)
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
# --no-install-recommends: the tests run rsyslogd themselves; nothing else is wanted.
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
command -v rsyslogd >/dev/null || [ -x /usr/sbin/rsyslogd ] || { echo "deps: rsyslogd not found after install" >&2; exit 1; }
