#!/usr/bin/env bash
# make run: the all-in-one pipeline on the bundled sample (deploy/sample),
# then the answers to the named queries from ClickHouse (embedded chDB), and
# the policy story through the policy API (auditpipe request …): the access
# request the sample's first operator worked under, its audit log report,
# its revocation, its history and its lifecycle events; then the
# scheduler's: a recurring security-update job, its upcoming executions, a
# run-now and its work request, run by a real host agent (auditpipe agent,
# agent.live off) for the sample's instance cell01 over a private apt root
# in the data directory, with the compliance report before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${AUDITPIPE_CACHE:=$HOME/.cache/auditpipe}"
bin=bin/auditpipe
data=data/run
port=${AUDITPIPE_HTTP_PORT:-9464}
kport=${AUDITPIPE_KAFKA_PORT:-9466}
aport=${AUDITPIPE_AGENT_HTTP_PORT:-9467}
url="http://127.0.0.1:$port/"
# A lock held for the run's life, and by the all-in-one (it inherits fd 9):
# an interrupted run whose all-in-one is still stopping holds it, and
# removing the data directory under that process would leave it stuck.
# Wait for it instead. The host agent and prepare-root run apt and dpkg,
# whose maintainer scripts may leave daemons behind: they get no fd 9
# (9>&-), or such a daemon would hold the lock for ever; the exit trap
# waits for the agent.
mkdir -p data
exec 9>data/run.lock
if ! flock -n 9; then
	echo "run: an earlier make run is still running or stopping; waiting for it (up to 60 s)" >&2
	if ! flock -w 60 9; then
		echo "run: it still holds data/run.lock; stop it (fuser -v data/run.lock shows it) and try again" >&2
		exit 1
	fi
fi
rm -rf "$data"
# Private from its creation (the all-in-one makes it 0700 too, but only
# once started): a local user who opened the log (who queried what) or the
# sample's audit log before that would read on through the open file.
(umask 077 && mkdir -p "$data")
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
	--retention-days 0 --http "127.0.0.1:$port" --kafka-listen "127.0.0.1:$kport" 2>"$data/all-in-one.log" &
pid=$!
apid=
trap 'for p in $apid $pid; do kill -TERM $p 2>/dev/null || true; wait $p 2>/dev/null || true; done' EXIT

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
# The scheduler (auditpipe job|workrequest|instance) and a host agent.
# The all-in-one runs no host agent, so run.sh starts one beside it: the
# sample's instance cell01 (auditpipe agent --config $data/agent.yaml),
# on the embedded broker as the agent principal (its password file and
# the broker's CA from the data directory), agent.live off: grants are
# rendered under $data/agent/plan and packages change only in a private
# apt root, $data/agent/pkgroot. Its repository is built here with
# dpkg-deb and dpkg-scanpackages: openssl 3.0.14-1, installed, and
# 3.0.15-1, which fixes CVE-2024-9143 by the security-tracker JSON
# written beside it.
agentdir=$PWD/$data/agent
repo=$agentdir/repo
mkdir -p "$repo"
for v in 3.0.14-1 3.0.15-1; do
	tree=$agentdir/build/openssl-$v
	mkdir -p "$tree/DEBIAN" "$tree/usr/share/openssl"
	chmod 0755 "$tree/DEBIAN"
	echo "$v" >"$tree/usr/share/openssl/VERSION"
	printf 'Package: openssl\nVersion: %s\nArchitecture: all\nMaintainer: auditpipe sample <sample@example.com>\nDescription: auditpipe sample package openssl\n' "$v" >"$tree/DEBIAN/control"
	dpkg-deb --root-owner-group --build "$tree" "$repo" >/dev/null
done
(cd "$repo" && dpkg-scanpackages --multiversion . /dev/null >Packages 2>/dev/null)
cat >"$agentdir/tracker.json" <<'EOF'
{"openssl": {"CVE-2024-9143": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "3.0.15-1"}}}}}
EOF
echo "== cell01's private apt root, for its host agent (auditpipe agent prepare-root):"
"$bin" agent prepare-root --root "$agentdir/pkgroot" --source "deb [trusted=yes] file:$repo ./" --install openssl=3.0.14-1 9>&-
compartment=ocid1.compartment.oc1..sample
cat >"$agentdir/agent.yaml" <<EOF
target: agent
server:
  http_addr: 127.0.0.1:$aport
  auth:
    open_metrics: true
kafka:
  brokers: [127.0.0.1:$kport]
  tls:
    enabled: true
    ca_file: $PWD/$data/kafka-tls/ca.crt
  sasl:
    mechanism: SCRAM-SHA-512
    username: agent
    password_file: $PWD/$data/kafka-credentials/agent.password
  topics:
    create: false
agent:
  live: false
  host: cell01.example.com
  root: $agentdir/plan
  grant_keys: [$PWD/$data/grants.pub]
  # The host's signing key: the all-in-one made it and enrolled it for
  # cell01.example.com in $data/host-keys at its first start (another
  # host's agent makes its own; auditpipe agent enroll).
  key_file: $PWD/$data/agent.key
  instance:
    id: cell01
    compartment_path: [$compartment]
  work:
    state_dir: $agentdir/work
    package_root: $agentdir/pkgroot
    release: bookworm
    security_tracker: $agentdir/tracker.json
    progress_interval: 500ms
EOF
# The instance first: the indexer binds each inventory to the host the
# policy knows its instance is (an inventory of an unknown instance is
# refused, inventory_unknown_instance).
sched() { "$bin" "$@" --server "${url%/}" --token-file "$data/admin.token"; }
sched instance create --id cell01 --host cell01.example.com --compartment "$compartment" >/dev/null
"$bin" agent --config "$agentdir/agent.yaml" 2>"$data/agent.log" 9>&- &
apid=$!

comp() { "$bin" report compliance --compartment "$compartment" --details --server "$url" --token-file "$data/admin.token"; }
for _ in $(seq 1 60); do
	comp 2>/dev/null | grep -q CVE-2024-9143 && break
	if ! kill -0 $apid 2>/dev/null; then
		echo "the agent stopped; its log:" >&2
		cat "$data/agent.log" >&2
		exit 1
	fi
	sleep 0.5
done
if ! comp 2>/dev/null | grep -q CVE-2024-9143; then
	echo "timed out: cell01's inventory is not in the compliance report; logs in $data/agent.log and $data/all-in-one.log" >&2
	exit 1
fi
echo "== The host agent of cell01 (auditpipe agent --config $data/agent/agent.yaml) reported its inventory; the compliance report (auditpipe report compliance --details):"
comp
echo
first=$(date -u -d 'tomorrow 02:00' +%Y-%m-%dT%H:%M:%SZ)
job=$(sched job create --name "nightly security updates" --compartment "$compartment" --first "$first" \
	--every 1 --unit DAY --operation UPDATEALL --update-type SECURITY --instance cell01 \
	--max-concurrency 1 --timeout 5 --output json | sed -n 's/^  "id": "\(.*\)",$/\1/p')
echo "== A recurring security-update job (auditpipe job create … --every 1 --unit DAY --update-type SECURITY), and its next executions (auditpipe job upcoming):"
sched job list
echo
sched job upcoming "$job" --count 3
echo
echo "== Run now (auditpipe job run-now): its work request, dispatched to cell01's agent, which runs apt-get in its private root (auditpipe workrequest list):"
sched job run-now "$job" | grep -E '^(id|trigger|targets|state)\b' || true
wr=
for _ in $(seq 1 120); do
	list=$(sched workrequest list --job "$job" 2>/dev/null || true)
	if echo "$list" | grep -qE 'SUCCEEDED|FAILED'; then
		wr=$(sched workrequest list --job "$job" --output json | sed -n 's/^    "id": "\(.*\)",$/\1/p' | head -n 1)
		break
	fi
	sleep 0.5
done
echo "$list"
if [ -z "$wr" ]; then
	echo "timed out: the work request did not finish; logs in $data/agent.log and $data/all-in-one.log" >&2
	exit 1
fi
echo
echo "== Its logs, as the agent reported them (auditpipe workrequest logs):"
sched workrequest logs "$wr"
echo
for _ in $(seq 1 60); do
	comp 2>/dev/null | grep -q "None is missing" && break
	sleep 0.5
done
echo "== The compliance report after the run:"
comp
echo
wrsql="SELECT time, kind, state_from, state_to FROM lifecycle_events WHERE object_type = 'work_request' ORDER BY kafka_offset"
for _ in $(seq 1 30); do
	q --output csv "$wrsql" 2>/dev/null | grep -qE 'work_request\.(succeeded|failed)' && break
	sleep 0.5
done
echo "== The work request's lifecycle events, as the pipeline delivered them to ClickHouse:"
q "$wrsql"
echo
echo "Try: $bin query --embedded $data/chdb \"SELECT time, loginid, title FROM audit_events WHERE event = 'command' ORDER BY ts\""
echo "(the all-in-one stops when this script ends; its store stays: $bin query --embedded $data/chdb --all"
echo " or run it yourself with: $bin all-in-one --data DIR --audit-log FILE)"
