# Sourced by the installers in scripts/deps.d: the one way they install
# Debian packages. Defines
#   as_root CMD…          runs CMD as root (through sudo when not root)
#   apt_missing PKG…      prints the packages not installed, one a line
#   apt_install PKG…      installs the missing ones (apt-get update once,
#                         --no-install-recommends: each installer names
#                         all it wants); does nothing when none is missing
#   need_cmds CMD…        fails unless each command is on PATH or in
#                         /usr/sbin or /sbin
# Installers stay idempotent by calling apt_install, which checks first.

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	else
		sudo "$@"
	fi
}

apt_missing() {
	local p
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			printf '%s\n' "$p"
		fi
	done
}

apt_updated=0
apt_install() {
	local missing
	mapfile -t missing < <(apt_missing "$@")
	if [ ${#missing[@]} -eq 0 ]; then
		return 0
	fi
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if [ "$apt_updated" = 0 ]; then
		as_root apt-get update -qq
		apt_updated=1
	fi
	as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

need_cmds() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || [ -x "/sbin/$c" ] ||
			{ echo "deps: $c not found after install" >&2; return 1; }
	done
}
