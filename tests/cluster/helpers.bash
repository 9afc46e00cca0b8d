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
