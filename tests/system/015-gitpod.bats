#!/usr/bin/env bats
# A repository with only a .gitpod.yml: its image, its tasks (init once at
# create, before + command at every start), its ports, and `berth config`'s
# view of the translation.

load helpers
bats_require_minimum_version 1.5.0

GITPOD_YML='image: localhost/berth/base:bookworm
tasks:
  - name: server
    before: export GREETING=hello
    init: echo "$GREETING from init in $PWD" >> init-ran.txt
    command: |
      echo "$GREETING" >> start-ran.txt
      exec perl httpd.pl 8301 127.0.0.1
    env:
      WHO: "the task'"'"'s env"
  - name: env
    command: echo "$WHO" > env-seen.txt
    env:
      WHO: "the task'"'"'s env"
ports:
  - port: 8301
    name: web
    onOpen: ignore
  - port: 8302
    onOpen: ignore-completely
vscode:
  extensions:
    - ms-python.python
imgae: a typo
'

setup_file() {
	start_berthd
	load_berthd_env
	repo=$BATS_FILE_TMPDIR/repos/gitpod
	mkdir -p "$repo"
	git -C "$repo" init -q -b main
	printf '%s' "$GITPOD_YML" >"$repo/.gitpod.yml"
	cp "$BATS_TEST_DIRNAME/fixtures/httpd.pl" "$repo/"
	git -C "$repo" add -A
	git -C "$repo" -c user.name=T -c user.email=t@t commit -qm gitpod
	# the server task serves for ever, in its terminal: create does not wait for it
	timeout 300 "$BERTH" create "$repo" --name gitpod-ws >/dev/null
}

teardown_file() {
	stop_berthd
}

setup() {
	load_berthd_env
}

ports() {
	curl -s -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/workspaces/gitpod-ws/ports"
}

wait_for_port() { # wait_for_port JQ_FILTER: until the ports answer satisfies it
	local i out
	for i in $(seq 1 150); do
		out=$(ports)
		jq -e "$1" <<<"$out" >/dev/null && return 0
		sleep 0.2
	done
	echo "never: $1; last: $out" >&2
	return 1
}

@test "a .gitpod.yml repository: its image is used and init ran once, after before, in the checkout" {
	wait_state gitpod-ws running
	assert_equal "$(ws_field gitpod-ws image)" localhost/berth/base:bookworm
	assert_equal "$(ws_field gitpod-ws devcontainer_path)" .gitpod.yml
	run_berth logs gitpod-ws
	assert_output_contains "using configuration '.gitpod.yml'"
	assert_output_contains "running updateContentCommand.server"
	run_berth exec gitpod-ws -- cat init-ran.txt
	assert_success
	assert_equal "$output" "hello from init in /workspaces/gitpod"
}

@test "a task's command runs at start with its env, and its port has the .gitpod.yml name" {
	wait_for_port '.ports[] | select(.port == 8301) | .listening == true and .label == "web"'
	assert_equal "$(ports | jq -r '.ports[] | select(.port == 8301) | .on_auto_forward')" silent
	# ignore-completely: not offered before anything listens
	assert_equal "$(ports | jq '[.ports[] | select(.port == 8302)] | length')" 0
	run_berth ports gitpod-ws
	assert_success
	assert_output_contains web
	run_berth exec gitpod-ws -- cat env-seen.txt
	assert_equal "$output" "the task's env"
	id=$(ws_field gitpod-ws id)
	run curl -s -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/w/$id/ports/8301/hello"
	assert_output_contains hello
}

@test "each task runs in a named terminal that berth shell --task attaches to; it stays a shell" {
	run_berth show gitpod-ws --json
	jq -e '[.task_terminals[] | select(.running) | .name] | sort == ["env", "server"]' <<<"$output"
	# env's command is done: its terminal shows that, and is a shell now
	run bash -c "echo 'echo in-task-\$((6*7)); exit 5' | timeout 60 '$BERTH' shell gitpod-ws --task env"
	assert_equal "$status" 5
	assert_output_contains "the task ended with status 0"
	assert_output_contains in-task-42
	run_berth shell gitpod-ws --task env </dev/null
	assert_failure
	assert_output_contains "no running task 'env' (its tasks: server, env)"
	run_berth shell gitpod-ws --task nope </dev/null
	assert_failure
	assert_output_contains "no running task 'nope'"
	run_berth show gitpod-ws --json
	jq -e '[.task_terminals[] | select(.running) | .name] == ["server"]' <<<"$output"
}

@test "berth config prints a .gitpod.yml repository's translation and what it ignored" {
	repo=$BATS_FILE_TMPDIR/repos/gitpod
	run -0 --separate-stderr "$BERTH" config "$repo"
	jq -e '.image == "localhost/berth/base:bookworm"' <<<"$output"
	jq -e '.portsAttributes["8301"] == {"label": "web", "onAutoForward": "silent"}' <<<"$output"
	jq -e '.forwardPorts == [8301]' <<<"$output"
	jq -e '.customizations.vscode == [{"extensions": ["ms-python.python"]}]' <<<"$output"
	jq -e '.updateContentCommands[0].server[4] | contains("export GREETING=hello\necho")' <<<"$output"
	jq -e '.customizations.berth[0].tasks | keys == ["env", "server"]' <<<"$output"
	jq -e '(.postStartCommands // []) | length == 0' <<<"$output"
	[[ "$stderr" == *"'.gitpod.yml' line 24, column 1: unknown key \"imgae\" ignored"* ]]
	[[ "$stderr" == *"read from '.gitpod.yml'"* ]]
	run -0 --separate-stderr "$BERTH" config "$repo" --json
	jq -e '.berthGitpod.file == ".gitpod.yml" and (.berthGitpod.warnings | length) == 1' <<<"$output"
}

@test "a restart runs before and command again, not init" {
	run_berth stop gitpod-ws
	assert_success
	run_berth start gitpod-ws --no-wait
	assert_success
	wait_state gitpod-ws running
	local i
	for i in $(seq 1 150); do
		[ "$("$BERTH" exec gitpod-ws -- cat start-ran.txt 2>/dev/null | wc -l)" -ge 2 ] && break
		sleep 0.2
	done
	run_berth exec gitpod-ws -- cat init-ran.txt start-ran.txt
	assert_equal "$output" "hello from init in /workspaces/gitpod
hello
hello"
	wait_for_port '.ports[] | select(.port == 8301) | .listening == true'
}

@test "after berthd is killed, the tasks' terminals are started again (and only once)" {
	wait_for_port '.ports[] | select(.port == 8301) | .listening == true'
	old=$("$BERTH" exec gitpod-ws -- pgrep -x perl)
	[ -n "$old" ]
	restart_berthd
	load_berthd_env
	local i out=
	for i in $(seq 1 150); do
		out=$(curl -s -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/workspaces/gitpod-ws")
		jq -e '[.task_terminals[] | select(.running)] | length == 2' <<<"$out" >/dev/null && break
		sleep 0.2
	done
	jq -e '[.task_terminals[] | select(.running) | .name] | sort == ["env", "server"]' <<<"$out"
	wait_for_port '.ports[] | select(.port == 8301) | .listening == true'
	id=$(ws_field gitpod-ws id)
	run curl -s -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/w/$id/ports/8301/hello"
	assert_output_contains hello
	# the server the task ran before berthd died went with its terminal: the
	# one that answers is the new task's
	run_berth exec gitpod-ws -- pgrep -x perl
	assert_success
	[ "$output" != "$old" ] && [ "$(wc -l <<<"$output")" -eq 1 ]
}

@test "a broken .gitpod.yml fails the create, naming line and column" {
	repo=$BATS_FILE_TMPDIR/repos/broken-gitpod
	mkdir -p "$repo"
	git -C "$repo" init -q -b main
	printf 'image: localhost/berth/base:bookworm\ntasks:\n  - init: [unclosed\n' >"$repo/.gitpod.yml"
	git -C "$repo" add -A
	git -C "$repo" -c user.name=T -c user.email=t@t commit -qm broken
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_failure
	assert_output_contains "'.gitpod.yml' line 4, column 1:"
	assert_equal "$(ws_field "$name" state)" failed
	run_berth config "$repo"
	assert_failure
	assert_output_contains "'.gitpod.yml' line 4, column 1:"
}
