#!/usr/bin/env bats
# What browsers use: the dashboard's files, live updates, terminals, VS Code.

load helpers

setup_file() {
	start_berthd
	load_berthd_env
	make_user alice >"$BATS_FILE_TMPDIR/alice.token"
	make_user bob >"$BATS_FILE_TMPDIR/bob.token"
	repo=$(make_repo browser)
	BERTH_TOKEN=$(cat "$BATS_FILE_TMPDIR/alice.token") "$BERTH" create "$repo" --name browser-ws >/dev/null
}

teardown_file() {
	stop_berthd
}

setup() {
	load_berthd_env
	ALICE=$(cat "$BATS_FILE_TMPDIR/alice.token")
	BOB=$(cat "$BATS_FILE_TMPDIR/bob.token")
	WS_URL="${BERTH_SERVER/http:/ws:}/api/v1/workspaces/browser-ws/terminal"
}

term() { # term CRED [QUERY] INPUT...
	local cred=$1 query=$2
	shift 2
	run timeout 90 node --experimental-websocket --no-warnings "$BATS_TEST_DIRNAME/ws-client.mjs" \
		"$WS_URL?cols=80&rows=24$query" "$cred" "$@"
}

@test "the dashboard and its assets are served by berthd, with no CDN" {
	run curl -sf "$BERTH_SERVER/"
	assert_success
	assert_output_contains "<html"
	! grep -Eo '(src|href)="https?://[^"]*' <<<"$output"
	run curl -s -o /dev/null -w '%{http_code}' "$BERTH_SERVER/vendor/@xterm/xterm/lib/xterm.js"
	assert_equal "$output" 200
	run curl -s -o /dev/null -w '%{http_code}' "$BERTH_SERVER/../../etc/passwd"
	assert_equal "$output" 404
	run curl -s -o /dev/null -w '%{http_code}' "$BERTH_SERVER/vendor/%2e%2e/%2e%2e/berth.db"
	assert_equal "$output" 404
}

@test "a terminal runs a login shell as the remote user in the workspace folder" {
	term "$ALICE" "" $'echo "me=$(id -un) at $(pwd)"\n' $'stty size\n' '@resize 100 30' $'stty size\n'
	assert_success
	assert_output_contains "me=vscode at /workspaces/browser"
	assert_output_contains "24 80"
	assert_output_contains "30 100"
}

@test "Ctrl-C interrupts a command and the shell survives; exit ends the terminal" {
	term "$ALICE" "" $'sleep 100\n' '@sleep 500' $'\x03' $'echo alive-$((40+2))\n' $'exit 7\n'
	assert_output_contains "alive-42"
	assert_output_contains "EXIT 7"
}

@test "reattaching with the session id gets the same shell and its output" {
	term "$ALICE" "" $'echo first-$$ > /tmp/pid-probe; echo marker-one\n'
	session=$(echo "$output" | sed -n 's/^SESSION //p')
	[ -n "$session" ]
	term "$ALICE" "&session=$session" $'echo second-$$\n'
	assert_output_contains "marker-one"
	assert_equal "$(echo "$output" | sed -n 's/^SESSION //p')" "$session"
	pid=$("$BERTH" exec browser-ws -- cat /tmp/pid-probe 2>/dev/null || BERTH_TOKEN=$ALICE "$BERTH" exec browser-ws -- cat /tmp/pid-probe)
	assert_output_contains "second-${pid#first-}"
}

@test "a large burst of output arrives whole" {
	term "$ALICE" "" $'yes | head -n 100000 | wc -l; yes abc | head -n 100000 | tail -n 1\n' '@sleep 3000'
	assert_output_contains "100000"
	[ "$(grep -c '^abc' <<<"$output")" -ge 1 ]
}

@test "another user, an anonymous caller or a foreign page cannot open the terminal" {
	term "$BOB" "" $'echo should-not-run\n'
	[[ "$output" != *should-not-run* ]]
	term none "" $'echo should-not-run\n'
	[[ "$output" != *should-not-run* ]]
	# a session cookie from another site's page (cross-site WebSocket hijacking)
	cookie=$(curl -s -c - -o /dev/null -X POST -H 'Content-Type: application/json' \
		--data-binary "{\"username\": \"admin\", \"password\": \"$BERTH_ADMIN_PASSWORD\"}" \
		"$BERTH_SERVER/api/v1/auth/login" | awk '$6 == "berth_session" {print $7}')
	[ -n "$cookie" ]
	ORIGIN=http://evil.example term "cookie:berth_session=$cookie" "" $'echo should-not-run\n'
	[[ "$output" != *should-not-run* ]]
}

@test "VS Code is served to the owner only" {
	code=
	for i in $(seq 1 120); do
		code=$(curl -s -o "$BATS_TEST_TMPDIR/ide" -w '%{http_code}' -H "Authorization: Bearer $ALICE" "$BERTH_SERVER/w/browser-ws/ide/")
		[ "$code" = 302 ] || [ "$code" = 200 ] && break
		sleep 0.5
	done
	echo "last: $code $(head -c 300 "$BATS_TEST_TMPDIR/ide")"
	[ "$code" = 302 ] || [ "$code" = 200 ]
	run curl -s -H "Authorization: Bearer $ALICE" "$BERTH_SERVER/w/browser-ws/ide/?folder=/workspaces/browser"
	assert_output_contains "workbench"
	run curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BOB" "$BERTH_SERVER/w/browser-ws/ide/"
	assert_equal "$output" 404
	run curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$BERTH_SERVER/w/browser-ws/ide/"
	assert_output_contains "302"
	assert_output_contains "/login.html?next="
}

@test "the live stream pushes state changes" {
	repo=$(make_repo streamed)
	timeout 60 curl -sN -H "Authorization: Bearer $ALICE" "$BERTH_SERVER/api/v1/stream" >"$BATS_TEST_TMPDIR/sse" &
	sse=$!
	sleep 1
	BERTH_TOKEN=$ALICE run "$BERTH" create "$repo" --name streamed-ws
	assert_success
	BERTH_TOKEN=$ALICE run "$BERTH" stop streamed-ws
	sleep 1
	kill $sse
	grep -q '"name":"streamed-ws","state":"creating"' "$BATS_TEST_TMPDIR/sse"
	grep -q '"name":"streamed-ws","state":"running"' "$BATS_TEST_TMPDIR/sse"
	grep -q '"name":"streamed-ws","state":"stopped"' "$BATS_TEST_TMPDIR/sse"
	! grep -q "browser-ws" <(grep -v alice "$BATS_TEST_TMPDIR/sse" | grep '"owner":"bob"')
}

@test "customizations.vscode: settings apply, unavailable extensions are listed as skipped" {
	repo=$(make_repo customized '{"image": "localhost/berth/base:bookworm",
  "customizations": {"vscode": {"settings": {"editor.fontSize": 17},
                                "extensions": ["ms-python.python"]}}}')
	BERTH_TOKEN=$ALICE run "$BERTH" create "$repo" --name customized-ws
	assert_success
	assert_output_contains "VS Code settings from customizations.vscode.settings applied"
	assert_output_contains "extension ms-python.python skipped"
	BERTH_TOKEN=$ALICE run "$BERTH" exec customized-ws -- cat /home/vscode/.local/share/code-server/Machine/settings.json
	assert_success
	assert_output_contains '"editor.fontSize": 17'
}
