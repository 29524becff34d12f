#!/usr/bin/env bash
# make run: the all-in-one pipeline on the bundled sample (deploy/sample),
# then the answers to the named queries and an access request's audit log
# report, from ClickHouse (embedded chDB).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${AUDITPIPE_CACHE:=$HOME/.cache/auditpipe}"
bin=bin/auditpipe
data=data/run
port=${AUDITPIPE_HTTP_PORT:-9464}
url="http://127.0.0.1:$port/"
rm -rf "$data"
mkdir -p "$data"
cp deploy/sample/audit.log "$data/audit.log"
# The sample's dates are fixed: --retention-days 0 so that a TTL never
# removes them, whatever the date of the run.

"$bin" all-in-one --data "$data" --audit-log "$data/audit.log" --flush-interval 2s \
	--layer CELL --host cell01.example.com \
	--passwd deploy/sample/passwd --group deploy/sample/group \
	--grant 830916abb78e4157b9e45b641e34fcf6=ocid1.opctlaccessrequest.oc1..req1 \
	--grant 5f1c0e9d2a7b4c3e8d6f0a1b2c3d4e5f=ocid1.opctlaccessrequest.oc1..req2 \
	--retention-days 0 --http "127.0.0.1:$port" 2>"$data/all-in-one.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT

# The sample holds 18 audited events (the automation user's are not audited).
want=18
for _ in $(seq 1 120); do
	n=$("$bin" query --server "$url" --token-file "$data/admin.token" --output csv "SELECT count() FROM audit_events WHERE event != 'chain'" 2>/dev/null | tail -n 1 || true)
	[ "$n" = "$want" ] && break
	if ! kill -0 $pid 2>/dev/null; then
		echo "all-in-one stopped; its log:" >&2
		cat "$data/all-in-one.log" >&2
		exit 1
	fi
	sleep 1
done
if [ "$n" != "$want" ]; then
	echo "timed out: $n of $want events indexed; log in $data/all-in-one.log" >&2
	exit 1
fi
echo "== $want events from deploy/sample/audit.log are in ClickHouse (embedded chDB). The named queries:"
echo
"$bin" query --server "$url" --token-file "$data/admin.token" --all
echo
echo "== The audit log report of access request ocid1.opctlaccessrequest.oc1..req1 (auditpipe request report):"
echo
"$bin" request report ocid1.opctlaccessrequest.oc1..req1 --keystrokes --server "$url" --token-file "$data/admin.token"
echo
echo "Try: $bin query --embedded $data/chdb \"SELECT time, loginid, title FROM audit_events WHERE event = 'command' ORDER BY ts\""
echo "(the all-in-one stops when this script ends; its store stays: $bin query --embedded $data/chdb --all"
echo " or run it yourself with: $bin all-in-one --data DIR --audit-log FILE)"
