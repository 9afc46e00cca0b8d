# helpers.bash - shared set-up for Berth's system tests (in the manner of
# podman's test/system/helpers.bash). Every test file gets its own berthd with
# its own data dir and port, against the suite's real Podman service, and
# removes every container it made.

BERTH_ROOT=${BERTH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BERTH_BIN=${BERTH_BIN:-$BERTH_ROOT/build-asan/src}
export BERTH_AGENT=${BERTH_AGENT:-$BERTH_BIN/agent/berth-agent}
BERTH=$BERTH_BIN/cli/berth
BERTHD=$BERTH_BIN/daemon/berthd

# Starts berthd for this file. Extra arguments go to berthd; with --tls-cert
# it is https://, and the caller exports CURL_CA_BUNDLE and BERTH_CACERT.
start_berthd() {
	# remembered for restart_berthd
	[ $# -eq 0 ] || printf '%s\n' "$@" >"$BATS_FILE_TMPDIR/berthd.args"
	BERTH_DATA=${BERTH_DATA:-$BATS_FILE_TMPDIR/data}
	mkdir -p "$BERTH_DATA"
	local engine_args=()
	if [[ " $* " != *" --engine "* ]]; then
		engine_args=(--engine "${BERTH_TEST_ENGINE:?run through scripts/test.sh}")
	fi
	export BERTH_ADMIN_PASSWORD=${BERTH_ADMIN_PASSWORD:-admin-pass-$RANDOM$RANDOM}
	echo "$BERTH_ADMIN_PASSWORD" >"$BATS_FILE_TMPDIR/admin.password"
	local port i scheme=http
	[[ " $* " == *" --tls-cert "* ]] && scheme=https
	for i in $(seq 1 20); do
		port=$((20000 + RANDOM % 12000))
		# the suite makes many workspaces as one user: the per-user limits
		# are tested on their own (006-accounts.bats)
		"$BERTHD" --data "$BERTH_DATA" --listen "127.0.0.1:$port" "${engine_args[@]}" \
			--max-workspaces 1000 --max-running 1000 \
			--ide "${BERTH_IDE_DIR:-$BERTH_ROOT/.berth-data/ide}" \
			--web-vendor "$BERTH_ROOT/.berth-data/web-vendor/node_modules" "$@" \
			>>"$BATS_FILE_TMPDIR/berthd.log" 2>&1 3>&- &
		BERTHD_PID=$!
		export BERTH_SERVER="$scheme://127.0.0.1:$port"
		if wait_for_health; then
			echo "$BERTHD_PID" >"$BATS_FILE_TMPDIR/berthd.pid"
			echo "$BERTH_SERVER" >"$BATS_FILE_TMPDIR/berthd.url"
			BERTH_TOKEN=$(login_token admin "$BERTH_ADMIN_PASSWORD") || return 1
			echo "$BERTH_TOKEN" >"$BATS_FILE_TMPDIR/admin.token"
			export BERTH_TOKEN
			# users who are not admins clone local paths only from folders
			# the allow-list names: make_repo's
			mkdir -p "$BATS_FILE_TMPDIR/repos"
			"$BERTH" admin settings --allow "repo:$BATS_FILE_TMPDIR/repos" >/dev/null || return 1
			return 0
		fi
		kill -9 "$BERTHD_PID" 2>/dev/null || true
	done
	echo "berthd did not start; log:" >&2
	cat "$BATS_FILE_TMPDIR/berthd.log" >&2
	return 1
}

# Waits (bounded) until berthd answers and its engine is ready.
wait_for_health() {
	local i
	for i in $(seq 1 300); do
		if ! kill -0 "$BERTHD_PID" 2>/dev/null; then
			return 1
		fi
		if curl -sf "$BERTH_SERVER/api/v1/health" 2>/dev/null | grep -q '"engine":"ok"'; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# login_token NAME PASSWORD: prints an API token for the user.
login_token() {
	curl -sf -X POST -H 'Content-Type: application/json' \
		--data-binary "$(jq -cn --arg u "$1" --arg p "$2" '{username: $u, password: $p, mode: "token"}')" \
		"$BERTH_SERVER/api/v1/auth/login" | jq -r .token
}

# make_user NAME: creates a user (as admin) and prints a token of theirs.
make_user() {
	local pw="pw-$1-$RANDOM$RANDOM"
	curl -sf -X POST -H "Authorization: Bearer $(cat "$BATS_FILE_TMPDIR/admin.token")" \
		-H 'Content-Type: application/json' \
		--data-binary "$(jq -cn --arg u "$1" --arg p "$pw" '{name: $u, password: $p}')" \
		"$BERTH_SERVER/api/v1/users" >/dev/null || return 1
	login_token "$1" "$pw"
}

# Restores BERTH_SERVER etc. in each test of a file (setup_file's exports do
# reach tests, but a restarted berthd writes new ones).
load_berthd_env() {
	BERTH_DATA=$BATS_FILE_TMPDIR/data
	BERTHD_PID=$(cat "$BATS_FILE_TMPDIR/berthd.pid" 2>/dev/null)
	BERTH_SERVER=$(cat "$BATS_FILE_TMPDIR/berthd.url" 2>/dev/null)
	BERTH_TOKEN=$(cat "$BATS_FILE_TMPDIR/admin.token" 2>/dev/null)
	BERTH_ADMIN_PASSWORD=$(cat "$BATS_FILE_TMPDIR/admin.password" 2>/dev/null)
	export BERTH_DATA BERTHD_PID BERTH_SERVER BERTH_TOKEN BERTH_ADMIN_PASSWORD
}

# Stops berthd and removes every container of this file's workspaces.
stop_berthd() {
	load_berthd_env
	[ -n "$BERTHD_PID" ] && kill "$BERTHD_PID" 2>/dev/null || true
	local i
	for i in $(seq 1 50); do
		kill -0 "$BERTHD_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$BERTHD_PID" 2>/dev/null || true
	kill_bg
	remove_test_containers
	# surface sanitizer reports
	if grep -q -E 'ERROR: AddressSanitizer|runtime error:' "$BATS_FILE_TMPDIR/berthd.log" 2>/dev/null; then
		cp "$BATS_FILE_TMPDIR/berthd.log" "$BERTH_ROOT/tests/artifacts/$(basename "$BATS_TEST_FILENAME").sanitizer.log"
	fi
}

# kill -9 of berthd, then a new one on the same data dir (a crash and restart).
restart_berthd() {
	kill -9 "$BERTHD_PID"
	wait "$BERTHD_PID" 2>/dev/null || true
	local args=()
	[ -f "$BATS_FILE_TMPDIR/berthd.args" ] && mapfile -t args <"$BATS_FILE_TMPDIR/berthd.args"
	start_berthd "${args[@]}"
	load_berthd_env
}

remove_test_containers() {
	local id mnt
	for id in $(ls "$BERTH_DATA/run" 2>/dev/null) $(ls "$BERTH_DATA/workspaces" 2>/dev/null); do
		podman rm -f -t 0 "berth-$id" >/dev/null 2>&1 || true
	done
	# prebuilds' images, and workspaces' files mounted over a prebuild's
	for id in $(ls "$BERTH_DATA/workspaces" 2>/dev/null); do
		[[ $id == pb* ]] && podman rmi -f "localhost/berth/prebuild-$id:latest" >/dev/null 2>&1 || true
	done
	for mnt in $(awk -v d="$BERTH_DATA/" 'index($2, d) == 1 {print $2}' /proc/mounts); do
		umount -l "$mnt" 2>/dev/null || true
	done
}

# Containers that belong to this file's berthd.
our_containers() {
	local id
	for id in $(ls "$BERTH_DATA/run" 2>/dev/null) $(ls "$BERTH_DATA/workspaces" 2>/dev/null); do
		podman ps -a -q --filter "name=^berth-$id\$"
	done | sort -u
}

# run_berth ARGS...: runs the CLI with a generous timeout; $status/$output set.
run_berth() {
	run timeout 300 "$BERTH" "$@"
}

# make_repo NAME [DEVCONTAINER_JSON]: a git repo with a README (and a config).
make_repo() {
	local dir=$BATS_FILE_TMPDIR/repos/$1
	mkdir -p "$dir"
	git -C "$dir" init -q -b main
	echo "# $1" >"$dir/README.md"
	if [ -n "${2:-}" ]; then
		mkdir -p "$dir/.devcontainer"
		printf '%s\n' "$2" >"$dir/.devcontainer/devcontainer.json"
	fi
	git -C "$dir" add -A
	git -C "$dir" -c user.name=Test -c user.email=test@example.com commit -q -m "initial"
	echo "$dir"
}

commit_file() { # commit_file REPO PATH CONTENT MESSAGE
	echo "$3" >"$1/$2"
	git -C "$1" add -A
	git -C "$1" -c user.name=Test -c user.email=test@example.com commit -q -m "$4"
}

# A unique workspace name for this test.
ws_name() {
	echo "t$(printf '%s' "$BATS_TEST_NAME$BATS_TEST_NUMBER$$$RANDOM" | md5sum | cut -c1-10)"
}

assert_success() {
	if [ "$status" -ne 0 ]; then
		echo "expected success, got exit $status; output:" >&2
		echo "$output" >&2
		return 1
	fi
}

assert_failure() {
	if [ "$status" -eq 0 ]; then
		echo "expected failure, got exit 0; output:" >&2
		echo "$output" >&2
		return 1
	fi
}

assert_output_contains() {
	if [[ "$output" != *"$1"* ]]; then
		echo "expected output to contain: $1" >&2
		echo "actual output:" >&2
		echo "$output" >&2
		return 1
	fi
}

assert_equal() {
	if [ "$1" != "$2" ]; then
		echo "expected '$2', got '$1'" >&2
		return 1
	fi
}

# ws_field WS FIELD: one field of `berth show --json`.
ws_field() {
	"$BERTH" show "$1" --json | jq -r ".$2"
}

# wait_state WS STATE...: waits (bounded) until the workspace is in one of them.
wait_state() {
	local ws=$1
	shift
	local i s
	for i in $(seq 1 600); do
		s=$(ws_field "$ws" state 2>/dev/null)
		for want in "$@"; do
			[ "$s" = "$want" ] && return 0
		done
		sleep 0.2
	done
	echo "workspace $ws is '$s', wanted one of: $*" >&2
	return 1
}

# wait_lifecycle WS VALUE: waits (bounded, 60 s) until the workspace's
# lifecycle field is VALUE ("running postCreateCommand", "done", ...).
wait_lifecycle() {
	local i l
	for i in $(seq 1 300); do
		l=$(ws_field "$1" lifecycle 2>/dev/null)
		[ "$l" = "$2" ] && return 0
		sleep 0.2
	done
	echo "workspace $1's lifecycle is '$l', wanted '$2'" >&2
	return 1
}

# api METHOD PATH [BODY]: curl the API as $API_TOKEN (default: $BERTH_TOKEN;
# "none" for anonymous); prints "STATUS BODY".
api() {
	local method=$1 path=$2 body=${3:-}
	local token=${API_TOKEN:-$BERTH_TOKEN}
	local auth=()
	[ "$token" != none ] && [ -n "$token" ] && auth=(-H "Authorization: Bearer $token")
	if [ -n "$body" ]; then
		curl -s -o "$BATS_TEST_TMPDIR/api.out" -w '%{http_code}' -X "$method" "${auth[@]}" \
			-H 'Content-Type: application/json' --data-binary "$body" "$BERTH_SERVER$path"
	else
		curl -s -o "$BATS_TEST_TMPDIR/api.out" -w '%{http_code}' -X "$method" "${auth[@]}" "$BERTH_SERVER$path"
	fi
	echo -n " "
	cat "$BATS_TEST_TMPDIR/api.out"
}

# bg COMMAND...: starts a helper server in the background, detached from bats'
# output (or bats would wait for it), and remembers it for kill_bg.
bg() {
	"$@" >/dev/null 2>&1 3>&- &
	echo $! >>"$BATS_FILE_TMPDIR/bg.pids"
	BG_PID=$!
}

# bg_on_free_port PROBE CMD...: starts CMD in the background (bg) on a free
# loopback port, found by trying: "{port}" in PROBE (a shell command) and in
# CMD's arguments becomes the port. Succeeds, with PORT set, once PROBE
# succeeds; a server that exits (its port was taken) is tried on another.
# Bounded: 20 ports, 10 s each.
bg_on_free_port() {
	local probe=$1 i j
	shift
	for i in $(seq 1 20); do
		PORT=$((12000 + RANDOM % 8000))
		bg "${@//\{port\}/$PORT}"
		for j in $(seq 1 100); do
			sh -c "${probe//\{port\}/$PORT}" >/dev/null 2>&1 && return 0
			kill -0 "$BG_PID" 2>/dev/null || break
			sleep 0.1
		done
	done
	echo "no server came up for: $*" >&2
	return 1
}

kill_bg() {
	local p
	for p in $(cat "$BATS_FILE_TMPDIR/bg.pids" 2>/dev/null); do
		kill "$p" 2>/dev/null || true
	done
	rm -f "$BATS_FILE_TMPDIR/bg.pids"
}
