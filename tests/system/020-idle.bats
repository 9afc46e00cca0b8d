#!/usr/bin/env bats
# Idle auto-stop and retention. berthd runs with --test-idle-minute 1000: an
# idle "minute" lasts one second, so a 5-minute timeout is 5 s and its
# warning comes 2.5 s after the last activity. What counts as activity is
# what a person does or sees: terminal input and output, berth exec, a
# forwarded port's requests, SSH channel data, VS Code's terminal output
# while VS Code is open (and VS Code's messages: the browser test). An open
# terminal that shows nothing, an SSH client's keep-alives, and the clock of
# a berthd that restarted must not keep a workspace alive or stop it at once.

load helpers

setup_file() {
	local port
	port=$((33100 + RANDOM % 1000))
	echo "$port" >"$BATS_FILE_TMPDIR/ssh.port"
	start_berthd --test-idle-minute 1000 --ssh-listen "127.0.0.1:$port"
	load_berthd_env
	ssh-keygen -q -t ed25519 -N '' -C idle@test -f "$BATS_FILE_TMPDIR/id.key"
	curl -sf -X POST -H "Authorization: Bearer $BERTH_TOKEN" -H 'Content-Type: application/json' \
		--data-binary "$(jq -cn --rawfile k "$BATS_FILE_TMPDIR/id.key.pub" '{key: $k}')" \
		"$BERTH_SERVER/api/v1/ssh-keys" >/dev/null
	export IDLE_REPO
	IDLE_REPO=$(make_repo idle)
	cp "$BATS_TEST_DIRNAME/fixtures/proxy-echo.pl" "$IDLE_REPO/"
	git -C "$IDLE_REPO" add -A
	git -C "$IDLE_REPO" -c user.name=T -c user.email=t@t commit -qm server
}

teardown_file() {
	stop_berthd
}

setup() {
	load_berthd_env
}

# The JSON of the workspace's idle clock.
idle_json() {
	"$BERTH" show "$1" --json | jq -c .idle
}

# term_url WS: the terminal WebSocket of a workspace.
term_url() {
	echo "ws://${BERTH_SERVER#http://}/api/v1/workspaces/$1/terminal?cols=80&rows=24"
}

# wssh WS COMMAND [SSH-OPTIONS...]: runs COMMAND in WS through the gateway,
# with the admin's key.
wssh() {
	local ws=$1 cmd=$2
	shift 2
	timeout 300 ssh -F /dev/null -p "$(cat "$BATS_FILE_TMPDIR/ssh.port")" -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes -o BatchMode=yes \
		-i "$BATS_FILE_TMPDIR/id.key" "$@" "$ws@127.0.0.1" "$cmd"
}

db() {
	sqlite3 -cmd ".timeout 5000" "$BERTH_DATA/berth.db" "$@"
}

@test "an idle workspace is warned, then stopped, with the reason in its timeline and the audit log" {
	ws=$(ws_name)
	run_berth create "$IDLE_REPO" --name "$ws"
	assert_success
	run_berth idle "$ws" 5m
	assert_success
	assert_output_contains "timeout 5m (workspace)"
	assert_output_contains "stops in"
	run_berth show "$ws"
	assert_output_contains "idle:"
	assert_output_contains "last: start"
	wait_state "$ws" stopped
	run_berth events "$ws"
	assert_output_contains "idle-warning"
	assert_output_contains "no activity: the workspace stops in"
	assert_output_contains "idle 5 min: stopping (last activity: start"
	# the warning came before the stop
	warn_line=$(grep -n "idle-warning" <<<"$output" | head -1 | cut -d: -f1)
	stop_line=$(grep -n "idle 5 min: stopping" <<<"$output" | cut -d: -f1)
	[ "$warn_line" -lt "$stop_line" ]
	run_berth admin audit
	assert_output_contains "workspace.idle_stop"
	# the stop is the normal one: start brings it back with a fresh clock
	run_berth start "$ws"
	assert_success
	run idle_json "$ws"
	[ "$(jq -r .last_activity_kind <<<"$output")" = start ]
	[ "$(jq -r .stops_in_seconds <<<"$output")" -gt 2 ]
}

@test "terminal output keeps a workspace running; an open terminal that shows nothing gets the notice and does not" {
	ws=$(ws_name)
	run_berth create "$IDLE_REPO" --name "$ws"
	assert_success
	run_berth idle "$ws" 5m
	assert_success
	# a command printing every second for 12 s: more than twice the timeout
	run timeout 90 node --experimental-websocket --no-warnings "$BATS_TEST_DIRNAME/ws-client.mjs" \
		"$(term_url "$ws")" "$BERTH_TOKEN" $'for i in $(seq 12); do echo tick$i; sleep 1; done; exit\r' '@sleep 14000'
	assert_success
	assert_output_contains "tick12"
	assert_equal "$(ws_field "$ws" state)" running
	run idle_json "$ws"
	[ "$(jq -r .last_activity_kind <<<"$output")" = "terminal output" ]
	# now a terminal that stays open and quiet: it is told, then the workspace stops
	run timeout 90 node --experimental-websocket --no-warnings "$BATS_TEST_DIRNAME/ws-client.mjs" \
		"$(term_url "$ws")" "$BERTH_TOKEN" '@sleep 20000'
	assert_output_contains "berth: no activity: the workspace stops in"
	wait_state "$ws" stopped stopping
	run_berth events "$ws"
	assert_output_contains "idle 5 min: stopping (last activity: terminal"
}

@test "berth exec's output keeps a workspace running" {
	ws=$(ws_name)
	run_berth create "$IDLE_REPO" --name "$ws"
	assert_success
	run_berth idle "$ws" 5m
	assert_success
	run_berth exec "$ws" -- sh -c 'for i in $(seq 10); do echo n$i; sleep 1; done'
	assert_success
	assert_output_contains "n10"
	assert_equal "$(ws_field "$ws" state)" running
	run idle_json "$ws"
	[ "$(jq -r .last_activity_kind <<<"$output")" = "berth exec" ]
	wait_state "$ws" stopped
}

@test "requests to a forwarded port keep a workspace running" {
	ws=$(ws_name)
	run_berth create "$IDLE_REPO" --name "$ws"
	assert_success
	id=$(ws_field "$ws" id)
	"$BERTH" exec "$ws" -- sh -c "setsid perl proxy-echo.pl 8123 127.0.0.1 </dev/null >/dev/null 2>&1 &"
	for i in $(seq 1 100); do
		out=$(curl -s -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/workspaces/$ws/ports")
		jq -e '.ports | map(select(.port == 8123)) | length == 1' <<<"$out" >/dev/null && break
		sleep 0.2
	done
	run_berth idle "$ws" 5m
	assert_success
	ok=0
	for i in $(seq 1 120); do
		# one request every 0.1 s for 12 s
		body=$(curl -s -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/w/$id/ports/8123/x" || true)
		[[ $body == *"hello from port 8123"* ]] && ok=$((ok + 1))
		sleep 0.1
	done
	[ "$ok" -gt 100 ]
	assert_equal "$(ws_field "$ws" state)" running
	run idle_json "$ws"
	[ "$(jq -r .last_activity_kind <<<"$output")" = "a forwarded port" ]
}

@test "data on SSH channels keeps a workspace running; a quiet session's keep-alives do not" {
	ws=$(ws_name)
	run_berth create "$IDLE_REPO" --name "$ws"
	assert_success
	run_berth idle "$ws" 5m
	assert_success
	run wssh "$ws" 'for i in $(seq 12); do echo s$i; sleep 1; done'
	assert_success
	assert_output_contains s12
	assert_equal "$(ws_field "$ws" state)" running
	run idle_json "$ws"
	[ "$(jq -r .last_activity_kind <<<"$output")" = SSH ]
	# a session that shows nothing while its client sends a keep-alive every
	# second (Remote-SSH sets ServerAliveInterval): it holds the connection,
	# not the workspace. Two unanswered keep-alives would end the connection:
	# the gateway answers them.
	t0=$(date +%s)
	wssh "$ws" 'sleep 200' -o ServerAliveInterval=1 -o ServerAliveCountMax=2 &
	pid=$!
	wait_state "$ws" stopped stopping
	wait "$pid" || true
	t1=$(date +%s)
	ev=$("$BERTH" events "$ws" --json | jq -r '[.[] | select(.type == "idle")] | last | .time')
	ev_s=$(date -d "$ev" +%s)
	echo "ssh from $t0 to $t1, idle stop at $ev_s"
	# the connection lasted until the stop: its keep-alives went on all along
	[ "$t1" -ge "$ev_s" ]
	[ $((ev_s - t0)) -ge 4 ]
	run_berth events "$ws"
	assert_output_contains "idle 5 min: stopping (last activity: SSH"
}

# pty_printer WS SECONDS: a terminal that berth did not open (as VS Code's,
# which code-server's node-pty makes), printing a line every second.
pty_printer() {
	"$BERTH" exec "$1" -- sh -c "setsid script -qfc 'for i in \$(seq $2); do echo out\$i; sleep 1; done' /dev/null </dev/null >/dev/null 2>&1 &"
}

@test "VS Code's terminal output keeps a workspace running while VS Code is open, and only then" {
	ws=$(ws_name)
	run_berth create "$IDLE_REPO" --name "$ws"
	assert_success
	id=$(ws_field "$ws" id)
	# 30 s here: the kernel stamps a terminal's output time only every 8 s
	run_berth idle "$ws" 30m
	assert_success
	# VS Code closed: output in a terminal nobody looks at keeps nothing alive
	pty_printer "$ws" 300
	wait_state "$ws" stopped stopping
	run_berth events "$ws"
	assert_output_contains "idle 30 min: stopping (last activity: berth exec"
	wait_state "$ws" stopped
	run_berth start "$ws"
	assert_success
	code=
	for i in $(seq 1 120); do
		code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/w/$id/ide/")
		[ "$code" = 200 ] || [ "$code" = 302 ] && break
		sleep 0.5
	done
	echo "VS Code: $code"
	[ "$code" = 200 ] || [ "$code" = 302 ]
	# VS Code open, untouched, for longer than all that follows
	node --experimental-websocket --no-warnings "$BATS_TEST_DIRNAME/ide-hold.mjs" \
		"ws://${BERTH_SERVER#http://}/w/$id/ide/?reconnectionToken=t$RANDOM&reconnection=false&skipWebSocketFrames=false" \
		"$BERTH_TOKEN" 200000 >"$BATS_TEST_TMPDIR/hold" 2>&1 &
	hold=$!
	# its terminal prints for 50 s, much longer than the timeout
	pty_printer "$ws" 50
	t0=$(date +%s)
	while [ $(($(date +%s) - t0)) -lt 50 ]; do
		assert_equal "$(ws_field "$ws" state)" running
		sleep 2
	done
	run idle_json "$ws"
	echo "$output"
	[ "$(jq -r .last_activity_kind <<<"$output")" = "VS Code terminal output" ]
	# the terminal is quiet now: the open tab does not keep the workspace
	wait_state "$ws" stopped stopping
	kill "$hold" 2>/dev/null || true
	grep -q OPEN "$BATS_TEST_TMPDIR/hold"
	run_berth events "$ws"
	assert_output_contains "idle 30 min: stopping (last activity: VS Code terminal output"
}

@test "idle settings: the range, never only where the admin allows it, the user's default, the admin's maximum" {
	ws=$(ws_name)
	run_berth create "$IDLE_REPO" --name "$ws"
	assert_success
	run_berth idle "$ws" 2m
	assert_failure
	assert_output_contains "must be from 5 to 240 minutes"
	run_berth idle "$ws" 10s
	assert_failure
	assert_output_contains "minutes such as"
	run_berth idle "$ws" never
	assert_failure
	assert_output_contains "does not allow never"
	run api PUT "/api/v1/workspaces/$ws/settings" '{"idle_timeout": "1000h"}'
	assert_output_contains "400 "
	run api PUT "/api/v1/workspaces/$ws/settings" '{"sleep": true}'
	assert_output_contains "400 "
	# the user's setting applies to their workspaces without one of their own
	run_berth settings idle 45m
	assert_success
	assert_output_contains "45m"
	run_berth idle "$ws"
	assert_output_contains "timeout 45m (user)"
	run_berth idle "$ws" 1h
	assert_success
	assert_output_contains "timeout 1h (workspace)"
	# an admin maximum caps what was set before it
	run_berth admin settings --idle-max 30m
	assert_success
	run_berth idle "$ws"
	assert_output_contains "timeout 30m (admin maximum)"
	run_berth admin settings --idle-max 4h --idle-never yes
	assert_success
	run_berth idle "$ws" never
	assert_success
	assert_output_contains "no idle stop"
	run_berth idle "$ws" default
	assert_success
	assert_output_contains "timeout 45m (user)"
	run_berth settings idle default
	assert_success
	run_berth admin settings --idle-never no
	assert_success
	# another user cannot read or change this workspace's settings
	tok=$(make_user idlepeer)
	API_TOKEN=$tok run api PUT "/api/v1/workspaces/$ws/settings" '{"idle_timeout": "2h"}'
	assert_output_contains "404 "
}

@test "a restart keeps the clock, never stops an idle workspace at once, and survives a clock that went back" {
	a=$(ws_name)
	b=$(ws_name)
	c=$(ws_name)
	for ws in "$a" "$b" "$c"; do
		run_berth create "$IDLE_REPO" --name "$ws"
		assert_success
	done
	run_berth idle "$a" 30m
	run_berth idle "$b" 30m
	run_berth idle "$c" 30m
	run_berth exec "$a" -- true
	assert_success
	# the sweep saves the clock (every 0.25 s here): wait until the store has it
	for _ in $(seq 1 240); do
		[ "$(db "SELECT activity_kind FROM workspaces WHERE name = '$a';")" = "berth exec" ] && break
		sleep 0.25
	done
	[ "$(db "SELECT activity_kind FROM workspaces WHERE name = '$a';")" = "berth exec" ]
	before=$(idle_json "$a")
	now=$(date +%s)
	# b: idle for an hour (as if berthd had been away); c: its clock is ahead
	# of ours (the wall clock went back). berthd holds its clocks in memory
	# and writes only those that move: these stand until the restart.
	db "UPDATE workspaces SET last_activity = $((now - 3600)) WHERE name = '$b';"
	db "UPDATE workspaces SET last_activity = $((now + 3600)) WHERE name = '$c';"
	t0=$(date +%s)
	restart_berthd
	after=$(idle_json "$a")
	[ "$(jq -r .last_activity_kind <<<"$after")" = "berth exec" ]
	[ "$(jq -r .last_activity <<<"$after")" = "$(jq -r .last_activity <<<"$before")" ]
	# c counts from now: nearly its whole timeout is left
	[ "$(jq -r .stops_in_seconds <<<"$(idle_json "$c")")" -gt 20 ]
	# b stops, but only after the warning's lead (5 s here), not at start-up
	wait_state "$b" stopped stopping
	ev=$("$BERTH" events "$b" --json | jq -r '[.[] | select(.type == "idle")] | last | .time')
	ev_s=$(date -d "$ev" +%s)
	[ $((ev_s - t0)) -ge 4 ]
	assert_equal "$(ws_field "$a" state)" running
	assert_equal "$(ws_field "$c" state)" running
}

@test "retention deletes stopped workspaces nobody used, after a warning a day ahead; a pinned one is kept" {
	run_berth admin settings --retention-days 3
	assert_success
	old=$(ws_name)
	pinned=$(ws_name)
	for ws in "$old" "$pinned"; do
		run_berth create "$IDLE_REPO" --name "$ws"
		assert_success
		run_berth stop "$ws"
		assert_success
	done
	now=$(date +%s)
	# two and a half days untouched: warned, not deleted
	db "UPDATE workspaces SET updated_at = $((now - 216000)), last_activity = $((now - 216000)) WHERE name IN ('$old', '$pinned');"
	for i in $(seq 1 100); do
		"$BERTH" events "$old" | grep -q retention-warning && break
		sleep 0.2
	done
	run_berth events "$old"
	assert_output_contains "unused for 2 days: deleted at"
	run_berth ls
	assert_output_contains "notice: '$old' is unused and will be deleted at"
	run_berth pin "$pinned"
	assert_success
	run_berth ls
	[[ $output != *"notice: '$pinned'"* ]]
	# four days: the unpinned one goes, audited; the pinned one stays
	db "UPDATE workspaces SET updated_at = $((now - 345600)), last_activity = $((now - 345600)) WHERE name IN ('$old', '$pinned');"
	for i in $(seq 1 150); do
		"$BERTH" show "$old" >/dev/null 2>&1 || break
		sleep 0.2
	done
	run_berth show "$old"
	assert_failure
	run_berth admin audit
	assert_output_contains "workspace.retention_delete"
	assert_output_contains "$old"
	assert_equal "$(ws_field "$pinned" state)" stopped
	run_berth unpin "$pinned"
	assert_success
	run_berth admin settings --retention-days 0
	assert_success
}
