#!/usr/bin/env bats
# berthd dying at a bad moment never loses a workspace or leaves an orphan.

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

@test "kill -9 during create: after restart the workspace ends running, no orphan" {
	repo=$(make_repo crashy '{"image": "localhost/berth/base:bookworm", "waitFor": "postCreateCommand", "postCreateCommand": "sleep 2; echo slow-done"}')
	name=$(ws_name)
	run_berth create "$repo" --name "$name" --no-wait
	assert_success
	# wait until the container exists, then kill berthd mid-create
	for i in $(seq 1 100); do
		[ -n "$(our_containers)" ] && break
		sleep 0.1
	done
	[ -n "$(our_containers)" ]
	restart_berthd
	wait_state "$name" running failed
	assert_equal "$(ws_field "$name" state)" running
	# exactly one container: the interrupted one was replaced, not left behind
	assert_equal "$(our_containers | wc -l)" 1
	run_berth exec "$name" -- cat README.md
	assert_success
	run_berth events "$name"
	assert_output_contains "restarted"
}

@test "a running workspace survives a berthd restart with its files" {
	repo=$(make_repo survivor)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run_berth exec "$name" -- sh -c 'echo still-here > note.txt'
	restart_berthd
	assert_equal "$(ws_field "$name" state)" running
	run_berth exec "$name" -- cat note.txt
	assert_equal "$output" "still-here"
}

@test "a container stopped behind berthd's back shows as stopped after restart" {
	repo=$(make_repo behindback)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	kill -9 "$BERTHD_PID"
	podman stop -t 2 "$(ws_field_offline "$name")" >/dev/null
	start_berthd
	load_berthd_env
	wait_state "$name" stopped
	run_berth start "$name"
	assert_success
}

@test "a Berth container that no workspace owns is removed on start-up" {
	repo=$(make_repo orphan)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	id=$(ws_field "$name" id)
	cid=$(ws_field "$name" container_id)
	kill -9 "$BERTHD_PID"
	sqlite3 "$BERTH_DATA/berth.db" "DELETE FROM workspaces WHERE id='$id'"
	start_berthd
	load_berthd_env
	for i in $(seq 1 100); do
		podman container exists "$cid" || break
		sleep 0.1
	done
	run podman container exists "$cid"
	assert_failure
	grep -q "removing container" "$BATS_FILE_TMPDIR/berthd.log"
}

# the container id from the store, while berthd is down
ws_field_offline() {
	sqlite3 "$BERTH_DATA/berth.db" "SELECT container_id FROM workspaces WHERE name='$1'"
}
