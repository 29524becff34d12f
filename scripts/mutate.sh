#!/usr/bin/env bash
# Mutation testing with gremlins (github.com/go-gremlins/gremlins), one
# package at a time with one worker: each mutant of a package is tested by
# that package's tests, so a package's tests run once per mutant.
#
#   scripts/mutate.sh                 every package in scripts/mutate.d/packages
#   MUTATE_PKGS="collector/checkpoint forwarder" scripts/mutate.sh
#   MUTATE_PKGS=forwarder MUTATE_EXCLUDE='^(config|source)' MUTATE_RUN='TestSink' scripts/mutate.sh
#                                     one package, its exclude and run
#                                     columns replaced (a partial run;
#                                     MUTATE_SKIP replaces the skip column)
#
# Each mutant's tests stop at their first failure (-failfast): a killed
# mutant costs only the tests up to the one that kills it.
#
# Fails when a package's test efficacy is below its threshold in
# scripts/mutate.d/packages. Survivors listed in scripts/mutate.d/equivalent
# (with the reason no test can tell them from the code) are left out of the
# efficacy the threshold is checked against; both figures are printed, and
# a listed mutant that no longer survives is reported, to be removed.
# Reports go to $MUTATE_OUT (default bin/mutate): <pkg>.json (gremlins'
# machine-readable output) and <pkg>.log (every mutant with its status).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${AUDITPIPE_CACHE:=$HOME/.cache/auditpipe}"
version=v0.6.0
gremlins="$AUDITPIPE_CACHE/gremlins/$version/gremlins"
if [ ! -x "$gremlins" ]; then
	echo "mutate: installing gremlins $version into $(dirname "$gremlins")" >&2
	GOBIN="$(dirname "$gremlins")" go install "github.com/go-gremlins/gremlins/cmd/gremlins@$version"
fi
# The timeout of a mutant's test run is this times the coverage run's time:
# generous, for two CPUs shared with other work.
coefficient=${MUTATE_TIMEOUT_COEFFICIENT:-5}
out=${MUTATE_OUT:-bin/mutate}
mkdir -p "$out"
out=$(cd "$out" && pwd)
conf=scripts/mutate.d/packages
equivalents=scripts/mutate.d/equivalent

# unmount_under unmounts every mount below dir, deepest first.
unmount_under() {
	findmnt -rn -o TARGET | awk -v d="$1/" 'index($0, d) == 1' | sort -r | while read -r m; do
		echo "mutate: unmounting $m, left by a test killed at its timeout" >&2
		umount "$m" || umount -l "$m"
	done
}

pkgs=${MUTATE_PKGS:-$(awk '!/^#/ && NF { print $1 }' "$conf")}
failed=()
summary=()
for pkg in $pkgs; do
	line=$(awk -v p="$pkg" '!/^#/ && $1 == p' "$conf")
	if [ -z "$line" ]; then
		echo "mutate: $pkg is not in $conf" >&2
		exit 2
	fi
	read -r _ threshold exclude run skip <<<"$line"
	exclude=${MUTATE_EXCLUDE:-$exclude}
	run=${MUTATE_RUN:-$run}
	skip=${MUTATE_SKIP:-$skip}
	args=(unleash --workers 1 --timeout-coefficient "$coefficient" --output "$out/${pkg//\//_}.json")
	[ "$exclude" != - ] && args+=(--exclude-files "$exclude")
	goflags="${GOFLAGS:-} -failfast"
	[ "$run" != - ] && goflags+=" -run=$run"
	[ "$skip" != - ] && goflags+=" -skip=$skip"
	log="$out/${pkg//\//_}.log"
	# gremlins kills a mutant's test run at its timeout, before the test's
	# cleanup: what a test mounted (the checkpoint's full tmpfs) stays. Its
	# temporary files go under a directory of ours, and whatever is still
	# mounted there is unmounted after the package.
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/auditpipe-mutate.XXXXXX") # outside the module gremlins copies
	# Like /tmp: a test that runs itself again as nobody (collector/tail's
	# unreadable-file test) puts its binary and temporary files here.
	chmod 1777 "$tmp"
	echo "== mutate $pkg (threshold $threshold %)"
	start=$SECONDS
	# gremlins mutates the files under the path (subdirectories included).
	status=0
	# A mutant can make a loop append for ever (forwarder/message.go's
	# split): the run's virtual memory is bounded (MUTATE_VMEM_KB, default
	# 6 GB; the JVM of the Kafka tests fits), so such a mutant dies of it
	# instead of taking the machine's memory.
	( ulimit -v "${MUTATE_VMEM_KB:-6000000}" && TMPDIR="$tmp" GOFLAGS="$goflags" exec "$gremlins" "${args[@]}" "./$pkg" ) >"$log" 2>&1 || status=$?
	unmount_under "$tmp"
	# Likewise the daemons such a test started (rsyslogd, a Kafka broker):
	# their command lines name files under our temporary directory.
	for pid in $(pgrep -f -- "$tmp/" || true); do
		echo "mutate: stopping process $pid, left by a test killed at its timeout" >&2
		kill "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
	[ "$status" -eq 0 ] || {
		echo "mutate: gremlins failed on $pkg; see $log" >&2
		tail -n 20 "$log" >&2
		failed+=("$pkg (gremlins failed)")
		continue
	}
	# Each survivor, marked when it is listed as equivalent; then the
	# listed ones that did not survive (stale: the code or a test changed).
	equiv=$(awk -v p="$pkg" '
		FNR == NR { if (!/^#/ && NF && $1 == p) { key = $2 " " $3; $1 = $2 = $3 = ""; sub(/^ +/, ""); why[key] = $0 } next }
		/^ *(LIVED|TIMED OUT|NOT VIABLE)/ {
			line = $0; sub(/^ +/, "", line)
			n = split(line, f, " "); key = f[n] " " f[n - 2]
			if (f[1] == "LIVED" && key in why) { print "  " p ": " line " (equivalent: " why[key] ")"; seen[key] = 1; eq++ }
			else print "  " p ": " line
		}
		END {
			for (k in why) if (!(k in seen)) print "  " p ": listed as equivalent but did not survive (remove it): " k
			print eq + 0
		}' "$equivalents" "$log")
	# The survivors, then the number of equivalent ones on the last line.
	printf '%s\n' "$equiv" | sed '$d'
	equiv=$(printf '%s\n' "$equiv" | tail -n 1)
	json="$out/${pkg//\//_}.json"
	efficacy=$(sed -n 's/.*"test_efficacy": *\([0-9.]*\).*/\1/p' "$json" | head -n 1)
	killed=$(sed -n 's/.*"mutants_killed": *\([0-9]*\).*/\1/p' "$json" | head -n 1)
	lived=$(sed -n 's/.*"mutants_lived": *\([0-9]*\).*/\1/p' "$json" | head -n 1)
	notcovered=$(sed -n 's/.*"mutants_not_covered": *\([0-9]*\).*/\1/p' "$json" | head -n 1)
	# Efficacy without the equivalent survivors: killed / (killed + lived - equivalent).
	adjusted=$(awk -v k="$killed" -v l="$lived" -v q="$equiv" 'BEGIN { d = k + l - q; printf "%.1f", (d > 0 ? 100 * k / d : 100) }')
	s=$(printf '%s: efficacy %.1f %% (killed %s, lived %s, not covered %s); %s %% without the %s listed as equivalent; in %ds' \
		"$pkg" "$efficacy" "$killed" "$lived" "$notcovered" "$adjusted" "$equiv" $((SECONDS - start)))
	echo "$s"
	summary+=("$s")
	if ! awk -v e="$adjusted" -v t="$threshold" 'BEGIN { exit !(e + 0 >= t + 0) }'; then
		failed+=("$pkg ($adjusted % < $threshold %)")
	fi
done
echo "== mutation testing"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'mutate: below threshold: %s\n' "${failed[@]}" >&2
	exit 1
fi
