# helpers.bash - shared by tests/cluster/*.bats: the harness's nodes, bounded
# waits on conditions, and names unique to one run. The cluster is made by
# tests/cluster/run.sh (cluster.sh up) before bats and removed after; a file run
# on its own brings it up (up is idempotent) and leaves it.

CLUSTER_DIR=${CLUSTER_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
CLUSTER=$CLUSTER_DIR/cluster.sh
DOCKER=${BERTH_CLUSTER_DOCKER:-/usr/bin/docker}
IMAGE=localhost/berth/base:bookworm

# dk N ARGS...: the docker CLI against node N's dockerd (node 1 is the manager).
dk() {
	local n=$1
	shift
	"$DOCKER" -H "unix://$("$CLUSTER" sock "$n")" "$@"
}

# wait_until SECONDS WHAT CMD...: runs CMD every 0.5 s until it succeeds; fails the
# test naming WHAT after SECONDS. Prints how long it took to fd 3 (bats' log).
wait_until() {
	local limit=$1 what=$2 start=$SECONDS
	shift 2
	until "$@" >/dev/null 2>&1; do
		if [ $((SECONDS - start)) -ge "$limit" ]; then
			echo "timed out after ${limit}s: $what" >&2
			return 1
		fi
		sleep 0.5
	done
	echo "# $what: $((SECONDS - start))s" >&3
}

# node_status HOSTNAME: the manager's view of it (Ready, Down, Unknown).
node_status() {
	dk 1 node inspect --format '{{.Status.State}}' "$1" 2>/dev/null
}
node_is() { [ "$(node_status "$1")" = "$2" ]; }

ready_nodes() { dk 1 node ls --format '{{.Hostname}} {{.Status}}' | awk '$2 == "Ready" { print $1 }' | sort; }
all_ready() { [ "$(ready_nodes | wc -l)" = 3 ]; }

# The perl TCP server of cluster.sh's smoke test: answers each connection on
# port 7000 with its argument.
# shellcheck disable=SC2016 # perl's variables
HELLO_SERVER=(perl -MIO::Socket::INET -e '$m = shift; $s = IO::Socket::INET->new(LocalPort => 7000,
	Listen => 5, ReuseAddr => 1) or die "listen: $!"; while ($c = $s->accept) { print $c "$m\n"; close $c }')

# service_pinned NAME NODE NETWORK MESSAGE: a one-replica service on NODE only, on
# NETWORK, answering MESSAGE on port 7000 (dnsrr: this kernel has no IPVS).
service_pinned() {
	dk 1 service create -q --detach --no-resolve-image --name "$1" --replicas 1 \
		--endpoint-mode dnsrr --constraint "node.hostname==$2" --network "$3" \
		"$IMAGE" "${HELLO_SERVER[@]}" "$4" >/dev/null
}

# running_on NAME: the nodes where service NAME has a running task, one a line.
running_on() {
	dk 1 service ps --filter desired-state=running --format '{{.Node}} {{.CurrentState}}' "$1" |
		awk '$2 == "Running" { print $1 }'
}
runs_on() { [ "$(running_on "$1")" = "$2" ]; }

# ask CONTAINER-NODE CONTAINER HOST: what HOST:7000 answers, from inside CONTAINER.
ask() {
	# shellcheck disable=SC2016 # $1 is the inner bash's
	timeout 10 "$DOCKER" -H "unix://$("$CLUSTER" sock "$1")" exec "$2" \
		bash -c 'exec 3<>"/dev/tcp/$1/7000" && cat <&3' _ "$3"
}
answers() {
	local want=$1
	shift
	[ "$(ask "$@" 2>/dev/null)" = "$want" ]
}

# cluster_berthd [ARGS...]: a berthd against node 1's manager socket (the
# swarm runtime) with data in $WORK/data, on a free loopback port, and ARGS;
# waits for its health; writes $WORK/berthd.pid and $WORK/url and sets
# BERTH_SERVER. The admin's password is cluster-admin-pass.
cluster_berthd() {
	local port i
	for i in $(seq 1 20); do
		port=$((20000 + RANDOM % 12000))
		BERTH_ADMIN_PASSWORD=cluster-admin-pass "$BERTHD" --data "$WORK/data" \
			--listen "127.0.0.1:$port" --ssh-listen none \
			--engine "swarm+unix://$("$CLUSTER" sock 1)" "$@" >>"$WORK/berthd.log" 2>&1 3>&- &
		echo $! >"$WORK/berthd.pid"
		BERTH_SERVER="http://127.0.0.1:$port"
		for _ in $(seq 1 100); do
			curl -sf "$BERTH_SERVER/api/v1/health" >/dev/null 2>&1 && break 2
			kill -0 "$(cat "$WORK/berthd.pid")" 2>/dev/null || break
			sleep 0.2
		done
		kill "$(cat "$WORK/berthd.pid")" 2>/dev/null || true
	done
	curl -sf "$BERTH_SERVER/api/v1/health" >/dev/null || return 1
	echo "$BERTH_SERVER" >"$WORK/url"
}

# cluster_admin_token: the admin's API token of cluster_berthd's berthd,
# into $WORK/token.
cluster_admin_token() {
	curl -sf -X POST -H 'Content-Type: application/json' \
		--data-binary '{"username":"admin","password":"cluster-admin-pass","mode":"token","token_name":"t"}' \
		"$(cat "$WORK/url")/api/v1/auth/login" | jq -r .token >"$WORK/token"
}
