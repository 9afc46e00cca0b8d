#!/usr/bin/env bats
# Creating workspaces from every kind of repo location, and reading them back.

load helpers

setup_file() {
	start_berthd
}

teardown_file() {
	stop_berthd
}

setup() {
	load_berthd_env
}

@test "health answers with the engine reachable" {
	run curl -sf "$BERTH_SERVER/api/v1/health"
	assert_success
	assert_output_contains '"engine":"ok"'
}

@test "create from a local path streams its log and ends running" {
	repo=$(make_repo local)
	name=$(ws_name)
	run_berth create "$repo" --branch main --name "$name"
	assert_success
	assert_output_contains "cloning"
	assert_output_contains "is running"
	run_berth exec "$name" -- git log -1 --format=%s
	assert_success
	assert_equal "$output" "initial"
}

@test "commands run as the remote user in the workspace folder" {
	repo=$(make_repo whoami)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run_berth exec "$name" -- sh -c 'echo "$(id -un) $(pwd)"; touch probe'
	assert_success
	assert_equal "$output" "vscode /workspaces/whoami"
	# the checkout belongs to the remote user on the host too
	run stat -c %u "$BERTH_DATA/workspaces/$(ws_field "$name" id)/whoami/probe"
	assert_equal "$output" "1000"
	run stat -c %u "$BERTH_DATA/workspaces/$(ws_field "$name" id)/whoami/README.md"
	assert_equal "$output" "1000"
}

@test "exec passes the exit code, stdout and stderr through" {
	repo=$(make_repo exitcode)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run "$BERTH" exec "$name" -- sh -c 'echo out; echo err >&2; exit 42'
	assert_equal "$status" 42
	assert_output_contains "out"
	run sh -c "'$BERTH' exec '$name' -- sh -c 'echo err >&2' 2>/dev/null"
	assert_equal "$output" ""
}

@test "show --json has every documented field" {
	repo=$(make_repo fields)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run "$BERTH" show "$name" --json
	assert_success
	for f in id name state repo branch commit image container_id workspace_folder error; do
		echo "$output" | jq -e "has(\"$f\")" >/dev/null || { echo "missing $f"; return 1; }
	done
	assert_equal "$(echo "$output" | jq -r .state)" running
	assert_equal "$(echo "$output" | jq -r .image)" "localhost/berth/base:bookworm"
	assert_equal "$(echo "$output" | jq -r .commit)" "$(git -C "$repo" rev-parse HEAD)"
	assert_equal "$(echo "$output" | jq -r .workspace_folder)" "/workspaces/fields"
	# by id as well as by name
	id=$(echo "$output" | jq -r .id)
	run_berth show "$id" --json
	assert_success
	assert_equal "$(echo "$output" | jq -r .name)" "$name"
}

@test "ls lists workspaces, also as JSON" {
	repo=$(make_repo listing)
	name=$(ws_name)
	run_berth create "$repo" --name "$name" --no-wait
	assert_success
	run_berth ls
	assert_success
	assert_output_contains "$name"
	run_berth ls --json
	assert_success
	echo "$output" | jq -e --arg n "$name" 'map(select(.name == $n)) | length == 1'
	wait_state "$name" running failed
}

@test "create checks out a given commit" {
	repo=$(make_repo commits)
	first=$(git -C "$repo" rev-parse HEAD)
	commit_file "$repo" second.txt two "second"
	name=$(ws_name)
	run_berth create "$repo" --commit "$first" --name "$name"
	assert_success
	run_berth exec "$name" -- git rev-parse HEAD
	assert_equal "$output" "$first"
	run_berth exec "$name" -- test -e second.txt
	assert_failure
	# an abbreviated commit works too
	name2=$(ws_name)
	run_berth create "$repo" --commit "${first:0:8}" --name "$name2"
	assert_success
	assert_equal "$(ws_field "$name2" commit)" "$first"
}

@test "create checks out a pull-request ref" {
	repo=$(make_repo pulls)
	git -C "$repo" checkout -q -b feature
	commit_file "$repo" feature.txt feature "feature work"
	pr=$(git -C "$repo" rev-parse HEAD)
	git -C "$repo" update-ref refs/pull/7/head "$pr"
	git -C "$repo" checkout -q main
	name=$(ws_name)
	run_berth create "$repo" --ref refs/pull/7/head --name "$name"
	assert_success
	run_berth exec "$name" -- cat feature.txt
	assert_success
	assert_equal "$output" "feature"
}

@test "create clones over git:// from git daemon, with the full history, through the server's mirror" {
	repo=$(make_repo served)
	for i in 1 2 3; do commit_file "$repo" "f$i" "$i" "commit $i"; done
	# git daemon exits when its port is taken: another is tried
	bg_on_free_port 'git ls-remote git://127.0.0.1:{port}/served' \
		git daemon --reuseaddr --export-all --base-path="$BATS_FILE_TMPDIR/repos" \
		--listen=127.0.0.1 --port={port} "$BATS_FILE_TMPDIR/repos"
	name=$(ws_name)
	run_berth create "git://127.0.0.1:$PORT/served" --branch main --name "$name"
	assert_success
	# fetched by berthd into its mirror: no git of the host ever runs on a
	# .git the workspace could have changed
	run_berth exec "$name" -- git rev-list --count HEAD
	assert_equal "$output" 4
	run_berth exec "$name" -- git remote get-url origin
	assert_equal "$output" "git://127.0.0.1:$PORT/served"
}

@test "create clones over dumb http:// by falling back to a full clone" {
	repo=$(make_repo dumb)
	git -C "$repo" update-server-info
	bg_on_free_port 'curl -sf http://127.0.0.1:{port}/dumb/.git/HEAD' \
		python3 -m http.server --bind 127.0.0.1 --directory "$BATS_FILE_TMPDIR/repos" {port}
	name=$(ws_name)
	run_berth create "http://127.0.0.1:$PORT/dumb/.git" --name "$name"
	assert_success
	run_berth exec "$name" -- sh -c 'pwd; cat README.md'
	assert_equal "$output" "/workspaces/dumb
# dumb"
}

@test "two workspaces of the same repo and branch are independent" {
	repo=$(make_repo twins)
	a=$(ws_name)
	b=$(ws_name)
	run_berth create "$repo" --branch main --name "$a"
	assert_success
	run_berth create "$repo" --branch main --name "$b"
	assert_success
	"$BERTH" exec "$a" -- sh -c 'echo only-a > mine.txt'
	run_berth exec "$b" -- test -e mine.txt
	assert_failure
	run_berth stop "$a"
	assert_success
	assert_equal "$(ws_field "$b" state)" running
	run_berth exec "$b" -- true
	assert_success
}

@test "a workspace cannot see the engine socket or another workspace's files" {
	repo=$(make_repo isolated)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run_berth exec "$name" --user root -- ls /workspaces
	assert_success
	assert_equal "$output" "isolated"
	run_berth exec "$name" --user root -- sh -c 'find / -xdev -name "*.sock" -type s 2>/dev/null; ls /.berth'
	assert_success
	[[ "$output" != *podman* ]]
	[[ "$output" != *docker* ]]
	# the agent binary is mounted read-only
	run_berth exec "$name" --user root -- sh -c 'echo x > /.berth-agent/berth-agent'
	assert_failure
}
