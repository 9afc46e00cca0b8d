#!/usr/bin/env bats
# What starts prebuilds besides a person: a configuration's poll, a signed
# push webhook; who may use them (sharing) and how much room they get (quota).

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

FAST_CONFIG='{"image": "localhost/berth/base:bookworm", "onCreateCommand": "echo prebuilt-$(git rev-parse --short HEAD) >.prebuilt"}'

# ready_prebuilds REPO BRANCH: ids of the ready prebuilds of a branch
ready_prebuilds() {
	"$BERTH" prebuilds --json | jq -r --arg r "$1" --arg b "$2" \
		'.[] | select(.repo == $r and .branch == $b and .state == "ready") | .id'
}

# wait_prebuild_at REPO BRANCH COMMIT: waits (bounded) for a ready prebuild of it
wait_prebuild_at() {
	local i
	for i in $(seq 1 300); do
		"$BERTH" prebuilds --json | jq -e --arg r "$1" --arg b "$2" --arg c "$3" \
			'any(.[]; .repo == $r and .branch == $b and .commit == $c and .state == "ready")' >/dev/null && return 0
		sleep 0.5
	done
	echo "no ready prebuild of $2 at $3:" >&2
	"$BERTH" prebuilds >&2
	return 1
}

sign() { # sign SECRET FILE: the X-Hub-Signature-256 value
	echo "sha256=$(openssl dgst -sha256 -hmac "$1" -r <"$2" | cut -d' ' -f1)"
}

@test "a configuration polls: new commits of matching branches get a prebuild, others none, the newest N are kept" {
	repo=$(make_repo polled "$FAST_CONFIG")
	echo "$repo" >"$BATS_FILE_TMPDIR/polled"
	run_berth prebuild config "$repo" --branches 'main,release/*' --poll 10s --keep 2
	assert_success
	assert_output_contains "secret"
	assert_output_contains "/api/v1/prebuild-hooks/pc"
	run_berth prebuild configs --json
	assert_equal "$(echo "$output" | jq -r '.[0].poll')" 10
	assert_equal "$(echo "$output" | jq -r '.[0].secret')" null
	wait_prebuild_at "$repo" main "$(git -C "$repo" rev-parse main)"
	git -C "$repo" branch release/1
	git -C "$repo" branch other
	wait_prebuild_at "$repo" release/1 "$(git -C "$repo" rev-parse release/1)"
	commit_file "$repo" a.txt a "second"
	wait_prebuild_at "$repo" main "$(git -C "$repo" rev-parse main)"
	commit_file "$repo" b.txt b "third"
	wait_prebuild_at "$repo" main "$(git -C "$repo" rev-parse main)"
	# keep 2: the oldest of main is gone
	assert_equal "$(ready_prebuilds "$repo" main | wc -l)" 2
	# a commit with a prebuild gets no second one; "other" none at all
	sleep 12 # one more poll
	run "$BERTH" prebuilds --json
	assert_equal "$(echo "$output" | jq --arg c "$(git -C "$repo" rev-parse main)" '[.[] | select(.commit == $c)] | length')" 1
	assert_equal "$(echo "$output" | jq '[.[] | select(.branch == "other")] | length')" 0
	# a workspace of main starts from the newest
	name=$(ws_name)
	run_berth create "$repo" --branch main --name "$name"
	assert_success
	run_berth exec "$name" -- cat .prebuilt
	assert_equal "$output" "prebuilt-$(git -C "$repo" rev-parse --short main)"
	run_berth prebuild config "$repo" --off
	assert_success
}

@test "a push webhook needs the configuration's signature: a wrong or missing one gets 401 and starts nothing" {
	repo=$(make_repo hooked "$FAST_CONFIG")
	run_berth prebuild config "$repo" --branches main --json
	assert_success
	id=$(echo "$output" | jq -r .id)
	secret=$(echo "$output" | jq -r .secret)
	[ -n "$secret" ] && [ "$secret" != null ]
	before=$("$BERTH" prebuilds --json | jq length)
	jq -cn '{ref: "refs/heads/main", after: "x", repository: {default_branch: "main"}}' >"$BATS_TEST_TMPDIR/push.json"
	url="$BERTH_SERVER/api/v1/prebuild-hooks/$id"
	run curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-GitHub-Event: push' --data-binary @"$BATS_TEST_TMPDIR/push.json" "$url"
	assert_equal "$output" 401
	run curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-GitHub-Event: push' \
		-H "X-Hub-Signature-256: $(sign wrong-secret "$BATS_TEST_TMPDIR/push.json")" --data-binary @"$BATS_TEST_TMPDIR/push.json" "$url"
	assert_equal "$output" 401
	run curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-GitHub-Event: push' \
		-H "X-Hub-Signature-256: $(sign "$secret" "$BATS_TEST_TMPDIR/push.json")" --data-binary @"$BATS_TEST_TMPDIR/push.json" "$BERTH_SERVER/api/v1/prebuild-hooks/pc0000000000"
	assert_equal "$output" 401
	assert_equal "$("$BERTH" prebuilds --json | jq length)" "$before"
	run "$BERTH" admin audit
	assert_output_contains "prebuild_hook.refused"
	# a signed ping, and a push to a branch the configuration does not take
	run curl -s -X POST -H 'X-GitHub-Event: ping' -H "X-Hub-Signature-256: $(sign "$secret" "$BATS_TEST_TMPDIR/push.json")" \
		--data-binary @"$BATS_TEST_TMPDIR/push.json" "$url"
	assert_output_contains '"ignored":"ping"'
	jq -cn '{ref: "refs/heads/elsewhere"}' >"$BATS_TEST_TMPDIR/other.json"
	run curl -s -X POST -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: $(sign "$secret" "$BATS_TEST_TMPDIR/other.json")" \
		--data-binary @"$BATS_TEST_TMPDIR/other.json" "$url"
	assert_output_contains "not in the configuration"
	assert_equal "$("$BERTH" prebuilds --json | jq length)" "$before"
	# signed right: a prebuild of main starts and ends ready
	run curl -s -w ' %{http_code}' -X POST -H 'X-GitHub-Event: push' \
		-H "X-Hub-Signature-256: $(sign "$secret" "$BATS_TEST_TMPDIR/push.json")" --data-binary @"$BATS_TEST_TMPDIR/push.json" "$url"
	assert_output_contains " 202"
	wait_prebuild_at "$repo" main "$(git -C "$repo" rev-parse main)"
	echo "$repo" >"$BATS_FILE_TMPDIR/hooked"
	echo "$id" >"$BATS_FILE_TMPDIR/hooked.id"
}

@test "another user gets a configuration's prebuilds only once an admin shares it" {
	repo=$(cat "$BATS_FILE_TMPDIR/hooked")
	id=$(cat "$BATS_FILE_TMPDIR/hooked.id")
	bob=$(make_user bobby)
	name=$(ws_name)
	run env BERTH_TOKEN="$bob" timeout 300 "$BERTH" create "$repo" --branch main --name "$name"
	assert_success
	assert_equal "$(BERTH_TOKEN=$bob ws_field "$name" prebuild)" null
	API_TOKEN=$bob run api POST "/api/v1/prebuild-configs/$id/share" '{"shared": true}'
	assert_output_contains "404"
	run_berth prebuild share "$id"
	assert_success
	name2=$(ws_name)
	run env BERTH_TOKEN="$bob" timeout 300 "$BERTH" create "$repo" --branch main --name "$name2"
	assert_success
	assert_output_contains "starting from prebuild"
	run env BERTH_TOKEN="$bob" "$BERTH" exec "$name2" -- cat .prebuilt
	assert_equal "$output" "prebuilt-$(git -C "$repo" rev-parse --short main)"
}

@test "prebuilds count against the data-dir quota: a full quota fails the next one with what to do" {
	repo=$(cat "$BATS_FILE_TMPDIR/hooked")
	run_berth admin settings --json
	[ "$(echo "$output" | jq .prebuilds.bytes)" -gt 0 ]
	run_berth admin settings --prebuild-quota 1mb
	assert_success
	commit_file "$repo" q.txt q "over quota"
	run_berth prebuild "$repo" --branch main
	assert_failure
	assert_output_contains "quota"
	assert_output_contains "berth prebuild rm"
	run_berth admin settings --prebuild-quota 100gb
	assert_success
	run_berth prebuild "$repo" --branch main
	assert_success
}
