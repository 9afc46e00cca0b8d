#!/usr/bin/env bats
# `berth config` against the reference devcontainer CLI, field by field.

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

@test "berth config agrees with 'devcontainer read-configuration' on every sample config" {
	run env BERTH="$BERTH" bash "$BERTH_ROOT/tests/conformance/run.sh"
	echo "$output"
	assert_success
	assert_output_contains "0 unexplained"
}

@test "berth config names the file, line and column of a syntax error" {
	dir=$BATS_TEST_TMPDIR/broken
	mkdir -p "$dir/.devcontainer"
	printf '{\n  "image": "x",\n  "remoteUser" "vscode"\n}\n' >"$dir/.devcontainer/devcontainer.json"
	run_berth config "$dir"
	assert_failure
	assert_output_contains "'.devcontainer/devcontainer.json' line 3, column"
}

@test "berth config prints the merged configuration with the image's metadata" {
	dir=$BATS_TEST_TMPDIR/plain
	mkdir -p "$dir/.devcontainer"
	echo '{"image": "localhost/berth/base:bookworm", "postStartCommand": "true"}' >"$dir/.devcontainer/devcontainer.json"
	run_berth config "$dir"
	assert_success
	assert_equal "$(jq -r .remoteUser <<<"$output")" vscode
	assert_equal "$(jq -c .postStartCommands <<<"$output")" '["true"]'
}
