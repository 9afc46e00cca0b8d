#!/usr/bin/env bats
# berthd against the harness's Swarm (berthd --engine swarm+unix://): it takes a
# manager's socket and nothing else, lists the nodes with their state and load
# for admins, and changes their labels and availability in the Swarm itself.
# Workspaces on the cluster are 005-workspaces.bats'.

load helpers

ROOT=$(cd "$CLUSTER_DIR/../.." && pwd)
BERTHD=${BERTHD:-$ROOT/build/src/daemon/berthd}
BERTH=${BERTH:-$ROOT/build/src/cli/berth}

setup_file() {
	all_ready || "$CLUSTER" up >&3 2>&1
	export RUN_ID="t$$"
	export WORK="$BATS_FILE_TMPDIR"
	cluster_berthd
	export BERTH_SERVER
	cluster_admin_token
}

teardown_file() {
	kill "$(cat "$WORK/berthd.pid")" 2>/dev/null || true
	# what its berthd made ahead for workspaces: the relay and the overlays
	dk 1 ps -aq --filter "label=berth.relay=$WORK/data/cluster" | while read -r c; do dk 1 rm -f "$c"; done >/dev/null 2>&1 || true
	dk 1 network ls -q --filter "label=berth.pool=$WORK/data/cluster" | while read -r n; do dk 1 network rm "$n"; done >/dev/null 2>&1 || true
	dk 1 service rm "berth-test-$RUN_ID-load" >/dev/null 2>&1 || true
	dk 1 node update --label-rm "berth-test-$RUN_ID" berth-node2 >/dev/null 2>&1 || true
	dk 1 node update --availability active berth-node3 >/dev/null 2>&1 || true
}

setup() {
	export BERTH_SERVER BERTH_TOKEN
	BERTH_SERVER=$(cat "$WORK/url")
	BERTH_TOKEN=$(cat "$WORK/token")
}

nodes_json() { "$BERTH" admin nodes --json; }

@test "berthd takes a Swarm manager's socket only, and says what to use instead" {
	run timeout 60 "$BERTHD" --data "$WORK/worker" --listen 127.0.0.1:$((20000 + RANDOM % 12000)) --ssh-listen none \
		--engine "swarm+unix://$("$CLUSTER" sock 2)"
	[ "$status" -ne 0 ]
	[[ $output == *"is a Swarm worker: berthd needs a manager's socket"* ]]
	run timeout 60 "$BERTHD" --data "$WORK/bad" --listen 127.0.0.1:1 --engine "swarm+tcp://x"
	[ "$status" -eq 2 ]
	[[ $output == *"swarm+unix:///path"* ]]
}

@test "berth admin nodes lists the three nodes with state, role, resources and load; for admins only" {
	run "$BERTH" admin nodes
	[ "$status" -eq 0 ]
	echo "$output"
	[[ $output == *"berth-node1  ready  active        manager (leader)  10.77.0.11"* ]]
	[[ $output == *"berth-node2  ready  active        worker            10.77.0.12"* ]]
	[[ $output == *"berth-node3  ready  active        worker            10.77.0.13"* ]]
	[ "$(nodes_json | jq '[.nodes[] | select(.cpus > 0 and .memory_bytes > 0)] | length')" = 3 ]
	# a task pinned to node2 shows as its load
	before=$(nodes_json | jq '.nodes[] | select(.name == "berth-node2") | .tasks')
	service_pinned "berth-test-$RUN_ID-load" berth-node2 bridge load
	wait_until 90 "node2 counts the task" \
		sh -c "[ \$('$BERTH' admin nodes --json | jq '.nodes[] | select(.name == \"berth-node2\") | .tasks') -gt $before ]"
	# another user sees nothing of it
	pw=$("$BERTH" admin create-user "cl$RUN_ID" | sed -n 's/^password: //p')
	tok=$(curl -sf -X POST -H 'Content-Type: application/json' \
		--data-binary "{\"username\":\"cl$RUN_ID\",\"password\":\"$pw\",\"mode\":\"token\",\"token_name\":\"t\"}" \
		"$BERTH_SERVER/api/v1/auth/login" | jq -r .token)
	run curl -s -w ' %{http_code}' -H "Authorization: Bearer $tok" "$BERTH_SERVER/api/v1/admin/nodes"
	[[ $output == *"only admins"*" 403" ]]
}

@test "labels and availability set with berth admin node reach the Swarm" {
	key="berth-test-$RUN_ID"
	run "$BERTH" admin node label berth-node2 "$key=yes"
	[ "$status" -eq 0 ]
	[ "$(dk 1 node inspect --format "{{index .Spec.Labels \"$key\"}}" berth-node2)" = yes ]
	run "$BERTH" admin node label berth-node2 "$key-"
	[ "$status" -eq 0 ]
	[ -z "$(dk 1 node inspect --format "{{index .Spec.Labels \"$key\"}}" berth-node2)" ]
	run "$BERTH" admin node drain berth-node3
	[ "$status" -eq 0 ]
	[ "$(dk 1 node inspect --format '{{.Spec.Availability}}' berth-node3)" = drain ]
	[ "$(nodes_json | jq -r '.nodes[] | select(.name == "berth-node3") | .availability')" = drain ]
	run "$BERTH" admin node activate berth-node3
	[ "$status" -eq 0 ]
	[ "$(dk 1 node inspect --format '{{.Spec.Availability}}' berth-node3)" = active ]
	# bad input: a clear message, nothing changed
	run "$BERTH" admin node label nosuch a=b
	[ "$status" -ne 0 ]
	[[ $output == *"no node 'nosuch' in the Swarm"* ]]
	run "$BERTH" admin node label berth-node2 "=x"
	[ "$status" -ne 0 ]
	[[ $output == *"KEY=VALUE"* ]]
	run "$BERTH" admin audit
	[[ $output == *"admin.node.update"* ]]
}

@test "without --registry a prebuild is refused at once with the reason, and nothing is made" {
	mkdir -p "$WORK/pbrepo"
	git -C "$WORK/pbrepo" init -q -b main
	git -C "$WORK/pbrepo" -c user.name=T -c user.email=t@t commit -q --allow-empty -m init
	run timeout 120 "$BERTH" prebuild "$WORK/pbrepo" --branch main
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *"prebuilds on a Swarm cluster need berthd --registry HOST:PORT"* ]]
	# refused before the clone: no record, no service, no checkout
	[ "$("$BERTH" prebuilds --json | jq length)" -eq 0 ]
	[ -z "$(dk 1 service ls --format '{{.Name}}' | grep '^berth-pb' || true)" ]
	[ -z "$(ls "$WORK/data/workspaces" 2>/dev/null)" ]
}
