#!/usr/bin/env bats
# How berthd reaches a workspace's agent on a cluster (docs/cluster.md): each
# workspace runs berth-agent with its TCP listener on its own overlay, keyed by
# a Swarm secret given to that service only; the relay is one more berth-agent,
# in a container on the manager attached to the workspaces' overlays, whose
# unix socket is in berthd's data dir. berthd asks the relay for TCP_CONNECT
# with PASS_FD and gets the connected socket itself, then runs the handshake
# (agent-proto.h, AUTH). fixtures/agent-client.py plays berthd's part.
#
# In the harness every node shares this machine's files, so the agent reaches
# the nodes by a bind mount; on real hosts it comes from the registry image
# (test 8 of 002-primitives.bats), which berthd does not do yet.

load helpers

ROOT=$(cd "$CLUSTER_DIR/../.." && pwd)
CLIENT=$CLUSTER_DIR/fixtures/agent-client.py

setup_file() {
	all_ready || "$CLUSTER" up >&3 2>&1
	export P="berth-ar$$"
	export AGENTS="$BATS_FILE_TMPDIR/agent" RELAY="$BATS_FILE_TMPDIR/relay"
	mkdir -p "$AGENTS" "$RELAY"
	cp "$ROOT/build/src/agent/berth-agent" "$AGENTS/"
	local opts w n
	opts=$("$CLUSTER" overlay-opts)
	for w in a b; do
		head -c 32 /dev/urandom >"$BATS_FILE_TMPDIR/key$w"
		dk 1 secret create "$P-$w-agent" "$BATS_FILE_TMPDIR/key$w" >/dev/null
		# shellcheck disable=SC2086 # no option or two words
		dk 1 network create -d overlay $opts --attachable "$P-net$w" >/dev/null
	done
	for w in a b; do
		n=$([ $w = a ] && echo 2 || echo 3)
		dk 1 service create -q --detach --no-resolve-image --name "$P-ws$w" --endpoint-mode dnsrr \
			--constraint "node.hostname==berth-node$n" --network "$P-net$w" \
			--secret "source=$P-$w-agent,target=berth-agent,mode=0400" \
			--mount "type=bind,source=$AGENTS,target=/.berth-agent,readonly" "$IMAGE" \
			/.berth-agent/berth-agent --socket /tmp/agent.sock --tcp 0.0.0.0:7880 \
			--key /run/secrets/berth-agent --id "ws$w" >/dev/null
	done
	dk 1 run -d --name "$P-relay" --network "$P-neta" -v "$RELAY:/relay" \
		-v "$AGENTS:/.berth-agent:ro" "$IMAGE" /.berth-agent/berth-agent --socket /relay/agent.sock >/dev/null
	dk 1 network connect "$P-netb" "$P-relay"
}

teardown_file() {
	local w
	dk 1 rm -f "$P-relay" >/dev/null 2>&1 || true
	for w in a b; do dk 1 service rm "$P-ws$w" >/dev/null 2>&1 || true; done
	for w in a b; do
		dk 1 secret rm "$P-$w-agent" >/dev/null 2>&1 || true
		for _ in $(seq 1 40); do
			dk 1 network rm "$P-net$w" >/dev/null 2>&1 && break
			sleep 0.5
		done
	done
}

# task_ip W N: the overlay address of workspace W's task on node N.
task_ip() {
	local cid
	cid=$(dk "$2" ps -q --filter "label=com.docker.swarm.service.name=$P-ws$1")
	[ -n "$cid" ] && dk "$2" inspect -f "{{(index .NetworkSettings.Networks \"$P-net$1\").IPAddress}}" "$cid"
}

client() { timeout 60 python3 "$CLIENT" "$RELAY/agent.sock" "$@"; }

wait_agents() {
	wait_until 120 "wsa running on node2" runs_on "$P-wsa" berth-node2
	wait_until 120 "wsb running on node3" runs_on "$P-wsb" berth-node3
	IPA=$(task_ip a 2)
	IPB=$(task_ip b 3)
	[ -n "$IPA" ] && [ -n "$IPB" ]
	wait_until 60 "wsa's agent answers through the relay" client "$IPA" "$BATS_FILE_TMPDIR/keya" wsa true
	wait_until 60 "wsb's agent answers through the relay" client "$IPB" "$BATS_FILE_TMPDIR/keyb" wsb true
}

@test "through the relay and the handshake berthd runs a command in a workspace on another node" {
	wait_agents
	run client "$IPA" "$BATS_FILE_TMPDIR/keya" wsa sh -c 'hostname; wc -c </run/secrets/berth-agent; exit 7'
	[ "$status" -eq 7 ]
	cid=$(dk 2 ps -q --filter "label=com.docker.swarm.service.name=$P-wsa")
	[ "${lines[0]}" = "$(dk 2 inspect -f '{{.Config.Hostname}}' "$cid")" ]
	[ "${lines[1]}" = 32 ]
}

@test "a wrong key, another workspace's key or another workspace's id is refused" {
	wait_agents
	run client "$IPA" "$BATS_FILE_TMPDIR/keyb" wsa true
	[ "$status" -eq 3 ]
	[[ $output == *"refused: authentication failed"* ]]
	run client "$IPB" "$BATS_FILE_TMPDIR/keya" wsb true
	[ "$status" -eq 3 ]
	# wsa's key and id cannot drive wsb's agent either: the id is in the proof
	run client "$IPB" "$BATS_FILE_TMPDIR/keya" wsa true
	[ "$status" -eq 3 ]
	run client "$IPB" "$BATS_FILE_TMPDIR/keyb" wsa true
	[ "$status" -eq 3 ]
}

@test "each workspace's task holds its own key and not another's" {
	wait_agents
	ca=$(dk 2 ps -q --filter "label=com.docker.swarm.service.name=$P-wsa")
	cb=$(dk 3 ps -q --filter "label=com.docker.swarm.service.name=$P-wsb")
	cmp -s <(dk 2 exec "$ca" cat /run/secrets/berth-agent) "$BATS_FILE_TMPDIR/keya"
	cmp -s <(dk 3 exec "$cb" cat /run/secrets/berth-agent) "$BATS_FILE_TMPDIR/keyb"
	! cmp -s <(dk 3 exec "$cb" cat /run/secrets/berth-agent) "$BATS_FILE_TMPDIR/keya"
}
