#!/usr/bin/env bash
# Makes the compose deployment's secrets, once (an existing file is kept).
# In DIR, which every auditpipe service and Prometheus mount: tokens.yaml
# (the SHA-256 of the admin and metrics tokens with their roles: the
# tokens file every auditpipe service reads), metrics.token (Prometheus'
# bearer token) and grants.pub (the collector trusts grants signed with
# its key). In PRIVATE, which only the policy service mounts: admin.token
# and policy.key, the policy service's signing key (whoever reads it signs
# grants that every collector and agent trusts). Files are 0640 but the
# private key, 0600 (auditpipe refuses a key others may read); the
# auditpipe services run as root in their containers, as this does.
# Prometheus runs as its image's user (nobody, 65534): metrics.token is
# that user's, 0400 (METRICS_TOKEN_OWNER, uid:gid, default 65534:65534).
set -euo pipefail
dir=${1:?usage: init.sh DIR PRIVATE}
private=${2:?usage: init.sh DIR PRIVATE}
bin=${AUDITPIPE:-auditpipe}
metrics_owner=${METRICS_TOKEN_OWNER:-65534:65534}
mkdir -p "$dir" "$private"
umask 027
# A deployment made before they were apart: move the private ones.
for f in admin.token policy.key; do
	if [ -e "$dir/$f" ] && [ ! -e "$private/$f" ]; then mv "$dir/$f" "$private/$f"; fi
done
for name in admin metrics; do
	d=$dir
	[ "$name" = admin ] && d=$private
	[ -s "$d/$name.token" ] || od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$d/$name.token"
done
if [ ! -s "$dir/tokens.yaml" ]; then
	{
		echo "tokens:"
		for tok in "admin:$private" "metrics:$dir"; do
			name=${tok%%:*}
			printf '  - name: compose-%s\n    role: %s\n    sha256: %s\n' "$name" "$name" \
				"$(tr -d '\n' <"${tok#*:}/$name.token" | sha256sum | cut -d' ' -f1)"
		done
	} >"$dir/tokens.yaml.new"
	mv "$dir/tokens.yaml.new" "$dir/tokens.yaml"
fi
[ -s "$private/policy.key" ] || "$bin" grant keygen --key "$private/policy.key" --pub "$dir/grants.pub"
chmod 0640 "$dir"/* "$private"/*
chmod 0600 "$private/policy.key"
chown "$metrics_owner" "$dir/metrics.token"
chmod 0400 "$dir/metrics.token"
echo "auditpipe-init: secrets in $dir, the policy service's in $private"
