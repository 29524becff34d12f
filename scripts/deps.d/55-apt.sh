#!/usr/bin/env bash
# Installs what the package-manager adapter's tests drive (agent/pkgmgr):
# apt-get and dpkg run against a private root the test builds, dpkg-deb
# builds its packages and dpkg-scanpackages (dpkg-dev) indexes its local
# repository. Idempotent: does nothing when every package is installed.
set -euo pipefail

pkgs=(apt dpkg dpkg-dev)
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
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
for c in apt-get dpkg dpkg-deb dpkg-scanpackages; do
	command -v "$c" >/dev/null || { echo "deps: $c not found after install" >&2; exit 1; }
done
