#!/usr/bin/env bats
# Prebuilds: the slow set-up done once, workspaces ready from it, each one
# writable and independent; a failed or interrupted prebuild is never used.

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

# A repo whose onCreateCommand is slow and leaves traces in the checkout and
# in the container's filesystem; updateContentCommand logs each commit it
# saw; FAIL in the checkout makes onCreateCommand fail.
SLOW_CONFIG='{
  "image": "localhost/berth/base:bookworm",
  "onCreateCommand": "test ! -f FAIL || { echo FAIL-PRESENT; exit 3; }; echo ONCREATE-RAN; sleep ${SLOW:-0}; mkdir -p node_modules; head -c 20000000 /dev/urandom >node_modules/blob; echo built >$HOME/oncreate.txt",
  "updateContentCommand": "git rev-parse HEAD >>update.log",
  "postCreateCommand": "touch postcreate.done"
}'

pb_json() { # pb_json ID FIELD
	"$BERTH" prebuilds --json | jq -r --arg id "$1" ".[] | select(.id == \$id) | .$2"
}

last_prebuild() { # the newest prebuild's id
	"$BERTH" prebuilds --json | jq -r '.[0].id'
}

@test "a prebuild runs onCreate and updateContent once; a create from it is ready without them" {
	repo=$(make_repo pbrepo "$SLOW_CONFIG")
	echo "$repo" >"$BATS_FILE_TMPDIR/pbrepo"
	run_berth prebuild "$repo" --branch main
	assert_success
	assert_output_contains "ONCREATE-RAN"
	assert_output_contains "updateContentCommand"
	assert_output_contains "is ready"
	id=$(last_prebuild)
	echo "$id" >"$BATS_FILE_TMPDIR/pb1"
	assert_equal "$(pb_json "$id" state)" ready
	assert_equal "$(pb_json "$id" commit)" "$(git -C "$repo" rev-parse HEAD)"
	assert_equal "$(pb_json "$id" branch)" main
	[ "$(pb_json "$id" size)" -gt 20000000 ]
	run_berth prebuilds
	assert_output_contains "$id"
	assert_output_contains "ready"

	name=$(ws_name)
	echo "$name" >"$BATS_FILE_TMPDIR/ws1"
	run_berth create "$repo" --branch main --name "$name"
	assert_success
	assert_output_contains "starting from prebuild $id"
	[[ "$output" != *ONCREATE-RAN* ]]
	assert_equal "$(ws_field "$name" prebuild)" "$id"
	assert_equal "$(ws_field "$name" commit)" "$(git -C "$repo" rev-parse HEAD)"
	# what onCreateCommand made, in the checkout and outside it
	run_berth exec "$name" -- sh -c 'cat ~/oncreate.txt; stat -c %s node_modules/blob; wc -l <update.log; ls postcreate.done; git status --short | head -3; id -un'
	assert_success
	assert_equal "${lines[0]}" built
	assert_equal "${lines[1]}" 20000000
	assert_equal "${lines[2]}" 1
	assert_equal "${lines[3]}" postcreate.done
	assert_equal "${lines[-1]}" vscode
	# the log of the workspace names its prebuild
	run_berth logs "$name"
	assert_output_contains "prebuild $id"
}

@test "a workspace from a prebuild is writable and independent, both ways" {
	id=$(cat "$BATS_FILE_TMPDIR/pb1")
	repo=$(cat "$BATS_FILE_TMPDIR/pbrepo")
	ws1=$(cat "$BATS_FILE_TMPDIR/ws1")
	run_berth exec "$ws1" -- sh -c 'echo changed >README.md; echo mine >new.txt; rm node_modules/blob; echo one >$HOME/oncreate.txt; git add -A && git -c user.name=u -c user.email=u@e commit -qm local && echo committed'
	assert_success
	assert_output_contains committed
	ws2=$(ws_name)
	run_berth create "$repo" --branch main --name "$ws2"
	assert_success
	assert_equal "$(ws_field "$ws2" prebuild)" "$id"
	run_berth exec "$ws2" -- sh -c 'cat README.md; ls new.txt 2>&1; stat -c %s node_modules/blob; cat ~/oncreate.txt; git log -1 --format=%s'
	assert_equal "${lines[0]}" "# pbrepo"
	assert_output_contains "No such file"
	assert_equal "${lines[2]}" 20000000
	assert_equal "${lines[3]}" built
	assert_equal "${lines[4]}" initial
	# and what the second writes, the first does not see
	run_berth exec "$ws2" -- sh -c 'echo two >README.md'
	run_berth exec "$ws1" -- cat README.md
	assert_equal "$output" changed
	# the prebuild's own files are as it left them
	run cat "$BERTH_DATA/workspaces/$id/pbrepo/README.md"
	assert_equal "$output" "# pbrepo"
	[ -f "$BERTH_DATA/workspaces/$id/pbrepo/node_modules/blob" ]
	# a stop and start keeps the workspace's own changes
	run_berth stop "$ws1"
	assert_success
	run_berth start "$ws1"
	assert_success
	run_berth exec "$ws1" -- cat new.txt
	assert_equal "$output" mine
	echo "$ws2" >"$BATS_FILE_TMPDIR/ws2"
}

@test "a branch that moved on: the workspace fetches, checks out the new commit and runs updateContent" {
	id=$(cat "$BATS_FILE_TMPDIR/pb1")
	repo=$(cat "$BATS_FILE_TMPDIR/pbrepo")
	commit_file "$repo" feature.txt "new work" "second"
	name=$(ws_name)
	run_berth create "$repo" --branch main --name "$name"
	assert_success
	assert_output_contains "starting from prebuild $id"
	assert_output_contains "updating"
	[[ "$output" != *ONCREATE-RAN* ]]
	assert_equal "$(ws_field "$name" commit)" "$(git -C "$repo" rev-parse HEAD)"
	run_berth exec "$name" -- sh -c 'cat feature.txt; wc -l <update.log; git log -1 --format=%s'
	assert_equal "${lines[0]}" "new work"
	assert_equal "${lines[1]}" 2
	assert_equal "${lines[2]}" second
}

@test "a prebuild of a commit that has one is skipped; --no-prebuild makes a cold create" {
	repo=$(cat "$BATS_FILE_TMPDIR/pbrepo")
	run_berth prebuild "$repo" --branch main
	assert_success
	new=$(last_prebuild)
	run_berth prebuild "$repo" --branch main
	assert_success
	assert_output_contains "has prebuild $new already"
	name=$(ws_name)
	run_berth create "$repo" --branch main --name "$name" --no-prebuild
	assert_success
	assert_output_contains "ONCREATE-RAN"
	assert_equal "$(ws_field "$name" prebuild)" null
	echo "$new" >"$BATS_FILE_TMPDIR/pb2"
}

@test "a failed prebuild shows its log and keeps the last good one in use" {
	repo=$(cat "$BATS_FILE_TMPDIR/pbrepo")
	good=$(cat "$BATS_FILE_TMPDIR/pb2")
	commit_file "$repo" FAIL "x" "breaks onCreate"
	run_berth prebuild "$repo" --branch main
	assert_failure
	assert_output_contains "failed"
	assert_output_contains "onCreateCommand"
	bad=$(last_prebuild)
	[ "$bad" != "$good" ]
	assert_equal "$(pb_json "$bad" state)" failed
	run_berth prebuild logs "$bad"
	assert_success
	assert_output_contains "FAIL-PRESENT"
	name=$(ws_name)
	run_berth create "$repo" --branch main --name "$name"
	assert_success
	assert_equal "$(ws_field "$name" prebuild)" "$good"
	git -C "$repo" rm -q FAIL
	git -C "$repo" -c user.name=Test -c user.email=test@example.com commit -q -m "fixed"
}

@test "kill -9 of berthd during a prebuild: it is discarded, never used" {
	repo=$(make_repo pbcrash '{"image": "localhost/berth/base:bookworm", "onCreateCommand": "echo started; sleep 60"}')
	run_berth prebuild "$repo" --no-wait --json
	assert_success
	id=$(echo "$output" | jq -r .id)
	for i in $(seq 1 300); do
		"$BERTH" prebuild logs "$id" 2>/dev/null | grep -q started && break
		sleep 0.2
	done
	restart_berthd
	assert_equal "$(pb_json "$id" state)" failed
	pb_json "$id" error | grep -q restarted
	[ -z "$(podman ps -aq --filter "name=^berth-$id\$")" ]
	[ ! -d "$BERTH_DATA/workspaces/$id" ]
	name=$(ws_name)
	run_berth create "$repo" --name "$name" --no-wait --json
	assert_success
	# cold: nothing half-made is used
	assert_equal "$(echo "$output" | jq -r .prebuild)" null
	run_berth rm "$name"
}

@test "another user neither sees nor gets my prebuild" {
	id=$(cat "$BATS_FILE_TMPDIR/pb2")
	repo=$(cat "$BATS_FILE_TMPDIR/pbrepo")
	bob=$(make_user bob)
	API_TOKEN=$bob run api GET "/api/v1/prebuilds/$id"
	assert_output_contains "404"
	run env BERTH_TOKEN="$bob" "$BERTH" prebuilds --json
	assert_equal "$output" "[]"
	API_TOKEN=$bob run api DELETE "/api/v1/prebuilds/$id"
	assert_output_contains "404"
	run api POST /api/v1/prebuilds '{"branch": "main"}'
	assert_output_contains "400"
}

@test "a prebuild removed while a workspace is being made from it: the workspace is whole either way" {
	repo=$(make_repo pbrace "$SLOW_CONFIG")
	run_berth prebuild "$repo" --branch main
	assert_success
	id=$(last_prebuild)
	name=$(ws_name)
	run_berth create "$repo" --branch main --name "$name" --no-wait
	assert_success
	run_berth prebuild rm "$id"
	assert_success
	wait_state "$name" running
	# it started from the prebuild (which waits for it) or, removed first, made its own
	used=$(ws_field "$name" prebuild)
	run_berth exec "$name" -- sh -c 'stat -c %s node_modules/blob; ls postcreate.done'
	assert_success
	assert_equal "${lines[0]}" 20000000
	if [ "$used" = "$id" ]; then
		assert_equal "$(pb_json "$id" state)" removed
		run podman image exists "localhost/berth/prebuild-$id:latest"
		assert_success
	else
		[ -z "$(pb_json "$id" id)" ]
	fi
	# a new create never picks the removed one
	other=$(ws_name)
	run_berth create "$repo" --branch main --name "$other"
	assert_success
	[ "$(ws_field "$other" prebuild)" != "$id" ]
	run_berth rm "$other"
	run_berth rm "$name"
	assert_success
	for i in $(seq 1 150); do
		[ -z "$(pb_json "$id" id)" ] && break
		sleep 0.2
	done
	[ -z "$(pb_json "$id" id)" ]
	run podman image exists "localhost/berth/prebuild-$id:latest"
	assert_failure
}

@test "rm of a prebuild in use waits for its last workspace; then its image and files go" {
	id=$(cat "$BATS_FILE_TMPDIR/pb1")
	ws1=$(cat "$BATS_FILE_TMPDIR/ws1")
	run_berth prebuild rm "$id"
	assert_success
	# the workspaces on it keep working
	run_berth exec "$ws1" -- cat new.txt
	assert_equal "$output" mine
	for ws in $("$BERTH" ls --json | jq -r --arg id "$id" '.[] | select(.prebuild == $id) | .name'); do
		run_berth rm "$ws"
		assert_success
	done
	[ -z "$(pb_json "$id" id)" ]
	[ ! -d "$BERTH_DATA/workspaces/$id" ]
	run podman image exists "localhost/berth/prebuild-$id:latest"
	assert_failure
}
