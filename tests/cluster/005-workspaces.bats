#!/usr/bin/env bats
# Workspaces on the harness's Swarm (berthd --engine swarm+unix://, the swarm
# runtime): each is a one-replica service pinned to a node, spread over the
# three, its files in a volume on its node, reached through the relay and the
# per-workspace handshake. What a user does on one host (create, exec, a
# terminal, a forwarded port, stop, start, rm) works the same; what is not
# built on a cluster yet is refused with the reason.

load helpers

ROOT=$(cd "$CLUSTER_DIR/../.." && pwd)
BERTHD=${BERTHD:-$ROOT/build/src/daemon/berthd}
BERTH=${BERTH:-$ROOT/build/src/cli/berth}
CLIENT=$CLUSTER_DIR/fixtures/agent-client.py

IDE=$ROOT/.berth-data/ide

start_berthd() {
	local ide=() registry
	registry=$("$CLUSTER" registry 2>/dev/null || true)
	# VS Code reaches the nodes through the harness's registry
	[ -x "$IDE/bin/code-server" ] && [ -n "$registry" ] && ide=(--ide "$IDE" --registry "$registry")
	cluster_berthd --web-vendor "$ROOT/.berth-data/web-vendor/node_modules" --max-running 20 "${ide[@]}"
}

# stops berthd (SIGTERM, up to 10 s) and starts it again on the same data
restart_berthd() {
	kill "$(cat "$WORK/berthd.pid")"
	for _ in $(seq 1 100); do
		kill -0 "$(cat "$WORK/berthd.pid")" 2>/dev/null || break
		sleep 0.1
	done
	start_berthd
	BERTH_SERVER=$(cat "$WORK/url")
}

setup_file() {
	all_ready || "$CLUSTER" up >&3 2>&1
	export WORK="$BATS_FILE_TMPDIR"
	start_berthd
	cluster_admin_token
	local repo=$WORK/repo
	mkdir -p "$repo"
	git -C "$repo" init -q -b main
	echo "# on the cluster" >"$repo/README.md"
	git -C "$repo" add -A
	git -C "$repo" -c user.name=T -c user.email=t@t commit -qm init
}

teardown_file() {
	export BERTH_SERVER BERTH_TOKEN
	BERTH_SERVER=$(cat "$WORK/url")
	BERTH_TOKEN=$(cat "$WORK/token")
	local ws
	for ws in cw1 cw2 cw3 cw5 cw6 cw-build cw-pb cw-none cw-big1 cw-big2 cw-big3 cw-big4 cw-disk1 cw-disk2 cw-disk3; do "$BERTH" rm "$ws" >/dev/null 2>&1 || true; done
	kill "$(cat "$WORK/berthd.pid")" 2>/dev/null || true
	[ ! -f "$WORK/authserver.pid" ] || kill "$(cat "$WORK/authserver.pid")" 2>/dev/null || true
	dk 1 ps -aq --filter "label=berth.relay=$WORK/data/cluster" | while read -r c; do dk 1 rm -f "$c"; done >/dev/null 2>&1 || true
	dk 1 network ls -q --filter "label=berth.pool=$WORK/data/cluster" | while read -r n; do dk 1 network rm "$n"; done >/dev/null 2>&1 || true
	dk 1 node update --availability active berth-node1 >/dev/null 2>&1 || true
	dk 1 node update --label-rm berth.workspaces berth-node1 >/dev/null 2>&1 || true
	for n in 1 2 3; do dk 1 node update --label-rm berth.storage "berth-node$n" >/dev/null 2>&1 || true; done
	dk 1 node update --availability active berth-node2 >/dev/null 2>&1 || true
	dk 1 node update --availability active berth-node3 >/dev/null 2>&1 || true
}

setup() {
	export BERTH_SERVER BERTH_TOKEN
	BERTH_SERVER=$(cat "$WORK/url")
	BERTH_TOKEN=$(cat "$WORK/token")
}

ws_id() { "$BERTH" show "$1" --json | jq -r .id; }
# the node where workspace WS's service runs now
ws_node() { running_on "berth-$(ws_id "$1")"; }
# the overlay workspace WS's service names (berth.net)
ws_net() { dk 1 service inspect -f '{{index .Spec.Labels "berth.net"}}' "berth-$(ws_id "$1")"; }
# the overlays made ahead for this berthd, used or not
pooled() { dk 1 network ls -q --filter "label=berth.pool=$WORK/data/cluster" | wc -l; }
pooled_at_least() { [ "$(pooled)" -ge "$1" ]; }
# the names of those no service names: the pool itself, two at most
pooled_unused_names() {
	local n
	for n in $(dk 1 network ls --format '{{.Name}}' --filter "label=berth.pool=$WORK/data/cluster"); do
		[ -n "$(dk 1 service ls -q --filter "label=berth.net=$n")" ] || echo "$n"
	done
}
pooled_unused() { pooled_unused_names | wc -l; }
unused_at_least() { [ "$(pooled_unused)" -ge "$1" ]; }
# WS's git gets the credential stored in the credentials test
cred_served() {
	"$BERTH" exec "$1" -- sh -c "printf 'protocol=http\nhost=$(cat "$WORK/cred-host")\n\n' | /.berth-agent/berth-agent git-credential get" |
		grep -qx password=cluster-git-pass
}

@test "three workspaces become services pinned to the three nodes, with the repository's files" {
	local pooled_used=()
	for ws in cw1 cw2 cw3; do
		# berthd keeps two overlays made and joined ahead
		wait_until 120 "two overlays made ahead" pooled_at_least $((2 + ${#pooled_used[@]}))
		run timeout 300 "$BERTH" create "$WORK/repo" --name "$ws"
		echo "$output"
		[ "$status" -eq 0 ]
		[[ $output == *"copying the checkout"* ]]
		[[ $(ws_net "$ws") == berth-pool-* ]] && pooled_used+=("$ws")
	done
	# each took an overlay of the pool, which made new ones
	[ "${#pooled_used[@]}" = 3 ]
	wait_until 120 "the pool made up again" pooled_at_least $((2 + ${#pooled_used[@]}))
	nodes=$(for ws in cw1 cw2 cw3; do ws_node "$ws"; done | sort -u | wc -l)
	[ "$nodes" = 3 ]
	id=$(ws_id cw2)
	[[ $(dk 1 service inspect -f '{{json .Spec.TaskTemplate.Placement.Constraints}}' "berth-$id") == *'node.id=='* ]]
	[ "$(dk 1 service inspect -f '{{.Spec.EndpointSpec.Mode}}' "berth-$id")" = dnsrr ]
	# nothing of this host's is mounted: the agent comes as a Swarm config
	[[ $(dk 1 service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Mounts}}' "berth-$id") != *'"bind"'* ]]
	[[ $(dk 1 service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Configs}}' "berth-$id") == *'"ConfigName":"berth-agent-'* ]]
	run "$BERTH" exec cw2 -- sh -c 'cat README.md; pwd; id -un; hostname'
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "# on the cluster" ]
	[ "${lines[1]}" = /workspaces/repo ]
	[ "${lines[2]}" = vscode ]
	[ "${lines[3]}" = cw2 ]
}

@test "the dashboard shows an admin the nodes with their load, and each workspace's node" {
	[ -x /usr/bin/chromium ] && [ -d "$ROOT/tests/browser/node_modules/playwright-core" ] ||
		skip "no chromium or playwright-core (scripts/setup.sh, scripts/web.sh)"
	node=$(ws_node cw2)
	run timeout 120 node "$CLUSTER_DIR/fixtures/nodes-panel.mjs" "$BERTH_SERVER" cluster-admin-pass cw2 "$node"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"berth-node1"*"ready"*"active"*"manager (leader)"* ]]
}

@test "a terminal and a forwarded port work on a workspace on another node" {
	run timeout 60 "$BERTH" shell cw3 <<<'echo from-the-node-$((6*7)); exit'
	[[ $output == *"from-the-node-42"* ]]
	"$BERTH" exec cw3 -- sh -c 'setsid perl -MIO::Socket::INET -e '\''my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 8765, Listen => 5, ReuseAddr => 1) or die; while (my $c = $s->accept) { while (<$c>) { last if /^\r?$/ } print $c "HTTP/1.0 200 OK\r\n\r\nhello from " . `hostname`; close $c }'\'' </dev/null >/dev/null 2>&1 &'
	wait_until 30 "port 8765 detected" sh -c "'$BERTH' ports cw3 | grep -q '^8765 '"
	run "$BERTH" ports cw3
	# Docker's embedded DNS listener is the engine's, not the user's
	[[ $output != *"127.0.0.11"* ]]
	run curl -sS -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/w/cw3/ports/8765/"
	[ "$output" = "hello from cw3" ]
}

@test "git in a workspace on another node gets the owner's stored credential from berthd on demand, for that host only" {
	mkdir -p "$WORK/repos/private"
	git -C "$WORK/repos/private" init -q -b main
	echo "# private" >"$WORK/repos/private/README.md"
	git -C "$WORK/repos/private" add -A
	git -C "$WORK/repos/private" -c user.name=T -c user.email=t@t commit -qm init
	git -C "$WORK/repos/private" update-server-info
	# on the harness's bridge, where the nodes' containers reach this host
	port=$((20000 + RANDOM % 10000))
	python3 "$ROOT/tests/system/fixtures/authserver.py" "$port" "$WORK/repos" ada:cluster-git-pass 10.77.0.1 >/dev/null 2>&1 3>&- &
	echo $! >"$WORK/authserver.pid"
	wait_until 30 "the git server answers" sh -c "curl -s -o /dev/null http://10.77.0.1:$port/"
	url="http://10.77.0.1:$port/private/.git"
	echo "10.77.0.1:$port" >"$WORK/cred-host"
	run "$BERTH" exec cw1 -- env GIT_TERMINAL_PROMPT=0 git ls-remote "$url"
	[ "$status" -ne 0 ]
	printf 'cluster-git-pass\n' | "$BERTH" git-credentials add "http://10.77.0.1:$port" --username ada --password-stdin
	run "$BERTH" exec cw1 -- sh -c "GIT_TERMINAL_PROMPT=0 git clone -q '$url' /tmp/private && cat /tmp/private/README.md && cat /tmp/private/.git/config; env"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "# private" ]
	[[ $output != *cluster-git-pass* ]]
	# another host gets nothing; the socket is the remote user's alone
	run "$BERTH" exec cw1 -- sh -c 'printf "protocol=https\nhost=elsewhere.example\n\n" | /.berth-agent/berth-agent git-credential get'
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	run "$BERTH" exec cw1 -- sh -c 'stat -c "%a %U" /run/berth-credentials.sock; id -un'
	[ "${lines[0]}" = "600 ${lines[1]}" ]
	run "$BERTH" admin audit
	[[ $output == *"git-credential.use"* ]]
	kill "$(cat "$WORK/authserver.pid")"
}

@test "VS Code opens on a workspace on another node: its tree comes through the registry into a read-only volume there" {
	[ -x "$IDE/bin/code-server" ] && [ -n "$("$CLUSTER" registry)" ] || skip "no code-server tree or no registry in the harness"
	id=$(ws_id cw3)
	[ "$("$BERTH" show cw3 --json | jq -r .ide)" != false ]
	code=
	for _ in $(seq 1 240); do
		code=$(curl -s -o "$WORK/ide" -w '%{http_code}' -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/w/$id/ide/")
		[ "$code" = 302 ] || [ "$code" = 200 ] && break
		sleep 0.5
	done
	echo "last: $code $(head -c 300 "$WORK/ide")"
	[ "$code" = 302 ] || [ "$code" = 200 ]
	run curl -s -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/w/$id/ide/?folder=/workspaces/repo"
	[[ $output == *workbench* ]]
	# a static file of the workbench, through the same relay
	asset=$(grep -o '[^"]*/out/vs/code/browser/workbench/workbench\.js' <<<"$output" | head -1)
	asset=${asset#./}
	[ -n "$asset" ]
	run curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/w/$id/ide/$asset"
	[ "$output" = 200 ]
	# the node's copy: the workspace reads it and cannot change it
	run "$BERTH" exec cw3 -- sh -c 'test -x /.berth-ide/bin/code-server && touch /.berth-ide/x'
	[ "$status" -ne 0 ]
	[[ $output == *"Read-only file system"* ]]
	[ "$(dk 1 service inspect -f '{{range .Spec.TaskTemplate.ContainerSpec.Mounts}}{{if eq .Target "/.berth-ide"}}{{.Source}} {{.ReadOnly}}{{end}}{{end}}' "berth-$id")" = "$(dk 1 service inspect -f '{{range .Spec.TaskTemplate.ContainerSpec.Mounts}}{{if eq .Target "/.berth-ide"}}{{.Source}}{{end}}{{end}}' "berth-$id") true" ]
	# VS Code's own port is not the user's: not listed, not forwarded, not shared
	run "$BERTH" ports cw3
	[[ $output != *7881* ]]
	run curl -s -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/w/cw3/ports/7881/"
	[[ $output == *"Berth's own"* ]]
	run curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $BERTH_TOKEN" -H 'Content-Type: application/json' --data '{"visibility":"public"}' "$BERTH_SERVER/api/v1/workspaces/cw3/ports/7881/visibility"
	[ "$output" = 403 ]
	# no fill job is left behind, nor its containers
	[ -z "$(dk 1 service ls -q --filter name=berth-ide-fill)" ]
	for n in 1 2 3; do
		wait_until 30 "node $n's fill containers removed" sh -c "[ -z \"\$(docker -H unix://$("$CLUSTER" sock $n) ps -aq --filter name=berth-ide-fill)\" ]"
	done
}

@test "a node's copy of VS Code left half-filled (a fill cut short) is emptied and filled again by the next create there" {
	[ -x "$IDE/bin/code-server" ] && [ -n "$("$CLUSTER" registry)" ] || skip "no code-server tree or no registry in the harness"
	id=$(ws_id cw1)
	vol=$(dk 1 service inspect -f '{{range .Spec.TaskTemplate.ContainerSpec.Mounts}}{{if eq .Target "/.berth-ide"}}{{.Source}}{{end}}{{end}}' "berth-$id")
	[ -n "$vol" ]
	node=$(ws_node cw1)
	n=${node#berth-node}
	"$BERTH" stop cw1
	wait_until 60 "cw1's container gone from $node" sh -c "[ -z \"\$(docker -H unix://$("$CLUSTER" sock "$n") ps -aq --filter volume=$vol)\" ]"
	# the volume as a fill killed half-way leaves it: code-server there, the rest not
	docker -H "unix://$("$CLUSTER" sock "$n")" volume rm "$vol" >/dev/null
	docker -H "unix://$("$CLUSTER" sock "$n")" run --rm -v "$vol:/v" localhost/berth/base:bookworm \
		sh -c 'mkdir -p /v/bin && cp /bin/true /v/bin/code-server'
	# a new berthd, which has not filled that node yet
	restart_berthd
	run timeout 600 "$BERTH" rebuild cw1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(ws_node cw1)" = "$node" ]
	want=$(find "$IDE" -type f | wc -l)
	run "$BERTH" exec cw1 -- sh -c 'find /.berth-ide -type f | wc -l'
	[ "$output" = "$want" ]
	grep -q "VS Code's copy in the volume $vol on node .* was not whole: emptied, and filled again" "$WORK/berthd.log"
}

@test "stop leaves no task, start brings the workspace back on its node with its files" {
	node=$(ws_node cw1)
	"$BERTH" exec cw1 -- sh -c 'echo kept > notes.txt'
	run "$BERTH" stop cw1
	[ "$status" -eq 0 ]
	[ -z "$(running_on "berth-$(ws_id cw1)")" ]
	[ "$(dk 1 service inspect -f '{{.Spec.Mode.Replicated.Replicas}}' "berth-$(ws_id cw1)")" = 0 ]
	run "$BERTH" start cw1
	[ "$status" -eq 0 ]
	[ "$(ws_node cw1)" = "$node" ]
	run "$BERTH" exec cw1 -- cat notes.txt
	[ "$output" = kept ]
}

@test "rebuild makes the service anew on the same node and keeps the files the user changed" {
	node=$(ws_node cw1)
	id=$(ws_id cw1)
	old=$(dk 1 service inspect -f '{{.ID}}' "berth-$id")
	"$BERTH" exec cw1 -- sh -c 'echo edited > README.md; echo mine > untracked.txt'
	run timeout 300 "$BERTH" rebuild cw1
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"files in the workspace's volume on its node are kept"* ]]
	[[ $output != *"copying the checkout"* ]]
	[ "$(dk 1 service inspect -f '{{.ID}}' "berth-$id")" != "$old" ]
	[ "$(ws_node cw1)" = "$node" ]
	[ "$("$BERTH" show cw1 --json | jq -r .node)" = "$node" ]
	run "$BERTH" exec cw1 -- sh -c 'cat README.md untracked.txt; git status --porcelain; stat -c %U untracked.txt'
	echo "$output"
	[ "${lines[0]}" = edited ]
	[ "${lines[1]}" = mine ]
	[[ $output == *$'\n M README.md\n'* ]]
	[[ $output == *$'\n?? untracked.txt\n'* ]]
	[[ $output != *berth-checkout* ]]
	[ "${lines[-1]}" = vscode ]
	"$BERTH" exec cw1 -- sh -c 'git checkout -q README.md && rm untracked.txt'
}

@test "each agent takes only its own workspace's key, through the relay" {
	a=$(ws_id cw1)
	b=$(ws_id cw2)
	task=$(dk 1 service ps -q --filter desired-state=running "berth-$a" | head -1)
	ipa=$(dk 1 inspect -f '{{range .NetworksAttachments}}{{if eq .Network.Spec.Name "'"$(ws_net cw1)"'"}}{{index .Addresses 0}}{{end}}{{end}}' "$task")
	ipa=${ipa%/*}
	[ -n "$ipa" ]
	relay=$WORK/data/cluster/relay/agent.sock
	run timeout 60 python3 "$CLIENT" "$relay" "$ipa" "$WORK/data/run/$a/agent.key" "$a" true
	[ "$status" -eq 0 ]
	run timeout 60 python3 "$CLIENT" "$relay" "$ipa" "$WORK/data/run/$b/agent.key" "$a" true
	[ "$status" -eq 3 ]
	run timeout 60 python3 "$CLIENT" "$relay" "$ipa" "$WORK/data/run/$b/agent.key" "$b" true
	[ "$status" -eq 3 ]
	# the key is in that one service's task only
	[[ $(dk 1 service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Secrets}}' "berth-$a") == *"berth-$a-agent"* ]]
	[[ $(dk 1 service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Secrets}}' "berth-$b") != *"berth-$a-agent"* ]]
}

@test "a berthd restart finds its workspaces running and reachable" {
	# the overlays made ahead and not used yet
	ahead=$(pooled_unused_names)
	[ -n "$ahead" ]
	restart_berthd
	[ "$("$BERTH" show cw2 --json | jq -r .state)" = running ]
	run "$BERTH" exec cw2 -- cat README.md
	[ "$output" = "# on the cluster" ]
	# git's credentials come from the new berthd: it opened its sessions again
	wait_until 60 "cw1's credentials served again" cred_served cw1
	# the new berthd removed those (never used again) and made its own
	for n in $ahead; do
		wait_until 60 "overlay $n removed" sh -c "! docker -H unix://$("$CLUSTER" sock 1) network inspect $n"
	done
	wait_until 120 "two overlays made ahead again" unused_at_least 2
}

@test "a node that goes down shows its workspace unavailable; the others work on; it comes back with its files" {
	ws=
	for w in cw1 cw2 cw3; do [ "$(ws_node "$w")" = berth-node3 ] && ws=$w; done
	[ -n "$ws" ]
	other=$([ "$ws" = cw2 ] && echo cw1 || echo cw2)
	[ "$("$BERTH" show "$ws" --json | jq -r .node)" = berth-node3 ]
	"$BERTH" exec "$ws" -- sh -c 'echo kept-on-node3 > fault.txt'
	"$CLUSTER" node-stop 3
	wait_until 120 "$ws unavailable" sh -c "[ \"\$('$BERTH' show $ws --json | jq -r .state)\" = unavailable ]"
	run "$BERTH" events "$ws"
	[[ $output == *"its node berth-node3 is down"* ]]
	run "$BERTH" exec "$other" -- cat README.md
	[ "$output" = "# on the cluster" ]
	run "$BERTH" start "$ws"
	[ "$status" -ne 0 ]
	[[ $output == *"its node is down"* ]]
	"$CLUSTER" node-start 3
	wait_until 240 "$ws running again" sh -c "[ \"\$('$BERTH' show $ws --json | jq -r .state)\" = running ]"
	run "$BERTH" exec "$ws" -- cat fault.txt
	[ "$output" = kept-on-node3 ]
	wait_until 60 "$ws's credentials served on its new task" cred_served "$ws"
	run "$BERTH" events "$ws"
	[[ $output == *"its node berth-node3 is back"* ]]
}

@test "a paused or drained node takes no new workspace; a drained node's workspaces wait for it" {
	ws=
	for w in cw1 cw2 cw3; do [ "$(ws_node "$w")" = berth-node3 ] && ws=$w; done
	[ -n "$ws" ]
	run "$BERTH" admin node pause berth-node2
	[ "$status" -eq 0 ]
	run "$BERTH" admin node drain berth-node3
	[ "$status" -eq 0 ]
	wait_until 120 "$ws unavailable on the drained node" sh -c "[ \"\$('$BERTH' show $ws --json | jq -r .state)\" = unavailable ]"
	run timeout 300 "$BERTH" create "$WORK/repo" --name cw5
	[ "$status" -eq 0 ]
	[ "$("$BERTH" show cw5 --json | jq -r .node)" = berth-node1 ]
	"$BERTH" admin node activate berth-node2
	"$BERTH" admin node activate berth-node3
	wait_until 240 "$ws running again" sh -c "[ \"\$('$BERTH' show $ws --json | jq -r .state)\" = running ]"
	run "$BERTH" exec "$ws" -- cat README.md
	[ "$output" = "# on the cluster" ]
	"$BERTH" rm cw5
}

@test "berthd killed with SIGKILL in the middle of a create: restarted, it makes the workspace whole, once" {
	"$BERTH" create "$WORK/repo" --name cw6 --no-wait >/dev/null
	id=$(ws_id cw6)
	wait_until 120 "cw6's service exists" dk 1 service inspect "berth-$id"
	kill -9 "$(cat "$WORK/berthd.pid")"
	start_berthd
	BERTH_SERVER=$(cat "$WORK/url")
	wait_until 240 "cw6 running after the restart" sh -c "[ \"\$('$BERTH' show cw6 --json | jq -r .state)\" = running ]"
	run "$BERTH" exec cw6 -- cat README.md
	[ "$output" = "# on the cluster" ]
	[ "$(dk 1 service ls -q --filter "label=berth.workspace=$id" | wc -l)" = 1 ]
	# one overlay: the one its service names (made ahead, or berth-ws-<id>)
	net=$(ws_net cw6)
	dk 1 network inspect "$net" >/dev/null
	[[ $net == berth-pool-* ]] || [ "$net" = "berth-ws-$id" ]
	"$BERTH" rm cw6
	wait_until 60 "overlay $net removed" sh -c "! docker -H unix://$("$CLUSTER" sock 1) network inspect $net"
}

@test "hostRequirements are reserved on the node: each node takes as many as it has room for, then a clear refusal" {
	repo=$WORK/big-repo
	mkdir -p "$repo/.devcontainer"
	printf '{"image": "localhost/berth/base:bookworm", "hostRequirements": {"cpus": 2, "memory": "1gb"}}\n' >"$repo/.devcontainer/devcontainer.json"
	git -C "$repo" init -q -b main
	git -C "$repo" add -A
	git -C "$repo" -c user.name=T -c user.email=t@t commit -qm init
	for ws in cw-big1 cw-big2 cw-big3; do
		run timeout 300 "$BERTH" create "$repo" --name "$ws"
		echo "$output"
		[ "$status" -eq 0 ]
	done
	# each node has two CPUs: one such workspace fills it
	[ "$(for ws in cw-big1 cw-big2 cw-big3; do "$BERTH" show "$ws" --json | jq -r .node; done | sort -u | wc -l)" = 3 ]
	id=$(ws_id cw-big2)
	[ "$(dk 1 service inspect -f '{{.Spec.TaskTemplate.Resources.Reservations.NanoCPUs}}' "berth-$id")" = 2000000000 ]
	run timeout 300 "$BERTH" create "$repo" --name cw-big4
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *"no node of the Swarm has room for this workspace's 2 CPUs and 1.0 GiB"*"berth-node1 has 0 CPUs"*"berth-node2 has 0 CPUs"*"berth-node3 has 0 CPUs"* ]]
	"$BERTH" rm cw-big4
	# a stopped one keeps its room on its node: its files are there
	"$BERTH" stop cw-big1
	run timeout 300 "$BERTH" create "$repo" --name cw-big4
	[ "$status" -ne 0 ]
	[[ $output == *"no node of the Swarm has room"* ]]
	"$BERTH" rm cw-big4
	"$BERTH" rm cw-big1
	run timeout 300 "$BERTH" create "$repo" --name cw-big4
	[ "$status" -eq 0 ]
	for ws in cw-big2 cw-big3 cw-big4; do "$BERTH" rm "$ws"; done
}

@test "hostRequirements.storage is placed on by the disk an admin gives a node (berth.storage); a node that does not say is not held to it" {
	repo=$WORK/disk-repo
	mkdir -p "$repo/.devcontainer"
	printf '{"image": "localhost/berth/base:bookworm", "hostRequirements": {"storage": "8gb"}}\n' >"$repo/.devcontainer/devcontainer.json"
	git -C "$repo" init -q -b main
	git -C "$repo" add -A
	git -C "$repo" -c user.name=T -c user.email=t@t commit -qm init
	# a label that is not a size is refused, and nothing changes
	run "$BERTH" admin node label berth-node2 berth.storage=lots
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *"berth.storage 'lots'"*"a size such as 500gb"* ]]
	[ -z "$(dk 1 node inspect --format '{{index .Spec.Labels "berth.storage"}}' berth-node2)" ]
	"$BERTH" admin node label berth-node1 berth.storage=4gb
	"$BERTH" admin node label berth-node2 berth.storage=10gb
	"$BERTH" admin node label berth-node3 berth.storage=4gb
	[ "$("$BERTH" admin nodes --json | jq -r '.nodes[] | select(.name == "berth-node2") | .storage_bytes')" = $((10 << 30)) ]
	# only node2 has 8 GiB of disk for it (not the first by name, nor the least loaded)
	run timeout 300 "$BERTH" create "$repo" --name cw-disk1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$("$BERTH" show cw-disk1 --json | jq -r .node)" = berth-node2 ]
	# node2 has 2 GiB left of its 10, and a label set past berth that is not a
	# size gives node3 none: a second one fits nowhere, and the refusal says why
	dk 1 node update --label-add berth.storage=lots berth-node3 >/dev/null
	run timeout 300 "$BERTH" create "$repo" --name cw-disk2
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *"no node of the Swarm has room for this workspace's 8.0 GiB of disk (hostRequirements"*"berth-node1 has"*"and 4.0 GiB of disk (berth.storage)"*"berth-node2 has"*"and 2.0 GiB of disk (berth.storage)"*"berth-node3 has"*"no disk: its berth.storage 'lots' is not a size"* ]]
	"$BERTH" rm cw-disk2
	# a node that says nothing of its disk takes it
	dk 1 node update --label-rm berth.storage berth-node3 >/dev/null
	run timeout 300 "$BERTH" create "$repo" --name cw-disk3
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$("$BERTH" show cw-disk3 --json | jq -r .node)" = berth-node3 ]
	for ws in cw-disk1 cw-disk3; do "$BERTH" rm "$ws"; done
	for n in 1 2; do "$BERTH" admin node label "berth-node$n" berth.storage-; done
}

@test "a Dockerfile and a feature are built on the manager, pushed to the registry, and run on a node" {
	[ -n "$("$CLUSTER" registry)" ] || skip "no registry in the harness"
	repo=$WORK/build-repo
	mkdir -p "$repo/.devcontainer"
	printf '{"build": {"dockerfile": "Dockerfile"}, "features": {"./greet": {}}}\n' >"$repo/.devcontainer/devcontainer.json"
	# an image whose /run anyone may write: its agent offers no credential socket there
	printf 'FROM localhost/berth/base:bookworm\nRUN echo built-for-the-cluster > /etc/berth-built && chmod 1777 /run\n' >"$repo/.devcontainer/Dockerfile"
	mkdir -p "$repo/.devcontainer/greet"
	printf '{"id": "greet", "version": "1.0.0"}\n' >"$repo/.devcontainer/greet/devcontainer-feature.json"
	printf '#!/bin/sh\necho feature-on-the-cluster > /etc/berth-feature\n' >"$repo/.devcontainer/greet/install.sh"
	git -C "$repo" init -q -b main
	git -C "$repo" add -A
	git -C "$repo" -c user.name=T -c user.email=t@t commit -qm init
	run timeout 300 "$BERTH" create "$repo" --name cw-build
	echo "$output"
	[ "$status" -eq 0 ]
	id=$(ws_id cw-build)
	image=$(dk 1 service inspect -f '{{.Spec.TaskTemplate.ContainerSpec.Image}}' "berth-$id")
	[[ $image == "$("$CLUSTER" registry)/berth/features-"*"@sha256:"* ]]
	run "$BERTH" exec cw-build -- cat /etc/berth-built /etc/berth-feature
	[ "${lines[0]}" = built-for-the-cluster ]
	[ "${lines[1]}" = feature-on-the-cluster ]
	# the node pulled it: the registry holds it
	run curl -sf "http://$("$CLUSTER" registry)/v2/_catalog"
	[[ $output == *'"berth/features-'* ]]
	# the refusal is logged once and not asked again every few seconds
	refusal="workspace $id: git inside gets no credentials from berthd until it is rebuilt: its agent says: cannot offer git credentials: /run is not root's alone"
	wait_until 30 "the agent's refusal logged" grep -qF "$refusal" "$WORK/berthd.log"
	run "$BERTH" exec cw-build -- sh -c 'test ! -e /run/berth-credentials.sock && echo none'
	[ "$output" = none ]
	sleep 7
	[ "$(grep -cF "$refusal" "$WORK/berthd.log")" = 1 ]
	"$BERTH" rm cw-build
}

@test "a prebuild runs on the manager's node; a workspace from it on another node has what onCreateCommand wrote, and fetches the commits since" {
	[ -n "$("$CLUSTER" registry)" ] || skip "no registry in the harness"
	repo=$WORK/pb-repo
	mkdir -p "$repo/.devcontainer"
	cat >"$repo/.devcontainer/devcontainer.json" <<-'JSON'
		{
		  "image": "localhost/berth/base:bookworm",
		  "onCreateCommand": "echo ONCREATE-RAN; echo built >$HOME/oncreate.txt; echo made >>oncreate.log",
		  "updateContentCommand": "git rev-parse HEAD >>update.log"
		}
	JSON
	git -C "$repo" init -q -b main
	git -C "$repo" add -A
	git -C "$repo" -c user.name=T -c user.email=t@t commit -qm init
	# the manager takes no workspaces, and still makes the prebuild: its engine commits it
	"$BERTH" admin node label berth-node1 berth.workspaces=no >/dev/null
	run timeout 600 "$BERTH" prebuild "$repo" --branch main
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *ONCREATE-RAN* ]]
	[[ $output == *"copying the checkout from the prebuild's node"* ]]
	pb=$("$BERTH" prebuilds --json | jq -r '.[0].id')
	[ "$("$BERTH" prebuilds --json | jq -r '.[0].state')" = ready ]
	# nothing of the prebuild runs on, or is left on, the cluster
	[ -z "$(dk 1 service ls -q --filter "label=berth.workspace=$pb")" ]
	# the branch moves on after the prebuild
	echo later >"$repo/later.txt"
	git -C "$repo" add -A
	git -C "$repo" -c user.name=T -c user.email=t@t commit -qm later
	run timeout 300 "$BERTH" create "$repo" --branch main --name cw-pb
	"$BERTH" admin node label berth-node1 berth.workspaces- >/dev/null
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"starting from prebuild $pb"* ]]
	[[ $output == *"copying the prebuild's checkout"* ]]
	[[ $output != *ONCREATE-RAN* ]]
	[ "$(ws_node cw-pb)" != berth-node1 ]
	id=$(ws_id cw-pb)
	[[ $(dk 1 service inspect -f '{{.Spec.TaskTemplate.ContainerSpec.Image}}' "berth-$id") == "$("$CLUSTER" registry)/berth/prebuild-$pb@sha256:"* ]]
	# what onCreateCommand wrote, outside the checkout (the image) and in it
	# (the prebuild's files); updateContentCommand ran again for the new commit
	run "$BERTH" exec cw-pb -- sh -c 'cat ~/oncreate.txt; wc -l <oncreate.log; wc -l <update.log; cat later.txt; git rev-parse HEAD'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = built ]
	[ "${lines[1]}" = 1 ]
	[ "${lines[2]}" = 2 ]
	[ "${lines[3]}" = later ]
	[ "${lines[4]}" = "$(git -C "$repo" rev-parse HEAD)" ]
	"$BERTH" rm cw-pb
	run "$BERTH" prebuild rm "$pb"
	[ "$status" -eq 0 ]
	[ ! -e "$WORK/data/workspaces/$pb" ]
	# the manager keeps neither of the image's names
	[ -z "$(dk 1 image ls -q "localhost/berth/prebuild-$pb")" ]
	[ -z "$(dk 1 image ls -q "$("$CLUSTER" registry)/berth/prebuild-$pb")" ]
}

@test "the manager's node paused, or no node left to workspaces: a create fails at once with the reason and leaves nothing" {
	"$BERTH" admin node pause berth-node1 >/dev/null
	SECONDS=0
	run timeout 300 "$BERTH" create "$WORK/repo" --name cw-none
	took=$SECONDS
	"$BERTH" admin node activate berth-node1 >/dev/null
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *"the manager's node berth-node1 is paused"*"label it berth.workspaces=no"* ]]
	# not Swarm's 20 s wait for an attachment that cannot come
	[ "$took" -lt 15 ]
	id=$(ws_id cw-none)
	[ -z "$(dk 1 service ls -q --filter "label=berth.workspace=$id")" ]
	[ -z "$(dk 1 network ls -q --filter "name=berth-ws-$id")" ]
	[ "$(pooled_unused)" -le 2 ]
	! dk 1 secret inspect "berth-$id-agent" >/dev/null 2>&1
	"$BERTH" rm cw-none
	# the label keeps workspaces off an active node
	"$BERTH" admin node label berth-node1 berth.workspaces=no >/dev/null
	"$BERTH" admin node pause berth-node2 >/dev/null
	run timeout 300 "$BERTH" create "$WORK/repo" --name cw-none
	[ "$status" -eq 0 ]
	[ "$("$BERTH" show cw-none --json | jq -r .node)" = berth-node3 ]
	"$BERTH" rm cw-none
	"$BERTH" admin node pause berth-node3 >/dev/null
	run timeout 300 "$BERTH" create "$WORK/repo" --name cw-none
	"$BERTH" admin node activate berth-node2 >/dev/null
	"$BERTH" admin node activate berth-node3 >/dev/null
	"$BERTH" admin node label berth-node1 berth.workspaces- >/dev/null
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *"no node of the Swarm takes workspaces now"* ]]
	id=$(ws_id cw-none)
	"$BERTH" rm cw-none
	[ -z "$(dk 1 network ls -q --filter "name=berth-ws-$id")" ]
	[ "$(pooled_unused)" -le 2 ]
	! dk 1 secret inspect "berth-$id-agent" >/dev/null 2>&1
}

@test "rm removes the service, its secret and its overlay, and empties its files on the node" {
	id=$(ws_id cw3)
	node=$(ws_node cw3)
	net=$(ws_net cw3)
	"$BERTH" exec cw3 -- sh -c 'mkdir -p deep/er && echo secret > deep/er/notes.txt && ln -s / deep/root'
	dir=$(dk "${node#berth-node}" volume inspect -f '{{.Mountpoint}}' "berth-$id-files")
	[ -e "$dir/deep/er/notes.txt" ]
	run "$BERTH" rm cw3
	echo "$output"
	[ "$status" -eq 0 ]
	# nothing of the user's is left on the node (the symlink was not followed)
	[ -z "$(ls -A "$dir")" ]
	[ -d /etc ] && [ -n "$(ls -A /etc)" ]
	[ -z "$(dk 1 service ls -q --filter name=berth-wipe-)" ]
	# nor its container on the node, which would hold the volume
	wait_until 30 "the wipe job's container removed" sh -c "[ -z \"\$(docker -H unix://$("$CLUSTER" sock "${node#berth-node}") ps -aq --filter name=berth-wipe-$id)\" ]"
	! dk 1 service inspect "berth-$id" >/dev/null 2>&1
	! dk 1 secret inspect "berth-$id-agent" >/dev/null 2>&1
	wait_until 60 "overlay $net removed" sh -c "! docker -H unix://$("$CLUSTER" sock 1) network inspect $net"
	[ ! -e "$WORK/data/run/$id" ]
}
