#!/usr/bin/env bats
# Forwarded ports: detected, private by default, streamed.

load helpers

setup_file() {
	start_berthd
	load_berthd_env
	make_user alice >"$BATS_FILE_TMPDIR/alice.token"
	make_user bob >"$BATS_FILE_TMPDIR/bob.token"
	repo=$(make_repo ported)
	cp "$BATS_TEST_DIRNAME/fixtures/httpd.pl" "$repo/"
	git -C "$repo" add -A
	git -C "$repo" -c user.name=T -c user.email=t@t commit -qm httpd
	BERTH_TOKEN=$(cat "$BATS_FILE_TMPDIR/alice.token") "$BERTH" create "$repo" --name ported-ws >/dev/null
}

teardown_file() {
	stop_berthd
}

setup() {
	load_berthd_env
	ALICE=$(cat "$BATS_FILE_TMPDIR/alice.token")
	BOB=$(cat "$BATS_FILE_TMPDIR/bob.token")
}

serve() { # serve PORT [ADDR]: starts the test server in the workspace
	BERTH_TOKEN=$ALICE "$BERTH" exec ported-ws -- sh -c "setsid perl httpd.pl $1 ${2:-127.0.0.1} </dev/null >/dev/null 2>&1 &"
}

wait_port() { # wait_port PORT present|absent
	local i out
	for i in $(seq 1 100); do
		out=$(curl -s -H "Authorization: Bearer $ALICE" "$BERTH_SERVER/api/v1/workspaces/ported-ws/ports")
		if [ "$2" = present ] && jq -e --argjson p "$1" '.ports | map(select(.port == $p)) | length == 1' <<<"$out" >/dev/null; then
			echo "$out"
			return 0
		fi
		if [ "$2" = absent ] && jq -e --argjson p "$1" '.detecting == false and (.ports | map(select(.port == $p)) | length == 0)' <<<"$out" >/dev/null; then
			return 0
		fi
		sleep 0.2
	done
	echo "port $1 not $2: $out" >&2
	return 1
}

@test "a server bound to 127.0.0.1 is detected with its process and reachable by URL" {
	serve 8101
	out=$(wait_port 8101 present)
	jq -e '.ports[] | select(.port == 8101) | .process == "perl" and .visibility == "private" and (.addresses | index("127.0.0.1") != null)' <<<"$out"
	run curl -s -H "Authorization: Bearer $ALICE" "$BERTH_SERVER/w/ported-ws/ports/8101/some/path?q=1"
	assert_equal "$output" "hello from port 8101 at /some/path?q=1"
}

@test "a server bound to the container's own address only is listed, and the proxy says why it cannot reach it" {
	ip=$(podman inspect -f '{{.NetworkSettings.IPAddress}}' "$(BERTH_TOKEN=$ALICE ws_field ported-ws container_id)")
	[ -n "$ip" ]
	serve 8103 "$ip"
	out=$(wait_port 8103 present)
	jq -e --arg ip "$ip" '.ports[] | select(.port == 8103) | .addresses | index($ip) != null' <<<"$out"
	run curl -s -w '\n%{http_code}' -H "Authorization: Bearer $ALICE" "$BERTH_SERVER/w/ported-ws/ports/8103/"
	assert_output_contains "port 8103 listens only on $ip in the workspace"
	assert_output_contains "bind it to 127.0.0.1 or 0.0.0.0"
	assert_equal "${output##*$'\n'}" 502
}

@test "a port shared while closed stays listed with its visibility" {
	run curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $ALICE" \
		--data '{"visibility": "public"}' "$BERTH_SERVER/api/v1/workspaces/ported-ws/ports/8199/visibility"
	assert_equal "$output" 200
	run curl -s -H "Authorization: Bearer $ALICE" "$BERTH_SERVER/api/v1/workspaces/ported-ws/ports"
	jq -e '.ports[] | select(.port == 8199) | .visibility == "public" and .listening == false and .source == "visibility"' <<<"$output"
	BERTH_TOKEN=$ALICE run "$BERTH" ports ported-ws
	assert_output_contains 8199
	assert_output_contains public
	# a number that is no port is a bad request, not a missing route
	for bad in 0 99999; do
		run curl -s -w '\n%{http_code}' -X POST -H "Authorization: Bearer $ALICE" \
			--data '{"visibility": "public"}' "$BERTH_SERVER/api/v1/workspaces/ported-ws/ports/$bad/visibility"
		assert_equal "${output##*$'\n'}" 400
		assert_output_contains "$bad is not a port number"
	done
}

@test "a server bound to ::1 only is detected too" {
	serve 8102 ::1
	wait_port 8102 present
	run curl -s -H "Authorization: Bearer $ALICE" "$BERTH_SERVER/w/ported-ws/ports/8102/"
	assert_equal "$output" "hello from port 8102 at /"
}

@test "a closed port disappears" {
	serve 8103
	wait_port 8103 present
	BERTH_TOKEN=$ALICE "$BERTH" exec ported-ws -- pkill -f '^perl httpd.pl 8103'
	wait_port 8103 absent
	run curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ALICE" "$BERTH_SERVER/w/ported-ws/ports/8103/"
	assert_equal "$output" 502
}

@test "private, org and public are enforced for the owner, another user and anonymous" {
	serve 8104
	wait_port 8104 present
	url="$BERTH_SERVER/w/ported-ws/ports/8104/"
	code() { curl -s -o /dev/null -w '%{http_code}' "$@" "$url"; }
	assert_equal "$(code -H "Authorization: Bearer $ALICE")" 200
	assert_equal "$(code -H "Authorization: Bearer $BOB")" 404
	assert_equal "$(code)" 302
	assert_equal "$(code -X POST)" 401
	# bob cannot change it either
	run curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $BOB" \
		--data '{"visibility": "public"}' "$BERTH_SERVER/api/v1/workspaces/ported-ws/ports/8104/visibility"
	assert_equal "$output" 404
	run curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BOB" "$BERTH_SERVER/api/v1/workspaces/ported-ws/ports"
	assert_equal "$output" 404
	BERTH_TOKEN=$ALICE run curl -sf -X POST -H "Authorization: Bearer $ALICE" --data '{"visibility": "org"}' \
		"$BERTH_SERVER/api/v1/workspaces/ported-ws/ports/8104/visibility"
	assert_success
	assert_equal "$(code -H "Authorization: Bearer $BOB")" 200
	assert_equal "$(code)" 302
	curl -sf -X POST -H "Authorization: Bearer $ALICE" --data '{"visibility": "public"}' \
		"$BERTH_SERVER/api/v1/workspaces/ported-ws/ports/8104/visibility" >/dev/null
	assert_equal "$(code)" 200
	run curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $ALICE" --data '{"visibility": "world"}' \
		"$BERTH_SERVER/api/v1/workspaces/ported-ws/ports/8104/visibility"
	assert_equal "$output" 400
}

@test "Berth's cookies and token never reach the app, and its pages are sandboxed" {
	serve 8105
	wait_port 8105 present
	run curl -s -D "$BATS_TEST_TMPDIR/h" -H "Authorization: Bearer $ALICE" \
		-H "Cookie: berth_session=secret-session; app_pref=dark; berth_csrf=secret-csrf" \
		"$BERTH_SERVER/w/ported-ws/ports/8105/echo-headers"
	assert_output_contains "app_pref=dark"
	[[ "$output" != *secret-session* ]]
	[[ "$output" != *secret-csrf* ]]
	[[ "$output" != *"$ALICE"* ]]
	[[ "${output,,}" != *authorization* ]]
	grep -i '^content-security-policy: sandbox' "$BATS_TEST_TMPDIR/h"
	! grep -i '^content-security-policy:.*allow-same-origin' "$BATS_TEST_TMPDIR/h"
}

@test "a 1 GiB download streams with flat berthd memory" {
	serve 8106
	wait_port 8106 present
	rss() { awk '/VmRSS/ {print $2}' "/proc/$BERTHD_PID/status"; }
	before=$(rss)
	run curl -s -o /dev/null -w '%{size_download} %{speed_download}' -H "Authorization: Bearer $ALICE" \
		"$BERTH_SERVER/w/ported-ws/ports/8106/big/1024"
	after=$(rss)
	echo "downloaded: $output; berthd RSS ${before} kB -> ${after} kB"
	assert_equal "${output%% *}" 1073741824
	# flat: the body is streamed, never held (64 MiB of slack for the allocator)
	[ $((after - before)) -lt 65536 ]
}

@test "a tunnel carries a raw TCP connection to the port (berth port-forward's route)" {
	serve 8107
	wait_port 8107 present
	url="${BERTH_SERVER/http:/ws:}/api/v1/workspaces/ported-ws/ports/8107/tunnel"
	cat >"$BATS_TEST_TMPDIR/tunnel.mjs" <<'JS'
const [, , url, token] = process.argv;
const ws = new WebSocket(url, { headers: { Authorization: 'Bearer ' + token } });
ws.binaryType = 'arraybuffer';
let out = '';
ws.onopen = () => ws.send(new TextEncoder().encode('GET /through-tunnel HTTP/1.0\r\n\r\n'));
ws.onmessage = (e) => { out += new TextDecoder().decode(e.data); };
ws.onclose = () => { console.log(out); process.exit(0); };
ws.onerror = () => { console.log('ERROR'); process.exit(1); };
setTimeout(() => { console.log(out); process.exit(0); }, 20000);
JS
	run timeout 30 node --experimental-websocket --no-warnings "$BATS_TEST_TMPDIR/tunnel.mjs" "$url" "$ALICE"
	assert_output_contains "hello from port 8107 at /through-tunnel"
	run timeout 30 node --experimental-websocket --no-warnings "$BATS_TEST_TMPDIR/tunnel.mjs" "$url" "$BOB"
	assert_output_contains "ERROR"
	run curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ALICE" -H 'Upgrade: websocket' \
		-H 'Connection: Upgrade' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
		"$BERTH_SERVER/api/v1/workspaces/ported-ws/ports/8199/tunnel"
	assert_equal "$output" 502
}

@test "berth port-forward relays a local port, uploads and downloads included" {
	serve 8108
	wait_port 8108 present
	lport=$((12000 + RANDOM % 8000))
	BERTH_TOKEN=$ALICE "$BERTH" port-forward ported-ws "$lport:8108" >"$BATS_TEST_TMPDIR/pf.log" 2>&1 3>&- &
	pf=$!
	for i in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$lport/" && break; sleep 0.1; done
	run curl -s "http://127.0.0.1:$lport/forwarded"
	assert_equal "$output" "hello from port 8108 at /forwarded"
	run curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$lport/big/64"
	assert_equal "$output" 67108864
	head -c 8388608 /dev/zero >"$BATS_TEST_TMPDIR/upload"
	run timeout 60 curl -s -X POST --data-binary @"$BATS_TEST_TMPDIR/upload" "http://127.0.0.1:$lport/uploaded"
	assert_equal "$output" "hello from port 8108 at /uploaded"
	kill $pf
	# never on all interfaces
	! ss -ltn | grep -q "0.0.0.0:$lport"
}
