#!/usr/bin/env bats
# The Swarm features docs/cluster.md builds a workspace from, each on the harness:
# a per-node volume that outlives its container and its node's crash, a secret
# that only its own service sees, an image that reaches every node from the
# nodes' registry, and overlays that keep workspaces apart.

load helpers

setup_file() {
	all_ready || "$CLUSTER" up >&3 2>&1
	export P="berth-prim-t$$"
}

teardown_file() {
	"$CLUSTER" node-start 2 >/dev/null 2>&1 || true
	local s n
	for s in files seen blind agent-install wsa wsb; do dk 1 service rm "$P-$s" >/dev/null 2>&1 || true; done
	dk 1 rm -f "$P-relay" >/dev/null 2>&1 || true
	dk 1 secret rm "$P-secret" >/dev/null 2>&1 || true
	for _ in $(seq 1 40); do
		dk 1 network rm "$P-neta" "$P-netb" >/dev/null 2>&1 && break
		dk 1 network ls -q --filter "name=$P-" | grep -q . || break
		sleep 0.5
	done
	for n in 1 2 3; do
		for _ in $(seq 1 20); do
			dk "$n" volume rm "$P-vol" "$P-agent" >/dev/null 2>&1 && break
			dk "$n" volume ls -q --filter "name=$P-" | grep -q . || break
			sleep 0.5
		done
	done
}

# in_task NODE SERVICE CMD...: runs CMD in SERVICE's running container on NODE.
in_task() {
	local n=$1 svc=$2 c
	shift 2
	c=$(dk "$n" ps -q --filter "label=com.docker.swarm.service.name=$svc" | head -n 1)
	[ -n "$c" ] || return 1
	dk "$n" exec "$c" "$@"
}

@test "a pinned service's volume keeps its files when its node is killed and comes back" {
	dk 1 service create -q --detach --no-resolve-image --name "$P-files" --endpoint-mode dnsrr \
		--constraint node.hostname==berth-node2 \
		--mount "type=volume,source=$P-vol,target=/workspaces" "$IMAGE" sleep infinity >/dev/null
	wait_until 90 "files service on berth-node2" runs_on "$P-files" berth-node2
	in_task 2 "$P-files" sh -c 'echo uncommitted > /workspaces/notes.txt'
	local before
	before=$(dk 2 ps -q --filter "label=com.docker.swarm.service.name=$P-files")
	"$CLUSTER" node-stop 2 --kill
	wait_until 120 "killed berth-node2 Down" node_is berth-node2 down
	"$CLUSTER" node-start 2
	wait_until 120 "berth-node2 Ready" node_is berth-node2 ready
	wait_until 120 "files service running on berth-node2 again" runs_on "$P-files" berth-node2
	# A new container (Swarm replaced the task), the same files.
	run dk 2 ps -q --filter "label=com.docker.swarm.service.name=$P-files"
	[ "$output" != "$before" ]
	run in_task 2 "$P-files" cat /workspaces/notes.txt
	[ "$status" -eq 0 ]
	[ "$output" = uncommitted ]
	# The volume is on node2 alone.
	run dk 3 volume ls -q --filter "name=$P-vol"
	[ -z "$output" ]
}

@test "a secret is seen by the service it is given to and by no other" {
	head -c 32 /dev/urandom | base64 | dk 1 secret create "$P-secret" - >/dev/null
	dk 1 service create -q --detach --no-resolve-image --name "$P-seen" --endpoint-mode dnsrr \
		--constraint node.hostname==berth-node3 \
		--secret "source=$P-secret,target=berth-agent,mode=0400" "$IMAGE" sleep infinity >/dev/null
	dk 1 service create -q --detach --no-resolve-image --name "$P-blind" --endpoint-mode dnsrr \
		--constraint node.hostname==berth-node3 "$IMAGE" sleep infinity >/dev/null
	wait_until 90 "secret's service running" runs_on "$P-seen" berth-node3
	wait_until 90 "other service running" runs_on "$P-blind" berth-node3
	run in_task 3 "$P-seen" wc -c /run/secrets/berth-agent
	[ "$status" -eq 0 ]
	[ "${output%% *}" = 45 ]
	run in_task 3 "$P-blind" ls /run/secrets/berth-agent
	[ "$status" -ne 0 ]
}

@test "an image pushed to the nodes' registry fills a volume on every node" {
	local reg
	reg=$("$CLUSTER" registry) || skip "the harness has no registry (Debian docker-registry)"
	local ctx="$BATS_FILE_TMPDIR/agent-image"
	mkdir -p "$ctx"
	echo "agent $P" >"$ctx/berth-agent"
	printf 'FROM %s\nCOPY berth-agent /opt/berth/berth-agent\n' "$IMAGE" >"$ctx/Dockerfile"
	dk 1 build -q -t "$reg/berth/agent:$P" "$ctx" >/dev/null
	dk 1 push -q "$reg/berth/agent:$P" >/dev/null
	# One task per node, then done: each copies the agent into that node's volume.
	dk 1 service create -q --detach --no-resolve-image --mode global-job --name "$P-agent-install" \
		--mount "type=volume,source=$P-agent,target=/install" "$reg/berth/agent:$P" \
		cp /opt/berth/berth-agent /install/berth-agent >/dev/null
	done3() {
		[ "$(dk 1 service ps --format '{{.CurrentState}}' "$P-agent-install" | grep -c '^Complete')" = 3 ]
	}
	wait_until 120 "agent installed on 3 nodes" done3
	local n
	for n in 1 2 3; do
		run dk "$n" run --rm -v "$P-agent:/a:ro" "$IMAGE" cat /a/berth-agent
		[ "$status" -eq 0 ]
		[ "$output" = "agent $P" ]
	done
}

@test "a workspace reaches its own overlay's agent and not another workspace's" {
	local opts
	opts=$("$CLUSTER" overlay-opts)
	# shellcheck disable=SC2086 # no option or two words
	dk 1 network create -d overlay $opts --attachable "$P-neta" >/dev/null
	# shellcheck disable=SC2086
	dk 1 network create -d overlay $opts --attachable "$P-netb" >/dev/null
	service_pinned "$P-wsa" berth-node3 "$P-neta" "agent of a"
	dk 1 service create -q --detach --no-resolve-image --name "$P-wsb" --endpoint-mode dnsrr \
		--constraint node.hostname==berth-node2 --network "$P-netb" "$IMAGE" sleep infinity >/dev/null
	wait_until 90 "wsa running" runs_on "$P-wsa" berth-node3
	wait_until 90 "wsb running" runs_on "$P-wsb" berth-node2
	local ipa
	ipa=$(dk 3 inspect -f "{{(index .NetworkSettings.Networks \"$P-neta\").IPAddress}}" \
		"$(dk 3 ps -q --filter "label=com.docker.swarm.service.name=$P-wsa")")
	[ -n "$ipa" ]
	# From its own overlay (a container on node1, as berthd's relay would be).
	dk 1 run -d --name "$P-relay" --network "$P-neta" "$IMAGE" sleep infinity >/dev/null
	wait_until 60 "wsa's agent answers on its overlay" answers "agent of a" 1 "$P-relay" "$ipa"
	dk 1 rm -f "$P-relay" >/dev/null
	# Not from the other workspace, by name or by address.
	run in_task 2 "$P-wsb" getent hosts "$P-wsa"
	[ "$status" -ne 0 ]
	# (An address off the node's networks goes out through the NAT, and this
	# machine's uplink accepts any TCP connection: the test is what answers.)
	local cb
	cb=$(dk 2 ps -q --filter "label=com.docker.swarm.service.name=$P-wsb")
	run ask 2 "$cb" "$ipa"
	[ "$output" != "agent of a" ]
}
