#!/usr/bin/env bash
# make run: the all-in-one pipeline on the bundled sample (deploy/sample),
# then the answers to the named queries from ClickHouse (embedded chDB), and
# the policy story through the policy API (auditpipe request …): the access
# request the sample's first operator worked under, its audit log report,
# its revocation, its history and its lifecycle events; then the
# scheduler's: a recurring security-update job, its upcoming executions, a
# run-now and its work request.
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
#
# deploy/sample/policy.yaml seeds the policy service: a control that
# pre-approves INFRA_DIAG on the sample's cell, and the first operator's
# request for it, auto-approved, whose grant is the login user of the
# sample (830916…). The second operator keeps a static grant (--grant).

"$bin" all-in-one --data "$data" --audit-log "$data/audit.log" --flush-interval 2s \
	--layer CELL --host cell01.example.com \
	--passwd deploy/sample/passwd --group deploy/sample/group \
	--policy-seed deploy/sample/policy.yaml \
	--grant 5f1c0e9d2a7b4c3e8d6f0a1b2c3d4e5f=ocid1.opctlaccessrequest.oc1..req2 \
	--retention-days 0 --http "127.0.0.1:$port" 2>"$data/all-in-one.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT

q() { "$bin" query --server "$url" --token-file "$data/admin.token" "$@"; }

# The sample holds 18 audited events; 17 are emitted: the automation
# user's are not audited, and the first operator's request audits
# commands (COMMAND_AUDIT), not keystrokes.
want=17
for _ in $(seq 1 120); do
	n=$(q --output csv "SELECT count() FROM audit_events WHERE event != 'chain'" 2>/dev/null | tail -n 1 || true)
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
q --all
echo

api() { "$bin" request "$@" --server "${url%/}" --token-file "$data/admin.token"; }
login=830916abb78e4157b9e45b641e34fcf6
req=$(q --output csv "SELECT any(req_auth_id) FROM audit_events WHERE loginid = '$login'" | tail -n 1 | tr -d '"')
echo "== The access request of login user $login (seeded from deploy/sample/policy.yaml; auditpipe request show):"
api show "$req"
echo
echo "== Its audit log report (auditpipe request report, from ClickHouse):"
echo
"$bin" request report "$req" --server "$url" --token-file "$data/admin.token"
echo
echo "== Revoked (auditpipe request revoke):"
api revoke "$req" --comment "diagnostics done" | grep -E '^(id|lifecycle_state|closure_comment)' || true
echo
lifecycle="SELECT time, kind, actor, state_from, state_to FROM lifecycle_events WHERE object_id = '$req' ORDER BY kafka_offset"
for _ in $(seq 1 30); do
	q --output csv "$lifecycle" 2>/dev/null | grep -q access_request.revoked && break
	sleep 0.5
done
echo "== Its history (auditpipe request history), and its lifecycle events as the pipeline delivered them to ClickHouse:"
api history "$req"
echo
q "$lifecycle"
echo
# The scheduler (auditpipe job|workrequest|instance): a recurring
# security-update job on the all-in-one's host. The all-in-one runs no
# host agent (target host does), so nothing answers its work requests:
# they are dispatched (IN_PROGRESS, the signed RUN on opctl.dispatch.v1)
# and wait for the agent's report until their timeout (--timeout 5:
# FAILED with code TIMEOUT five minutes after the dispatch).
sched() { "$bin" "$@" --server "${url%/}" --token-file "$data/admin.token"; }
compartment=ocid1.compartment.oc1..sample
sched instance create --id cell01 --host cell01.example.com --compartment "$compartment" >/dev/null
first=$(date -u -d 'tomorrow 02:00' +%Y-%m-%dT%H:%M:%SZ)
job=$(sched job create --name "nightly security updates" --compartment "$compartment" --first "$first" \
	--every 1 --unit DAY --operation UPDATEALL --update-type SECURITY --instance cell01 \
	--max-concurrency 1 --timeout 5 --output json | sed -n 's/^  "id": "\(.*\)",$/\1/p')
echo "== A recurring security-update job (auditpipe job create … --every 1 --unit DAY --update-type SECURITY), and its next executions (auditpipe job upcoming):"
sched job list
echo
sched job upcoming "$job" --count 3
echo
echo "== Run now (auditpipe job run-now): its work request, dispatched to cell01's agent (auditpipe workrequest list, logs):"
sched job run-now "$job" | grep -E '^(id|trigger|targets|state)\b' || true
sched workrequest list --job "$job"
wr=$(sched workrequest list --job "$job" --output json | sed -n 's/^    "id": "\(.*\)",$/\1/p' | head -n 1)
echo
sched workrequest logs "$wr"
echo
echo "(no host agent in the all-in-one: the work request stays IN_PROGRESS until its timeout, then FAILED/TIMEOUT;"
echo " 'auditpipe workrequest cancel $wr' sends a signed CANCEL)"
wrsql="SELECT time, kind, state_from, state_to FROM lifecycle_events WHERE object_type = 'work_request' ORDER BY kafka_offset"
for _ in $(seq 1 30); do
	q --output csv "$wrsql" 2>/dev/null | grep -q work_request.dispatched && break
	sleep 0.5
done
echo "== The work request's lifecycle events, as the pipeline delivered them to ClickHouse:"
q "$wrsql"
echo
echo "Try: $bin query --embedded $data/chdb \"SELECT time, loginid, title FROM audit_events WHERE event = 'command' ORDER BY ts\""
echo "(the all-in-one stops when this script ends; its store stays: $bin query --embedded $data/chdb --all"
echo " or run it yourself with: $bin all-in-one --data DIR --audit-log FILE)"
