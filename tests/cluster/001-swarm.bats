#!/usr/bin/env bats
# The three-node harness behaves as the Swarm backend will need it to: every node
# Ready, a service pinned to a node runs there and is reached over the overlay
# from another node, and a node whose dockerd stops shows Down, keeps its pinned
# service off the other nodes, and comes back Ready with the service on it.

load helpers

setup_file() {
	all_ready || "$CLUSTER" up >&3 2>&1
	export RUN_ID="t$$"
	export NET="berth-test-$RUN_ID"
	# shellcheck disable=SC2046 # no option or two words
	dk 1 network create -d overlay $("$CLUSTER" overlay-opts) --attachable "$NET" >/dev/null
	# The client every test asks from: an attachable container on node1.
	dk 1 run -d --name "$NET-client" --network "$NET" "$IMAGE" sleep infinity >/dev/null
}

teardown_file() {
	local n
	# A failed test may leave node3 stopped.
	"$CLUSTER" node-start 3 >/dev/null 2>&1 || true
	for n in 1 2 3; do dk 1 service rm "$NET-svc$n" >/dev/null 2>&1 || true; done
	dk 1 rm -f "$NET-client" >/dev/null 2>&1 || true
	# The network goes once no task uses it; tasks take a moment to go.
	for _ in $(seq 1 40); do
		dk 1 network rm "$NET" >/dev/null 2>&1 && break
		sleep 0.5
	done
}

@test "three nodes are Ready" {
	wait_until 60 "3 nodes Ready" all_ready
	run ready_nodes
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'berth-node1\nberth-node2\nberth-node3')" ]
}

@test "a service pinned to each node runs there and answers over the overlay" {
	local n
	for n in 1 2 3; do service_pinned "$NET-svc$n" "berth-node$n" "$NET" "hello from node$n"; done
	for n in 1 2 3; do
		wait_until 90 "svc$n running on berth-node$n" runs_on "$NET-svc$n" "berth-node$n"
	done
	for n in 1 2 3; do
		wait_until 60 "svc$n answers node1's client" answers "hello from node$n" 1 "$NET-client" "$NET-svc$n"
	done
}

@test "a node whose dockerd stops shows Down and its pinned service runs nowhere else" {
	runs_on "$NET-svc3" berth-node3 || skip "needs the previous test's services"
	"$CLUSTER" node-stop 3
	wait_until 120 "berth-node3 Down" node_is berth-node3 down
	# The constraint holds: the task waits for its node, it does not move.
	run running_on "$NET-svc3"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	# The other nodes' services keep answering.
	answers "hello from node2" 1 "$NET-client" "$NET-svc2"
}

@test "a stopped node that restarts is Ready again with its pinned service" {
	node_is berth-node3 down || skip "needs the previous test's stopped node"
	"$CLUSTER" node-start 3
	wait_until 120 "berth-node3 Ready again" node_is berth-node3 ready
	wait_until 120 "svc3 running on berth-node3 again" runs_on "$NET-svc3" berth-node3
	wait_until 60 "svc3 answers again" answers "hello from node3" 1 "$NET-client" "$NET-svc3"
}

@test "a node whose dockerd is killed shows Down within the heartbeat bound, then Ready" {
	runs_on "$NET-svc3" berth-node3 || skip "needs the previous tests' services"
	"$CLUSTER" node-stop 3 --kill
	# No goodbye from the node: the manager notices missed heartbeats (≈10 s here).
	wait_until 120 "killed berth-node3 Down" node_is berth-node3 down
	run running_on "$NET-svc3"
	[ -z "$output" ]
	"$CLUSTER" node-start 3
	wait_until 120 "killed berth-node3 Ready again" node_is berth-node3 ready
	# Swarm replaces the task that lost its dockerd with a new container on the
	# same node: whatever must survive lives in a volume, not in the container.
	wait_until 120 "svc3 running on berth-node3 after the kill" runs_on "$NET-svc3" berth-node3
	wait_until 60 "svc3 answers after the kill" answers "hello from node3" 1 "$NET-client" "$NET-svc3"
}
