#!/usr/bin/env bats
# Bad input gets a clear error, loses nothing, and leaves no container behind.

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

# No container of this berthd may outlive a failed create.
assert_no_container_for() {
	local id
	id=$(ws_field "$1" id)
	run podman ps -a -q --filter "name=^berth-$id\$"
	assert_equal "$output" ""
}

@test "a repository that does not exist fails with the reason" {
	name=$(ws_name)
	run_berth create "$BATS_FILE_TMPDIR/no-such-repo" --name "$name"
	assert_failure
	assert_output_contains "does not exist"
	assert_equal "$(ws_field "$name" state)" failed
	assert_no_container_for "$name"
}

@test "an unreachable remote fails with git's reason" {
	name=$(ws_name)
	run_berth create "git://127.0.0.1:9/nothing" --name "$name"
	assert_failure
	assert_output_contains "failed"
	[[ "$(ws_field "$name" error)" == *"clone 'git://127.0.0.1:9/nothing'"* ]]
}

@test "a branch that does not exist fails and names it" {
	repo=$(make_repo branchless)
	name=$(ws_name)
	run_berth create "$repo" --branch nope --name "$name"
	assert_failure
	assert_output_contains "nope"
	[[ "$(ws_field "$name" error)" == *"nope"* ]]
	assert_no_container_for "$name"
}

@test "a devcontainer.json syntax error names file, line and column" {
	repo=$(make_repo broken '{
  "image": "localhost/berth/base:bookworm"
  "postCreateCommand": "true"
}')
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_failure
	err=$(ws_field "$name" error)
	echo "$err"
	[[ "$err" == *"'.devcontainer/devcontainer.json' line 3, column"* ]]
	assert_no_container_for "$name"
}

@test "an image that does not exist fails with a message to act on" {
	repo=$(make_repo noimage '{"image": "localhost/berth/does-not-exist:1"}')
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_failure
	err=$(ws_field "$name" error)
	echo "$err"
	[[ "$err" == *"image 'localhost/berth/does-not-exist:1' not found and could not be pulled"* ]]
	assert_no_container_for "$name"
}

@test "a failing postCreateCommand leaves a usable workspace that shows the failure" {
	repo=$(make_repo pcfail '{"image": "localhost/berth/base:bookworm", "postCreateCommand": "echo about to fail; exit 3"}')
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	assert_output_contains "about to fail"
	assert_output_contains "postCreateCommand failed with exit code 3"
	assert_equal "$(ws_field "$name" state)" running
	assert_equal "$(ws_field "$name" error)" "postCreateCommand failed with exit code 3"
	run_berth exec "$name" -- cat README.md
	assert_success
}

@test "a remote user that does not exist fails the workspace" {
	repo=$(make_repo nouser '{"image": "localhost/berth/base:bookworm", "remoteUser": "nobody-here"}')
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_failure
	[[ "$(ws_field "$name" error)" == *"remote user 'nobody-here' does not exist"* ]]
	assert_no_container_for "$name"
}

@test "initializeCommand never runs on the server" {
	marker=$BATS_FILE_TMPDIR/initialize-ran
	repo=$(make_repo hostile "{\"image\": \"localhost/berth/base:bookworm\", \"initializeCommand\": \"touch $marker\"}")
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	assert_output_contains "initializeCommand skipped"
	[ ! -e "$marker" ]
}

@test "a body that is not JSON gets 400 with a JSON error" {
	run api POST /api/v1/workspaces 'this is not json'
	assert_output_contains "400 "
	echo "${output#* }" | jq -e '.error | test("not valid JSON")'
}

@test "a body without repo gets 400 naming the field" {
	run api POST /api/v1/workspaces '{"branch": "main"}'
	assert_output_contains "400 "
	assert_output_contains "repo"
	run api POST /api/v1/workspaces '{"repo": 5}'
	assert_output_contains "400 "
}

@test "a repo URL with a forbidden transport gets 400 and runs nothing" {
	marker=$BATS_FILE_TMPDIR/ext-ran
	run api POST /api/v1/workspaces "{\"repo\": \"ext::sh -c touch% $marker\"}"
	assert_output_contains "400 "
	run api POST /api/v1/workspaces '{"repo": "-uhelp"}'
	assert_output_contains "400 "
	[ ! -e "$marker" ]
}

@test "branch and commit together, or a bad name, get 400" {
	run api POST /api/v1/workspaces '{"repo": "/tmp", "branch": "main", "commit": "abc"}'
	assert_output_contains "400 "
	run api POST /api/v1/workspaces '{"repo": "/tmp", "name": "Bad Name!"}'
	assert_output_contains "400 "
	run api POST /api/v1/workspaces '{"repo": "/tmp", "branch": "--upload-pack=x"}'
	assert_output_contains "400 "
}

@test "a duplicate name gets 409" {
	repo=$(make_repo dup)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run api POST /api/v1/workspaces "{\"repo\": \"$repo\", \"name\": \"$name\"}"
	assert_output_contains "409 "
}

@test "an unknown workspace gets 404 on every route" {
	for route in "GET /api/v1/workspaces/nope" "POST /api/v1/workspaces/nope/start" \
		"POST /api/v1/workspaces/nope/stop" "POST /api/v1/workspaces/nope/rebuild" \
		"DELETE /api/v1/workspaces/nope" "GET /api/v1/workspaces/nope/events" \
		"GET /api/v1/workspaces/nope/logs"; do
		run api ${route% *} ${route#* }
		assert_output_contains "404 "
	done
	run api POST /api/v1/workspaces/nope/exec '{"cmd": ["true"]}'
	assert_output_contains "404 "
	run_berth show nope
	assert_failure
	assert_output_contains "not found"
}

@test "exec on a stopped workspace gets 409 and bad exec bodies get 400" {
	repo=$(make_repo execbad)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run api POST "/api/v1/workspaces/$name/exec" '{"cmd": []}'
	assert_output_contains "400 "
	run api POST "/api/v1/workspaces/$name/exec" '{"cmd": "ls"}'
	assert_output_contains "400 "
	run_berth stop "$name"
	run api POST "/api/v1/workspaces/$name/exec" '{"cmd": ["true"]}'
	assert_output_contains "409 "
}

@test "huge and malformed requests get 4xx and berthd keeps serving" {
	head -c 2000000 /dev/zero | tr '\0' 'a' >"$BATS_TEST_TMPDIR/big"
	run curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$BATS_TEST_TMPDIR/big" "$BERTH_SERVER/api/v1/workspaces"
	assert_equal "$output" 413
	run curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 70000 /dev/zero | tr '\0' b)" "$BERTH_SERVER/api/v1/health"
	assert_equal "$output" 431
	run sh -c "printf 'GARBAGE\r\n\r\n' | timeout 5 curl -s telnet://${BERTH_SERVER#http://} | head -1"
	assert_output_contains "400"
	run api POST /api/v1/workspaces "$(printf '{"repo": "/tmp", "name": "\xff\xfe"}')"
	assert_output_contains "400 "
	run curl -sf "$BERTH_SERVER/api/v1/health"
	assert_success
}
