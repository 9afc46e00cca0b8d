#!/usr/bin/env bats
# Leaks under real traffic: many requests, terminals, execs and forwarded
# connections leave the workspace's agent and berthd with the descriptors and
# memory they had before. The counts are the issue's (#16), about a minute
# in all on two cores; set them to soak for longer or shorter:
#   BERTH_SOAK_N      requests through the port proxy, per server (20000)
#   BERTH_SOAK_TERMS  terminals opened and closed, twice (2000)
#   BERTH_SOAK_EXECS  `berth exec` runs (2000)
#   BERTH_SOAK_FWD    connections through `berth port-forward` (1000)

load helpers

SOAK_N=${BERTH_SOAK_N:-20000}
SOAK_TERMS=${BERTH_SOAK_TERMS:-2000}
SOAK_EXECS=${BERTH_SOAK_EXECS:-2000}
SOAK_FWD=${BERTH_SOAK_FWD:-1000}
CLOSE_PORT=8301 # answers and closes every connection first (HTTP/1.0)
KEEP_PORT=8302  # keeps connections alive (HTTP/1.1)

setup_file() {
	# ASan keeps freed memory in a quarantine (256 MB by default), which
	# would look like growth; without it, freed memory is reused and RSS
	# measures leaks (LeakSanitizer still reports at exit). Each thread also
	# keeps a quarantine of its own (1 MB by default) on top of its allocator
	# caches: with berthd's 64 pool threads that alone is tens of MB that fill
	# once and then stay, so it is kept small too.
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1:thread_local_quarantine_size_kb=16"
	start_berthd
	load_berthd_env
	repo=$(make_repo soak)
	cp "$BATS_TEST_DIRNAME/fixtures/soak-server.pl" "$repo/"
	git -C "$repo" add -A
	git -C "$repo" -c user.name=T -c user.email=t@t commit -qm server
	"$BERTH" create "$repo" --name soak >/dev/null
	"$BERTH" exec soak -- sh -c "setsid perl soak-server.pl $CLOSE_PORT close </dev/null >/dev/null 2>&1 &"
	"$BERTH" exec soak -- sh -c "setsid perl soak-server.pl $KEEP_PORT keep </dev/null >/dev/null 2>&1 &"
	local i out
	for i in $(seq 1 100); do
		out=$(curl -s -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/workspaces/soak/ports")
		jq -e '[.ports[].port] | index(8301) != null and index(8302) != null' <<<"$out" >/dev/null && return 0
		sleep 0.2
	done
	echo "soak servers not detected: $out" >&2
	return 1
}

teardown_file() {
	stop_berthd
}

setup() {
	load_berthd_env
	AGENT_PID=$(podman inspect -f '{{.State.Pid}}' "$(ws_field soak container_id)")
	[ "$AGENT_PID" -gt 0 ]
}

fds() { # fds PID: how many descriptors the process holds
	ls "/proc/$1/fd" | wc -l
}

rss() { # rss PID: resident memory in kB
	awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

snapshot() { # snapshot: "AGENT_FDS BERTHD_FDS BERTHD_RSS"
	echo "$(fds "$AGENT_PID") $(fds "$BERTHD_PID") $(rss "$BERTHD_PID")"
}

# settled BEFORE: waits (bounded, 10 s) until the agent and berthd hold no
# more descriptors than in BEFORE (a snapshot) plus a few (an idle
# kept-alive upstream connection, a lingering close), and berthd's RSS has
# not grown by more than 16 MiB (ASan's quarantine and the allocator's
# caches; a leak of 1 kB per request would pass it well within the soak).
# Prints the figures.
settled() {
	local before=($1) now i
	for i in $(seq 1 50); do
		now=($(snapshot))
		if [ "${now[0]}" -le $((before[0] + 2)) ] && [ "${now[1]}" -le $((before[1] + 8)) ]; then
			break
		fi
		sleep 0.2
	done
	echo "agent fds ${before[0]} -> ${now[0]}; berthd fds ${before[1]} -> ${now[1]}; berthd RSS ${before[2]} kB -> ${now[2]} kB"
	[ "${now[0]}" -le $((before[0] + 2)) ] || { echo "the agent kept $((now[0] - before[0])) descriptors" >&2; return 1; }
	[ "${now[1]}" -le $((before[1] + 8)) ] || { echo "berthd kept $((now[1] - before[1])) descriptors" >&2; return 1; }
	[ "${now[2]}" -le $((before[2] + 16384)) ] || { echo "berthd grew by $((now[2] - before[2])) kB" >&2; return 1; }
}

# soak URL N [CURL_ARGS...]: N GETs of URL, 8 at a time; every answer must be
# a 200 within $SOAK_LIMIT seconds (0.5). Prints the figures.
soak() {
	local url=$1 n=$2 limit=${SOAK_LIMIT:-0.5}
	shift 2
	local cfg=$BATS_TEST_TMPDIR/soak.curl
	awk -v u="$url" -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "url = \"%s\"\noutput = \"/dev/null\"\n", u }' >"$cfg"
	local start=$SECONDS
	curl -s --parallel --parallel-max 8 --max-time 10 -w '%{http_code} %{time_total}\n' "$@" -K "$cfg" \
		>"$BATS_TEST_TMPDIR/soak.out"
	local ok slow max
	ok=$(grep -c '^200 ' "$BATS_TEST_TMPDIR/soak.out")
	slow=$(awk -v l="$limit" '$2 > l' "$BATS_TEST_TMPDIR/soak.out" | wc -l)
	max=$(sort -k2 -g "$BATS_TEST_TMPDIR/soak.out" | tail -1 | cut -d' ' -f2)
	echo "$n requests in $((SECONDS - start)) s: $ok answered 200, $slow over $limit s, slowest $max s"
	if [ "$ok" -ne "$n" ]; then
		sort "$BATS_TEST_TMPDIR/soak.out" | cut -d' ' -f1 | uniq -c >&2
		return 1
	fi
	[ "$slow" -eq 0 ]
}

proxy_soak() { # proxy_soak PORT: warm up, then the soak, then the leak check
	local url=$BERTH_SERVER/w/soak/ports/$1/
	local auth=(-H "Authorization: Bearer $BERTH_TOKEN")
	soak "$url" 500 "${auth[@]}" # caches, pools and the allocator warm up
	sleep 1
	local before
	before=$(snapshot)
	soak "$url" "$SOAK_N" "${auth[@]}"
	settled "$before"
}

@test "a server that closes every connection answers every request through the proxy, and nothing leaks" {
	run proxy_soak $CLOSE_PORT
	echo "$output"
	assert_success
}

@test "a server that keeps connections alive answers every request through the proxy, and nothing leaks" {
	run proxy_soak $KEEP_PORT
	echo "$output"
	assert_success
}

@test "opening and closing many terminals leaks nothing" {
	url="${BERTH_SERVER/http:/ws:}/api/v1/workspaces/soak/terminal?cols=80&rows=24"
	cat >"$BATS_TEST_TMPDIR/terms.mjs" <<'JS'
// terms.mjs URL TOKEN N: opens N terminals, 4 at a time; each runs `exit 3`
// and must end with EXIT 3. Prints "N ended, slowest MS ms".
const [, , url, token, n] = process.argv;
const enc = new TextEncoder();
let ended = 0, slowest = 0, started = 0;
const one = () => new Promise((resolve) => {
  const t0 = Date.now();
  const ws = new WebSocket(url, { headers: { Authorization: 'Bearer ' + token } });
  ws.binaryType = 'arraybuffer';
  let exit = null;
  ws.onopen = () => ws.send(enc.encode('0exit 3\n'));
  ws.onmessage = (e) => {
    const b = new Uint8Array(e.data);
    if (b[0] === 50) exit = JSON.parse(new TextDecoder().decode(b.slice(1))).exit;
  };
  ws.onclose = ws.onerror = () => {
    if (exit === 3) ended++;
    slowest = Math.max(slowest, Date.now() - t0);
    resolve();
  };
});
const worker = async () => { while (started < +n) { started++; await one(); } };
await Promise.all([worker(), worker(), worker(), worker()]);
console.log(`${ended} ended, slowest ${slowest} ms`);
process.exit(0);
JS
	# a first round as many as the measured one: it fills the allocator's
	# per-thread caches (ASan's: 28 MB for 300 here, 38 MB for 1000; 1.7 MB
	# without ASan), which then stay; a leak shows as growth in the second
	# (with ASan +3.4 MB for 300, +10.8 MB for 2000; without, +64 kB for 2000)
	node --experimental-websocket --no-warnings "$BATS_TEST_TMPDIR/terms.mjs" "$url" "$BERTH_TOKEN" "$SOAK_TERMS" >/dev/null
	before=$(snapshot)
	start=$SECONDS
	run timeout 170 node --experimental-websocket --no-warnings "$BATS_TEST_TMPDIR/terms.mjs" "$url" "$BERTH_TOKEN" "$SOAK_TERMS"
	echo "$SOAK_TERMS terminals in $((SECONDS - start)) s: $output"
	assert_output_contains "$SOAK_TERMS ended"
	run settled "$before"
	echo "$output"
	assert_success
}

@test "many berth exec runs leak nothing" {
	seq 1 10 | xargs -P 4 -I{} "$BERTH" exec soak -- true
	before=$(snapshot)
	start=$SECONDS
	# every run must print its own number back: no output lost or mixed up
	run sh -c "seq 1 $SOAK_EXECS | xargs -P 4 -I{} $BERTH exec soak -- echo run-{} | sort -u | wc -l"
	echo "$SOAK_EXECS execs in $((SECONDS - start)) s: $output distinct answers"
	assert_equal "$output" "$SOAK_EXECS"
	run settled "$before"
	echo "$output"
	assert_success
}

@test "many connections through berth port-forward leak nothing" {
	lport=$((12000 + RANDOM % 8000))
	"$BERTH" port-forward soak "$lport:$CLOSE_PORT" >"$BATS_TEST_TMPDIR/pf.log" 2>&1 3>&- &
	pf=$!
	echo $pf >>"$BATS_FILE_TMPDIR/bg.pids"
	for i in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$lport/" && break; sleep 0.1; done
	soak "http://127.0.0.1:$lport/" 100 >/dev/null
	sleep 1
	before="$(snapshot) $(fds $pf)"
	# each connection is a new WebSocket from the CLI through berthd to the
	# agent: a burst of 8 on two cores has taken up to 2.8 s to set up on a
	# loaded machine (not yet explained; 1.96 s for 2000 on an idle one); the
	# leak this guards against shows as 502s and descriptors that stay
	SOAK_LIMIT=5 run soak "http://127.0.0.1:$lport/" "$SOAK_FWD"
	echo "$output"
	assert_success
	run settled "$before"
	echo "$output; port-forward fds ${before##* } -> $(fds $pf)"
	assert_success
	[ "$(fds $pf)" -le $((${before##* } + 2)) ]
	kill $pf
}
