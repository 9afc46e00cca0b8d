#!/usr/bin/env bash
# bench/cluster.sh [--workspaces N] [--singles K]
#
# A benchmark, not a test: workspaces on the three-node Swarm of
# tests/cluster/cluster.sh (brought up if it is not) against workspaces on one
# host (Berth's embedded Podman), each with a berthd of its own and the same
# small repository and image. For each it prints:
#   - one create at a time (K, default 5): the median and the slowest time
#     from `berth create` to running;
#   - N (default 30) creates at once (--no-wait): the wall time until all run;
#   - the API's p50/p99 for GET /api/v1/workspaces meanwhile (a client that
#     asks in a loop), and its errors;
#   - on the cluster, how many workspaces each node got.
# Its clean-up removes every workspace it made, on both.
set -uo pipefail
BENCH_NAME=cluster
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
N=30 SINGLES=5
while [ $# -gt 0 ]; do
	case $1 in
	--workspaces) N=$2; shift 2 ;;
	--singles) SINGLES=$2; shift 2 ;;
	*) die "usage: bench/cluster.sh [--workspaces N] [--singles K]" ;;
	esac
done
[ -x "$BERTHD" ] || die "build first (make build)"
CLUSTER=$ROOT/tests/cluster/cluster.sh
[ "$(id -u)" = 0 ] || die "needs root (the cluster harness)"
"$CLUSTER" up >&2 || die "the cluster harness does not come up"
MANAGER=$("$CLUSTER" sock 1)
dk() { docker -H "unix://$MANAGER" "$@"; }

PIDS=()
cluster_cleanup() {
	local rc=$? p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	# the cluster's workspaces: through its berthd while it runs
	if [ -n "${CLUSTER_SERVER:-}" ]; then
		for w in $(curl -sf -H "Authorization: Bearer $CLUSTER_TOKEN" "$CLUSTER_SERVER/api/v1/workspaces" |
			jq -r '.workspaces[].name' 2>/dev/null); do
			BERTH_SERVER=$CLUSTER_SERVER BERTH_TOKEN=$CLUSTER_TOKEN "$BERTH" rm "$w" >/dev/null 2>&1
		done
		kill "$CLUSTER_PID" 2>/dev/null
	fi
	dk ps -aq --filter "label=berth.relay=$WORK/cluster-data/cluster" | while read -r c; do dk rm -f "$c"; done >/dev/null 2>&1
	# the overlays it made ahead
	dk network ls -q --filter "label=berth.pool=$WORK/cluster-data/cluster" | while read -r n; do dk network rm "$n"; done >/dev/null 2>&1
	floor_clean 2>/dev/null
	(exit "$rc")
	bench_cleanup
}
trap cluster_cleanup EXIT
bench_workdir
repo=$WORK/repo
mkdir -p "$repo" && git -C "$repo" init -q -b main && echo "# cluster bench" >"$repo/README.md" &&
	git -C "$repo" add -A && git -C "$repo" -c user.name=b -c user.email=b@b commit -qm x

# median and max of the numbers on stdin
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "median %.2f s, slowest %.2f s", v[int((NR + 1) / 2)], v[NR] }'; }
# p50, p99 and errors of "SECONDS CODE" lines in FILE
api_stats() {
	awk '$2 != 200 { e++ } { print $1 }' "$1" | sort -n |
		awk '{ v[NR] = $1 } END { printf "%d requests, p50 %.1f ms, p99 %.1f ms", NR, v[int(NR * 0.5) + 1] * 1000, v[int(NR * 0.99) + 1] * 1000 }'
	printf ', %d errors' "$(awk '$2 != 200' "$1" | wc -l)"
}

# run_side NAME: the measurements against BERTH_SERVER (set, with BERTH_TOKEN)
run_side() {
	local name=$1 i s e
	: >"$WORK/$name-single.txt"
	for i in $(seq 1 "$SINGLES"); do
		s=$(date +%s.%N)
		"$BERTH" create "$repo" --name "$name-s$i" >/dev/null || die "$name: create $i failed"
		e=$(date +%s.%N)
		echo "$e - $s" | bc >>"$WORK/$name-single.txt"
	done
	echo "$name: one create at a time ($SINGLES): $(stats <"$WORK/$name-single.txt")"
	for i in $(seq 1 "$SINGLES"); do "$BERTH" rm "$name-s$i" >/dev/null; done
	# the API client, while N creates run
	(while :; do
		curl -s -o /dev/null -w '%{time_total} %{http_code}\n' -H "Authorization: Bearer $BERTH_TOKEN" \
			"$BERTH_SERVER/api/v1/workspaces" >>"$WORK/$name-api.txt"
		sleep 0.05
	done) &
	local client=$!
	PIDS+=("$client")
	bench_create_running "$name" "$N" "$repo" 900 | sed "s/^/$name: /"
	kill "$client" 2>/dev/null
	wait "$client" 2>/dev/null
	echo "$name: API meanwhile: $(api_stats "$WORK/$name-api.txt")"
}

# ---- the floor: Swarm alone, pinned one-replica services until their tasks run ----
# Each Berth workspace has an overlay of its own (no other workspace reaches
# its ports), so the floor is timed both ways: without a network, and with an
# overlay made for the service, new to its node.
nodes=($(dk node ls --format '{{.ID}}'))
# floor_service NAME NODE [OVERLAY]: creates the service (and the overlay)
floor_service() {
	local net=()
	if [ -n "${3:-}" ]; then
		dk network create -d overlay --label "berth-bench=$TAG" "$3" >/dev/null || return 1
		net=(--network "$3")
	fi
	dk service create -q --detach --no-resolve-image --name "$1" --label "berth-bench=$TAG" \
		--endpoint-mode dnsrr --constraint "node.id==$2" "${net[@]}" "$IMAGE" sleep 600 >/dev/null
}
# floor_running COUNT: waits until COUNT of the bench's services run one task each
floor_running() {
	until [ "$(dk service ls --filter "label=berth-bench=$TAG" --format '{{.Replicas}}' | grep -c '^1/1')" -ge "$1" ]; do
		sleep 0.02
	done
}
floor_clean() {
	dk service ls -q --filter "label=berth-bench=$TAG" | xargs -r docker -H "unix://$MANAGER" service rm >/dev/null
	# an overlay goes once its tasks have left
	for _ in $(seq 1 100); do
		dk network ls -q --filter "label=berth-bench=$TAG" | xargs -r docker -H "unix://$MANAGER" network rm >/dev/null 2>&1
		[ -z "$(dk network ls -q --filter "label=berth-bench=$TAG")" ] && break
		sleep 0.2
	done
}
for kind in plain overlay; do
	: >"$WORK/swarm-floor-$kind.txt"
	for i in $(seq 1 "$SINGLES"); do
		net=
		[ "$kind" = overlay ] && net="berth-bench-$TAG-net-$i"
		s=$(date +%s.%N)
		floor_service "berth-bench-$TAG-$kind-$i" "${nodes[1]}" $net || die "docker service create failed"
		floor_running 1
		e=$(date +%s.%N)
		echo "$e - $s" | bc >>"$WORK/swarm-floor-$kind.txt"
		floor_clean
	done
done
echo "swarm alone: a pinned service until Running ($SINGLES): $(stats <"$WORK/swarm-floor-plain.txt")"
echo "swarm alone: the same on an overlay of its own ($SINGLES): $(stats <"$WORK/swarm-floor-overlay.txt")"
s=$(date +%s.%N)
for i in $(seq 1 "$N"); do
	floor_service "berth-bench-$TAG-burst-$i" "${nodes[$((i % ${#nodes[@]}))]}" "berth-bench-$TAG-bnet-$i" &
done
wait
floor_running "$N"
e=$(date +%s.%N)
echo "swarm alone: $N at once over ${#nodes[@]} nodes, each on an overlay of its own: all running in $(echo "$e - $s" | bc) s"
floor_clean

# ---- one host: Berth's embedded Podman ----
bench_start_berthd --max-running 1000 --max-workspaces 1000 --ssh-listen none || die "berthd does not start"
BERTH_TOKEN=$(bench_login_token)
export BERTH_SERVER BERTH_TOKEN
bench_idle_never
run_side one-host
for i in $(seq 1 "$N"); do "$BERTH" rm "one-host-$i" >/dev/null 2>&1; done

# ---- the cluster ----
port=$((BERTH_PORT + 1))
BERTH_ADMIN_PASSWORD=$ADMIN_PASSWORD setsid "$BERTHD" --engine "swarm+unix://$MANAGER" --data "$WORK/cluster-data" \
	--listen "127.0.0.1:$port" --agent "$AGENT" --ssh-listen none --max-running 1000 --max-workspaces 1000 \
	>>"$LOGS/cluster-berthd.log" 2>&1 &
CLUSTER_PID=$!
CLUSTER_SERVER=http://127.0.0.1:$port
for _ in $(seq 1 300); do
	curl -sf "$CLUSTER_SERVER/api/v1/health" >/dev/null 2>&1 && break
	sleep 0.1
done
BERTH_SERVER=$CLUSTER_SERVER
BERTH_TOKEN=$(bench_login_token)
CLUSTER_TOKEN=$BERTH_TOKEN
export BERTH_SERVER BERTH_TOKEN
bench_idle_never
run_side cluster
echo "cluster: workspaces per node: $(for i in $(seq 1 "$N"); do
	"$BERTH" show "cluster-$i" --json | jq -r .node
done | sort | uniq -c | awk '{ printf "%s %s  ", $2, $1 }')"
