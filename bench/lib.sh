# bench/lib.sh - what benchmarks share: a berthd of their own and its clean-up.
# shellcheck shell=bash disable=SC2046,SC2207
#
# Source it from a bench script after setting BENCH_NAME (for messages). It
# sets ROOT, BERTH, BERTHD, AGENT, IMAGE and TAG (a random tag for everything
# the run makes), and defines:
#   die MSG                 print "bench/NAME: MSG" and exit 1
#   alive PID, wait_gone PID TENTHS
#   bench_workdir           WORK (a temporary directory), DATA, LOGS
#   bench_start_berthd ARGS berthd --engine embedded (its own podman service)
#                           on a free loopback port with --data DATA and ARGS;
#                           sets BERTHD_PID, SERVICE_PID, BERTH_SERVER, BERTH_PORT
#   bench_login_token       an API token of berthd's first admin (BERTH_TOKEN)
#   bench_idle_never        lets "never" be an idle timeout and makes it the
#                           admin's own, so that no workspace stops mid-run
#   bench_create_running PREFIX N REPO WAIT_S
#                           creates PREFIX-1..N of REPO (--no-wait) and waits
#                           up to WAIT_S for all to run; prints how long that
#                           took and sets RUNNING (how many run)
#   bench_cleanup           stops CHILD (a measured command cut short, with its
#                           process group), BENCH_PIDS (other servers a bench
#                           started), berthd and its podman service, removes the
#                           containers of DATA's workspaces, runs the script's
#                           bench_cleanup_extra if it has one, and WORK (call it
#                           from the script's EXIT trap; KEEP=DIR first copies
#                           the logs there)
# Uses the release build (build/), not the sanitizer one.

# shellcheck disable=SC2034
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BERTH=$ROOT/build/src/cli/berth
BERTHD=$ROOT/build/src/daemon/berthd
AGENT=$ROOT/build/src/agent/berth-agent
IMAGE=localhost/berth/base:bookworm
TAG=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
BENCH=$ROOT/bench
BERTHD_PID=
SERVICE_PID=
CHILD=
BENCH_PIDS=()
WORK=
KEEP=${KEEP:-}
ADMIN_PASSWORD=bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')

die() {
	echo "bench/${BENCH_NAME:-bench}: $*" >&2
	exit 1
}

# alive PID: the process exists and has not exited (our children stay zombies
# until reaped, and kill -0 still reaches those)
alive() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "${st%% *}" != Z ]
}

# wait_gone PID TENTHS: true once PID has exited, within TENTHS tenths of a second
wait_gone() {
	local i
	for ((i = 0; i < $2; i++)); do
		alive "$1" || return 0
		sleep 0.1
	done
	! alive "$1"
}

bench_workdir() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench.XXXXXX")
	DATA=$WORK/data
	LOGS=$WORK/logs
	mkdir -p "$LOGS"
}

bench_start_berthd() {
	local port i
	for _ in $(seq 1 20); do
		port=$((20000 + RANDOM % 12000))
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			continue # taken
		fi
		# its own session: Ctrl-C reaches the script, and clean-up stops berthd
		BERTH_ADMIN_PASSWORD=$ADMIN_PASSWORD setsid "$BERTHD" --engine embedded --data "$DATA" \
			--listen "127.0.0.1:$port" --agent "$AGENT" "$@" >>"$LOGS/berthd.log" 2>&1 &
		BERTHD_PID=$!
		BERTH_PORT=$port
		export BERTH_SERVER="http://127.0.0.1:$port"
		for ((i = 0; i < 600; i++)); do # 60 s
			alive "$BERTHD_PID" || break
			if curl -sf --max-time 2 "$BERTH_SERVER/api/v1/health" 2>/dev/null |
				grep -q '"engine":"ok"'; then
				SERVICE_PID=$(pgrep -P "$BERTHD_PID" | head -n1)
				[ "$(cat "/proc/$BERTHD_PID/comm" 2>/dev/null)" = berthd ] || return 1
				return 0
			fi
			sleep 0.1
		done
		kill -KILL "$BERTHD_PID" 2>/dev/null
		wait "$BERTHD_PID" 2>/dev/null
		BERTHD_PID=
	done
	return 1
}

bench_login_token() {
	curl -sf --max-time 30 -X POST -H 'Content-Type: application/json' \
		--data-binary "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\",\"mode\":\"token\",\"token_name\":\"bench\"}" \
		"$BERTH_SERVER/api/v1/auth/login" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p'
}

bench_idle_never() {
	curl -sf -X PUT -H "Authorization: Bearer $BERTH_TOKEN" -H 'Content-Type: application/json' \
		--data-binary '{"idle_allow_never": 1}' "$BERTH_SERVER/api/v1/admin/settings" >/dev/null
	"$BERTH" settings idle never >/dev/null || die "cannot set the idle timeout"
}

bench_create_running() {
	local prefix=$1 n=$2 repo=$3 wait_s=$4 i t0 t1
	t0=$(date +%s.%N)
	for i in $(seq 1 "$n"); do
		"$BERTH" create "$repo" --name "$prefix-$i" --no-wait >/dev/null || die "create $i failed"
	done
	RUNNING=0
	for _ in $(seq 1 "$wait_s"); do
		RUNNING=$(curl -sf -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/workspaces" |
			jq '[.workspaces[] | select(.state == "running")] | length')
		[ "$RUNNING" = "$n" ] && break
		sleep 1
	done
	t1=$(date +%s.%N)
	echo "workspaces running: $RUNNING of $n (created in $(echo "$t1 - $t0" | bc) s)"
}

bench_cleanup() {
	local rc=$?
	trap '' INT TERM
	set +e
	echo "cleaning up ..." >&2
	if [ -n "$CHILD" ] && alive "$CHILD"; then
		kill -TERM -- "-$CHILD" "$CHILD" 2>/dev/null
		wait_gone "$CHILD" 100 || kill -KILL -- "-$CHILD" "$CHILD" 2>/dev/null
	fi
	local pid
	for pid in "${BENCH_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null && { wait_gone "$pid" 50 || kill -KILL "$pid" 2>/dev/null; }
	done
	# berthd first, so that no job of it creates a container after we looked
	if [ -n "$BERTHD_PID" ] && alive "$BERTHD_PID"; then
		[ -z "$SERVICE_PID" ] && SERVICE_PID=$(pgrep -P "$BERTHD_PID" | head -n1)
		kill -TERM "$BERTHD_PID" 2>/dev/null
		wait_gone "$BERTHD_PID" 100 || kill -KILL "$BERTHD_PID" 2>/dev/null
	fi
	if [ -n "$SERVICE_PID" ] && alive "$SERVICE_PID" &&
		grep -qa "$DATA" "/proc/$SERVICE_PID/cmdline" 2>/dev/null; then
		kill -TERM "$SERVICE_PID" 2>/dev/null
		wait_gone "$SERVICE_PID" 50 || kill -KILL "$SERVICE_PID" 2>/dev/null
	fi
	local id ids=()
	for id in $(ls "$DATA/workspaces" 2>/dev/null) $(ls "$DATA/run" 2>/dev/null); do
		ids+=($(podman ps -a -q --filter "name=^berth-$id\$" 2>/dev/null))
	done
	if [ ${#ids[@]} -gt 0 ]; then
		podman rm -f -t 0 $(printf '%s\n' "${ids[@]}" | sort -u) >/dev/null 2>&1
	fi
	declare -F bench_cleanup_extra >/dev/null && bench_cleanup_extra
	if [ -n "$KEEP" ] && [ -n "$WORK" ]; then
		mkdir -p "$KEEP" && cp -a "$LOGS/." "$KEEP/" && echo "logs kept in $KEEP" >&2
	fi
	[ -n "$WORK" ] && rm -rf "$WORK"
	exit "$rc"
}
