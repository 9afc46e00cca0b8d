#!/usr/bin/env bats
# The embedded default: berthd runs and supervises its own podman service.

load helpers

setup_file() {
	start_berthd --engine embedded
}

teardown_file() {
	stop_berthd
	pkill -f "unix://$BATS_FILE_TMPDIR/data/engine/podman.sock" || true
}

setup() {
	load_berthd_env
}

service_pid() {
	pgrep -f "system service --time=0 unix://$BERTH_DATA/engine/podman.sock" | head -1
}

@test "berthd starts its own podman service on a private socket" {
	grep -q "started podman service" "$BATS_FILE_TMPDIR/berthd.log"
	[ -S "$BERTH_DATA/engine/podman.sock" ]
	run stat -c %a "$BERTH_DATA/engine"
	assert_equal "$output" 700
	[ -n "$(service_pid)" ]
}

@test "workspaces work on the embedded engine" {
	repo=$(make_repo embedded)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run_berth exec "$name" -- cat README.md
	assert_equal "$output" "# embedded"
}

@test "a dead podman service is restarted" {
	old=$(service_pid)
	[ -n "$old" ]
	kill -9 "$old"
	for i in $(seq 1 150); do
		new=$(service_pid)
		[ -n "$new" ] && [ "$new" != "$old" ] && curl -sf --unix-socket "$BERTH_DATA/engine/podman.sock" http://d/_ping >/dev/null && break
		sleep 0.2
	done
	[ -n "$new" ] && [ "$new" != "$old" ]
	repo=$(make_repo afterrestart)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
}
