#!/usr/bin/env bats
# Waiting without holding anyone up: the server's idle timeout (berthd
# --idle-timeout, here 2 s) closes connections that do not send a whole
# request in time, with the upstream of a kept-alive proxied connection, and
# leaves terminals and event streams alone; a workspace whose agent does not
# answer makes its own requests fail, not everyone else's wait.

load helpers

setup_file() {
	start_berthd --idle-timeout 2
	load_berthd_env
	repo=$(make_repo idle)
	cp "$BATS_TEST_DIRNAME/fixtures/proxy-echo.pl" "$repo/"
	git -C "$repo" add -A
	git -C "$repo" -c user.name=T -c user.email=t@t commit -qm server
	"$BERTH" create "$repo" --name idle >/dev/null
}

teardown_file() {
	stop_berthd
}

setup() {
	load_berthd_env
	BPORT=${BERTH_SERVER##*:}
}

teardown() {
	[ -z "${PAUSED:-}" ] || podman unpause "$PAUSED" >/dev/null 2>&1 || true
}

# idle_client MODE [PATH FLAG]: opens a connection to berthd and prints, once
# berthd closes it, "closed after S" (seconds since it went quiet, one
# decimal). MODE: silent (sends nothing), drip (a request head a byte every
# 0.3 s, never finished), or proxy (GETs of PATH through the port proxy every
# 0.3 s on the one connection, printing each answer's status and body, until
# the file FLAG exists; then nothing). Gives up after 60 s.
idle_client() {
	python3 - "$BPORT" "$BERTH_TOKEN" "$@" <<'PY'
import os, socket, sys, time
port, token, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(0.3)

def get(path):
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    data = b""
    while True:
        try:
            got = s.recv(65536)
        except socket.timeout:
            continue
        if not got:
            sys.exit("closed while a request was under way")
        data += got
        if b"\r\n\r\n" in data:
            head, body = data.split(b"\r\n\r\n", 1)
            length = [l.split(b":")[1] for l in head.lower().split(b"\r\n") if l.startswith(b"content-length:")]
            if len(body) >= int(length[0]):
                print(head.split(b" ")[1].decode(), body.decode().strip(), flush=True)
                return

if mode == "proxy":
    limit = time.monotonic() + 60
    while not os.path.exists(sys.argv[5]) and time.monotonic() < limit:
        get(sys.argv[4])
        time.sleep(0.3)
start = time.monotonic()
drip = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000
answer = b""
while time.monotonic() - start < 60:
    if mode == "drip" and drip:
        s.send(drip[:1])
        drip = drip[1:]
    try:
        got = s.recv(65536)
        if got == b"":
            break
        answer += got
    except socket.timeout:
        continue
    except ConnectionResetError:
        break
else:
    sys.exit("still open after 60 s")
if answer:
    print("answered", answer.split(b"\r\n")[0].decode(), flush=True)
print(f"closed after {time.monotonic() - start:.1f}", flush=True)
PY
}

# serve PORT: the test server on the workspace's 127.0.0.1:PORT, once it
# answers through the proxy
serve() {
	"$BERTH" exec idle -- sh -c "setsid perl proxy-echo.pl $1 127.0.0.1 </dev/null >/dev/null 2>&1 &"
	local i
	for i in $(seq 1 100); do
		curl -sf -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/w/idle/ports/$1/" >/dev/null && return 0
		sleep 0.2
	done
	echo "the server on port $1 does not answer" >&2
	return 1
}

# closed_late OUTPUT: the "closed after S" line says S >= 1.5 s: the timeout
# (2 s, checked every 0.5 s) closed it, not something at once
closed_late() {
	local secs
	secs=$(awk '$1 == "closed" {print $3}' <<<"$1")
	[ -n "$secs" ] && awk -v s="$secs" 'BEGIN { exit !(s >= 1.5) }'
}

@test "a connection that sends no request, or never finishes its head, is closed after the idle timeout" {
	run idle_client silent
	assert_success
	closed_late "$output"
	[[ "$output" != *answered* ]]
	# a half-sent request is told why
	run idle_client drip
	assert_success
	closed_late "$output"
	assert_output_contains "answered HTTP/1.1 408 Request Timeout"
	# the server still answers
	run curl -sf "$BERTH_SERVER/api/v1/health"
	assert_success
}

@test "an idle kept-alive proxied connection is closed, and its connection to the app with it" {
	serve 8301
	out=$BATS_TEST_TMPDIR/client.out flag=$BATS_TEST_TMPDIR/quiet
	idle_client proxy /w/idle/ports/8301/conn "$flag" >"$out" &
	client=$!
	for i in $(seq 1 100); do
		[ -s "$out" ] && break
		sleep 0.1
	done
	# "200 conn PID": the app's child for this connection, which lives as
	# long as the connection; while the client keeps asking, it is there
	pid=$(awk 'NR == 1 && $1 == 200 && $2 == "conn" {print $3}' "$out")
	[ -n "$pid" ]
	run "$BERTH" exec idle -- test -d "/proc/$pid"
	assert_success
	touch "$flag"
	wait "$client"
	run cat "$out"
	closed_late "$output"
	# one connection: every answer came from the same child
	assert_equal "$(grep -c "^200 conn $pid$" "$out")" "$(grep -c '^200 ' "$out")"
	for i in $(seq 1 100); do
		"$BERTH" exec idle -- test -d "/proc/$pid" || break
		sleep 0.2
	done
	run "$BERTH" exec idle -- test -d "/proc/$pid"
	assert_failure
}

@test "a quiet terminal and a quiet event stream outlive the idle timeout" {
	url="${BERTH_SERVER/http:/ws:}/api/v1/workspaces/idle/terminal?cols=80&rows=24"
	run timeout 90 node --experimental-websocket --no-warnings "$BATS_TEST_DIRNAME/ws-client.mjs" \
		"$url" "$BERTH_TOKEN" '@sleep 5000' $'echo still-$((40+2))\n' $'exit\n'
	assert_success
	assert_output_contains "still-42"
	# the server-sent events stream: curl gives up first (28: its own timeout)
	run curl -sN --max-time 6 -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/stream"
	assert_equal "$status" 28
}

@test "a workspace whose agent does not answer fails its own requests and holds up nobody else" {
	serve 8302
	# freeze the whole container: its agent can neither accept nor answer
	PAUSED=$(ws_field idle container_id)
	podman pause "$PAUSED" >/dev/null
	curl -s -o "$BATS_TEST_TMPDIR/body" -w '%{http_code}' -H "Authorization: Bearer $BERTH_TOKEN" \
		"$BERTH_SERVER/w/idle/ports/8302/" >"$BATS_TEST_TMPDIR/code" &
	stalled=$!
	# berthd answers others while that request waits for the agent (up to 3 s)
	sleep 0.3
	run curl -sf --max-time 20 "$BERTH_SERVER/api/v1/health"
	assert_success
	kill -0 "$stalled"
	wait "$stalled"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/code")" 502
	run cat "$BATS_TEST_TMPDIR/body"
	assert_output_contains "the workspace agent does not answer"
	podman unpause "$PAUSED" >/dev/null
	PAUSED=
	run curl -sf -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/w/idle/ports/8302/"
	assert_success
	assert_output_contains "hello from port 8302"
}
