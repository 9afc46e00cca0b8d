#!/usr/bin/env bash
# tests/cluster/run.sh: `make test-cluster`. Brings the three-node harness up
# (cluster.sh up), runs tests/cluster/*.bats against it, takes it down again, and
# prints how long each part took. A machine that cannot host the harness (not
# root, no network namespaces, dockerd will not start, no image archive) is not a
# failure: it prints "cluster tests skipped: REASON" and exits 0.
#
# BERTH_CLUSTER_KEEP=1 leaves the cluster up afterwards (cluster.sh down removes it).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CLUSTER=$HERE/cluster.sh
ARTIFACTS="$HERE/../artifacts/cluster"
mkdir -p "$ARTIFACTS"

# The nodes' dockerd logs, kept before `down` removes them.
keep_logs() {
	local f n
	for f in /run/berth-cluster/node*/dockerd.log; do
		[ -f "$f" ] || continue
		n=$(basename "$(dirname "$f")")
		cp "$f" "$ARTIFACTS/$n-dockerd.log"
	done
}

skip() {
	echo "cluster tests skipped: $*"
	exit 0
}

# ---- can this machine host it? ----
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, dockerd)"
command -v bats >/dev/null || skip "bats is not installed"
for t in ip nsenter unshare iptables setsid flock; do
	command -v "$t" >/dev/null || skip "'$t' is missing"
done
probe=berth-swprobe$$
if ! out=$(ip netns add "$probe" 2>&1); then
	skip "cannot make a network namespace: $out"
fi
ip netns del "$probe"
if ! out=$(unshare --mount --uts --net true 2>&1); then
	skip "cannot make mount, UTS and network namespaces: $out"
fi
# One harness per machine (one bridge, one set of names): a second run waits
# for the first, up to 15 minutes. The lock goes with this process.
exec 9>/run/berth-cluster.lock
if ! flock -w 900 9; then
	skip "another 'make test-cluster' has held /run/berth-cluster.lock for 15 minutes"
fi
archive=${BERTH_CLUSTER_IMAGE_TAR:-$HERE/../../.berth-data/images/base-bookworm.tar}
[ -f "$archive" ] || skip "no default image archive at $archive (run 'make setup')"

# ---- up ----
start=$SECONDS
if ! "$CLUSTER" up >"$ARTIFACTS/up.log" 2>&1; then
	reason=$(sed -n 's/^cluster: error: //; s/ (log: .*//p' "$ARTIFACTS/up.log" | tail -n 1)
	keep_logs
	"$CLUSTER" down >>"$ARTIFACTS/up.log" 2>&1 || true
	skip "${reason:-cluster.sh up failed} (logs: $(cd "$ARTIFACTS" && pwd)/)"
fi
up_s=$((SECONDS - start))
sed 's/^/  /' "$ARTIFACTS/up.log"

down() {
	keep_logs
	[ "${BERTH_CLUSTER_KEEP:-0}" = 1 ] && return 0
	"$CLUSTER" down >"$ARTIFACTS/down.log" 2>&1
	sed 's/^/  /' "$ARTIFACTS/down.log"
}
trap 'down; exit 130' INT TERM

# ---- tests ----
start=$SECONDS
bats --tap "$HERE"/*.bats 2>&1 | tee "$ARTIFACTS/bats.tap"
rc=${PIPESTATUS[0]}
tests_s=$((SECONDS - start))
passed=$(grep -c '^ok ' "$ARTIFACTS/bats.tap")
failed=$(grep -c '^not ok ' "$ARTIFACTS/bats.tap")
down
echo "cluster: up ${up_s}s, tests ${tests_s}s; $passed passed, $failed failed"
exit "$rc"
