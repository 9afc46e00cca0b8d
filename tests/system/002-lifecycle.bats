#!/usr/bin/env bats
# Stop, start, rebuild and delete: what survives and what runs again.

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

CONFIG='{
  // lifecycle probes: each appends a line to a file in the workspace
  "image": "localhost/berth/base:bookworm",
  "containerEnv": {"PROBE": "from-container-env"},
  "onCreateCommand": "echo oncreate >> .probe",
  "postCreateCommand": ["sh", "-c", "echo postcreate >> .probe"],
  "postStartCommand": "echo poststart-$PROBE >> .probe",
}'

@test "lifecycle commands run in order with containerEnv" {
	repo=$(make_repo order "$CONFIG")
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run_berth exec "$name" -- cat .probe
	assert_success
	assert_equal "$output" "oncreate
postcreate
poststart-from-container-env"
}

@test "stopped workspace keeps uncommitted files and start re-runs postStartCommand only" {
	repo=$(make_repo stopstart "$CONFIG")
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run_berth exec "$name" -- sh -c 'echo precious > uncommitted.txt'
	assert_success
	run_berth stop "$name"
	assert_success
	assert_equal "$(ws_field "$name" state)" stopped
	cid=$(ws_field "$name" container_id)
	run podman inspect -f '{{.State.Running}}' "$cid"
	assert_equal "$output" false
	run_berth exec "$name" -- true
	assert_failure
	run_berth start "$name"
	assert_success
	run_berth exec "$name" -- cat uncommitted.txt
	assert_equal "$output" "precious"
	run_berth exec "$name" -- cat .probe
	assert_equal "$output" "oncreate
postcreate
poststart-from-container-env
poststart-from-container-env"
}

@test "stop is prompt: the agent handles SIGTERM" {
	repo=$(make_repo prompt)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	start=$(date +%s%N)
	run_berth stop "$name"
	end=$(date +%s%N)
	assert_success
	ms=$(( (end - start) / 1000000 ))
	echo "stop took $ms ms"
	# the engine's stop timeout is 10 s: a stop that waits it out is a bug
	[ "$ms" -lt 8000 ]
}

@test "rebuild makes a new container, keeps files, and runs create hooks again" {
	repo=$(make_repo rebuild "$CONFIG")
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	old=$(ws_field "$name" container_id)
	run_berth exec "$name" -- sh -c 'echo kept > kept.txt; echo gone > /tmp/in-container.txt'
	run_berth rebuild "$name"
	assert_success
	new=$(ws_field "$name" container_id)
	[ "$old" != "$new" ]
	run podman container exists "$old"
	assert_failure
	run_berth exec "$name" -- cat kept.txt
	assert_equal "$output" "kept"
	run_berth exec "$name" -- test -e /tmp/in-container.txt
	assert_failure
	run_berth exec "$name" -- grep -c oncreate .probe
	assert_equal "$output" "2"
}

@test "rebuild picks up a changed devcontainer.json" {
	repo=$(make_repo changed '{"image": "localhost/berth/base:bookworm"}')
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	id=$(ws_field "$name" id)
	cfg="$BERTH_DATA/workspaces/$id/changed/.devcontainer/devcontainer.json"
	echo '{"image": "localhost/berth/base:bookworm", "containerEnv": {"NEW": "yes"}, "remoteUser": "root"}' >"$cfg"
	run_berth rebuild "$name"
	assert_success
	run_berth exec "$name" -- sh -c 'echo "$NEW $(id -un)"'
	assert_equal "$output" "yes root"
}

@test "delete removes the container and the files" {
	repo=$(make_repo deleted)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	id=$(ws_field "$name" id)
	cid=$(ws_field "$name" container_id)
	run_berth rm "$name"
	assert_success
	run podman container exists "$cid"
	assert_failure
	[ ! -e "$BERTH_DATA/workspaces/$id" ]
	[ ! -e "$BERTH_DATA/run/$id" ]
	run api GET "/api/v1/workspaces/$id"
	assert_output_contains "404"
}

@test "a conflicting action on a busy workspace gets 409" {
	# creating for 2 s after the container is up (updateContentCommand), then
	# ready and busy for 3 s more (postCreateCommand)
	repo=$(make_repo busy '{"image": "localhost/berth/base:bookworm",
  "updateContentCommand": "sleep 2", "postCreateCommand": "sleep 3"}')
	name=$(ws_name)
	run_berth create "$repo" --name "$name" --no-wait
	assert_success
	# not ready yet: no stop (a delete would interrupt its commands, below)
	run api POST "/api/v1/workspaces/$name/stop"
	assert_output_contains "409"
	assert_output_contains '"error"'
	run api POST "/api/v1/workspaces/$name/rebuild"
	assert_output_contains "409"
	wait_state "$name" running
	# ready after updateContentCommand (waitFor), busy until postCreateCommand
	# ends: 409 either way, "busy" first, then "already running"
	for i in $(seq 1 100); do
		run api POST "/api/v1/workspaces/$name/start"
		assert_output_contains "409"
		[[ "$output" == *"already running"* ]] && break
		sleep 0.2
	done
	assert_output_contains "409"
	assert_output_contains "already running"
}

@test "stop and delete interrupt lifecycle commands that never end; start resumes what was cut short" {
	# postCreateCommand hangs the first time, finishes the second
	repo=$(make_repo forever '{"image": "localhost/berth/base:bookworm",
  "postCreateCommand": "if [ -e .resumed ]; then echo resumed-$((6*7)); else touch .resumed; sleep 100000; fi",
  "postStartCommand": "echo serving again; sleep 100000"}')
	name=$(ws_name)
	# ready once updateContentCommand is done (waitFor); postCreateCommand runs
	# on (berth create would follow its output: --no-wait)
	run_berth create "$repo" --name "$name" --no-wait
	assert_success
	wait_state "$name" running
	wait_lifecycle "$name" "running postCreateCommand"
	run_berth stop "$name"
	assert_success
	assert_output_contains "is stopped"
	assert_equal "$(ws_field "$name" lifecycle)" interrupted
	run_berth events "$name"
	assert_output_contains "postCreateCommand interrupted"
	run podman inspect -f '{{.State.Running}}' "$(ws_field "$name" container_id)"
	assert_output_contains false
	# a start runs the cut-short postCreateCommand again, then postStartCommand,
	# ready while they run; and it can be deleted
	run_berth start "$name" --no-wait
	assert_success
	wait_state "$name" running
	wait_lifecycle "$name" "running postStartCommand"
	run_berth logs "$name"
	assert_output_contains "postCreateCommand was cut short by a stop: running it again"
	assert_output_contains "resumed-42"
	run_berth exec "$name" -- echo usable
	assert_equal "$output" usable
	cid=$(ws_field "$name" container_id)
	run_berth rm "$name"
	assert_success
	assert_output_contains "deleted"
	run podman container exists "$cid"
	assert_failure
}

@test "events record every step of the timeline" {
	repo=$(make_repo timeline)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run_berth stop "$name"
	run_berth events "$name" --json
	assert_success
	echo "$output" | jq -e 'map(.message) | index("creating") != null and index("running") != null and index("stopped") != null'
	run_berth logs "$name"
	assert_success
	assert_output_contains "cloning"
	assert_output_contains "stopping container"
}

@test "the object form of a lifecycle command runs its entries in parallel, labelled" {
	repo=$(make_repo parallel '{"image": "localhost/berth/base:bookworm",
  "postCreateCommand": {"first": "sleep 2; echo one-done; date +%s%N > .first",
                        "second": ["sh", "-c", "sleep 2; echo two-done; date +%s%N > .second"]}}')
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	assert_output_contains "[first] one-done"
	assert_output_contains "[second] two-done"
	a=$("$BERTH" exec "$name" -- cat .first)
	b=$("$BERTH" exec "$name" -- cat .second)
	# run one after the other they would end 2 s apart
	d=$(( (a > b ? a - b : b - a) / 1000000 ))
	echo "entries ended $d ms apart"
	[ "$d" -lt 1500 ]
}

@test "a failing entry of the object form fails the hook and names the entry" {
	repo=$(make_repo parfail '{"image": "localhost/berth/base:bookworm",
  "postCreateCommand": {"good": "true", "bad": "exit 4"}}')
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	assert_equal "$(ws_field "$name" error)" "postCreateCommand.bad failed with exit code 4"
}
