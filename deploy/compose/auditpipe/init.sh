#!/usr/bin/env bash
# Makes the compose deployment's secrets in DIR, once (an existing file is
# kept): admin.token and metrics.token (random bearer tokens), tokens.yaml
# (their SHA-256 with roles admin and metrics: the tokens file every
# auditpipe service reads), policy.key and grants.pub (the policy service's
# signing key; the collector trusts grants signed with it). Files are 0640
# but the private key, 0600 (auditpipe refuses a key others may read); the
# services run as root in their containers, as this does.
set -euo pipefail
dir=${1:?usage: init.sh DIR}
bin=${AUDITPIPE:-auditpipe}
mkdir -p "$dir"
umask 027
for name in admin metrics; do
	[ -s "$dir/$name.token" ] || od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/$name.token"
done
if [ ! -s "$dir/tokens.yaml" ]; then
	{
		echo "tokens:"
		for name in admin metrics; do
			printf '  - name: compose-%s\n    role: %s\n    sha256: %s\n' "$name" "$name" \
				"$(tr -d '\n' <"$dir/$name.token" | sha256sum | cut -d' ' -f1)"
		done
	} >"$dir/tokens.yaml.new"
	mv "$dir/tokens.yaml.new" "$dir/tokens.yaml"
fi
[ -s "$dir/policy.key" ] || "$bin" grant keygen --key "$dir/policy.key" --pub "$dir/grants.pub"
chmod 0640 "$dir"/*
chmod 0600 "$dir/policy.key"
echo "auditpipe-init: secrets in $dir"
