#!/usr/bin/env bats
# What devcontainer.json and program output add to the detected ports:
# forwardPorts, portsAttributes, URLs printed in logs and terminals, and the
# dashboard's live "ports" events.

load helpers

CONFIG='{
  "image": "localhost/berth/base:bookworm",
  "forwardPorts": [8201],
  "portsAttributes": {
    "8201": {"label": "api", "protocol": "http", "visibility": "public"},
    "8202": {"onAutoForward": "ignore"},
    "8210-8219": {"label": "range", "onAutoForward": "silent"}
  },
  "otherPortsAttributes": {"onAutoForward": "notify"},
  "postCreateCommand": "echo \"ready: \u001b[36mhttp://localhost:\u001b[1m8230\u001b[22m/app/\u001b[39m\""
}'

setup_file() {
	start_berthd
	load_berthd_env
	repo=$(make_repo attrs "$CONFIG")
	cp "$BATS_TEST_DIRNAME/fixtures/httpd.pl" "$repo/"
	git -C "$repo" add -A
	git -C "$repo" -c user.name=T -c user.email=t@t commit -qm httpd
	"$BERTH" create "$repo" --name attrs-ws >/dev/null
}

teardown_file() {
	stop_berthd
}

setup() {
	load_berthd_env
}

serve() { # serve PORT: starts the test server in the workspace on 127.0.0.1
	"$BERTH" exec attrs-ws -- sh -c "setsid perl httpd.pl $1 127.0.0.1 </dev/null >/dev/null 2>&1 &"
}

ports() {
	curl -s -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/workspaces/attrs-ws/ports"
}

wait_for() { # wait_for JQ_FILTER: until the ports answer satisfies it
	local i out
	for i in $(seq 1 150); do
		out=$(ports)
		jq -e "$1" <<<"$out" >/dev/null && return 0
		sleep 0.2
	done
	echo "never: $1; last: $out" >&2
	return 1
}

@test "forwardPorts are listed before anything listens, with their portsAttributes label" {
	out=$(ports)
	jq -e '.ports[] | select(.port == 8201) | .listening == false and .label == "api" and .source == "forwardPorts"' <<<"$out"
	serve 8201
	wait_for '.ports[] | select(.port == 8201) | .listening == true and .process == "perl" and .label == "api"'
	# a portsAttributes entry cannot make a port public: still private, no anonymous access
	assert_equal "$(ports | jq -r '.ports[] | select(.port == 8201) | .visibility')" private
	id=$(ws_field attrs-ws id)
	run curl -s -w ' %{http_code}' "$BERTH_SERVER/w/$id/ports/8201/echo-headers"
	[[ "$output" == *" 302" || "$output" == *" 401" ]]
	[[ "$output" != *echo-headers* ]]
	run curl -s -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/w/$id/ports/8201/echo-headers"
	assert_output_contains "GET /echo-headers"
}

@test "onAutoForward ignore hides a port; a range's attributes apply to its ports" {
	serve 8202
	serve 8215
	wait_for '.ports[] | select(.port == 8215) | .label == "range" and .on_auto_forward == "silent"'
	# 8202 listens too (the agent saw it: 8215 came after it), but is not offered
	run ports
	jq -e '[.ports[] | select(.port == 8202)] | length == 0' <<<"$output"
	run_berth exec attrs-ws -- sh -c 'cat /proc/net/tcp | grep -ci ":200A "'
	assert_equal "$output" 1
}

@test "a URL printed by a lifecycle command and one typed in a terminal are offered with their path" {
	id=$(ws_field attrs-ws id)
	wait_for ".ports[] | select(.port == 8230) | .source == \"output\" and .url == \"/w/$id/ports/8230/app/\""
	run timeout 90 node --experimental-websocket --no-warnings "$BATS_TEST_DIRNAME/ws-client.mjs" \
		"${BERTH_SERVER/http:/ws:}/api/v1/workspaces/attrs-ws/terminal?cols=80&rows=24" "$BERTH_TOKEN" \
		"printf 'see http://127.0.0.1:%s/docs\\n' 8240
" "@sleep 500" "exit
"
	assert_success
	wait_for ".ports[] | select(.port == 8240) | .url == \"/w/$id/ports/8240/docs\""
	run_berth ports attrs-ws
	assert_output_contains "(not listening)"
	assert_output_contains "api"
}

@test "the live stream tells the owner's dashboard when a port opens" {
	events=$BATS_TEST_TMPDIR/events
	bg curl -sN -H "Authorization: Bearer $BERTH_TOKEN" -o "$events" "$BERTH_SERVER/api/v1/stream"
	for i in $(seq 1 50); do
		grep -q 'event: workspace' "$events" 2>/dev/null && break
		sleep 0.1
	done
	serve 8250
	for i in $(seq 1 150); do
		grep -q '"port":8250' "$events" 2>/dev/null && break
		sleep 0.2
	done
	grep 'event: ports' "$events"
	grep -q '"port":8250' "$events"
	# another user's stream hears nothing of it
	tok=$(make_user carol)
	other=$BATS_TEST_TMPDIR/other-events
	bg curl -sN -H "Authorization: Bearer $tok" -o "$other" "$BERTH_SERVER/api/v1/stream"
	sleep 1
	serve 8251
	for i in $(seq 1 150); do
		grep -q '"port":8251' "$events" 2>/dev/null && break
		sleep 0.2
	done
	grep -q '"port":8251' "$events"
	! grep -q 'event: ports' "$other"
}
