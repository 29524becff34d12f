#!/usr/bin/env bash
# Installs PostgreSQL's server binaries (initdb, postgres) for the tests of
# the policy store and of leader election, which start clusters of their own
# in temporary directories (internal/pgtest): Debian's postgresql-15 (12,
# bookworm), or the release's default `postgresql` where there is no
# postgresql-15.
#
# Debian's package would also create a system cluster "main" on port 5432
# and start it. This script keeps it from being created: a drop-in of
# postgresql-common's createcluster.conf sets create_main_cluster = false
# before the install (and stays, so that a later install of another major
# version creates none either; remove
# /etc/postgresql-common/createcluster.d/50-auditpipe.conf for Debian's
# default). Should a cluster appear anyway (a postgresql-common that ignores
# the drop-in), it is stopped and dropped: nothing of PostgreSQL runs or is
# enabled to run at boot after this script, only its binaries are there.
# (Debian's postgresql.service umbrella unit stays as the package sets it;
# with no cluster it starts nothing.)
#
# Idempotent: does nothing when initdb and postgres of some version are in
# /usr/lib/postgresql/*/bin.
set -euo pipefail
. "$(dirname "$0")/../lib/apt.sh"

have_server() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then
			return 0
		fi
	done
	return 1
}

if have_server; then
	exit 0
fi

# Clusters that exist before (a removed but not purged install keeps its
# configuration): only a cluster this install creates is dropped.
clusters() {
	if command -v pg_lsclusters >/dev/null 2>&1; then
		pg_lsclusters -h 2>/dev/null | awk '{print $1 "/" $2}'
	fi
}
before="$(clusters)"

as_root mkdir -p /etc/postgresql-common/createcluster.d
printf '%s\n' \
	'# auditpipe (scripts/deps.d/50-postgres.sh): no system cluster on package install;' \
	'# the tests start clusters of their own.' \
	'create_main_cluster = false' |
	as_root tee /etc/postgresql-common/createcluster.d/50-auditpipe.conf >/dev/null

as_root apt-get update -qq
apt_updated=1
pkg=postgresql-15
if ! apt-cache show --no-all-versions "$pkg" >/dev/null 2>&1; then
	pkg=postgresql
fi
# Server binaries only, no system cluster; no recommends (sysstat, for one).
apt_install "$pkg"

for c in $(clusters); do
	if ! grep -qxF "$c" <<<"$before"; then
		echo "deps: dropping the cluster $c that the install created" >&2
		as_root pg_dropcluster --stop "${c%/*}" "${c#*/}"
	fi
done

if ! have_server; then
	echo "deps: initdb and postgres not found in /usr/lib/postgresql/*/bin after installing $pkg" >&2
	exit 1
fi
