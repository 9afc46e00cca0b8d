#!/usr/bin/env bash
# bench/create.sh [--runs N] [--no-warmup] [--no-trace] [--keep DIR]
#
# A benchmark, not a test: it measures and prints, and exits 0 however slow the
# machine is (it exits non-zero only when it cannot run at all: no build, no
# image, no podman).
#
# In one run, on the same small git repository and the same image
# (localhost/berth/base:bookworm, postCreateCommand "echo ready"), it times:
#
#   berth   create (returns when the workspace is running), stop, start, rm,
#           against a berthd it starts itself on a free loopback port with a
#           temporary --data dir and `--engine embedded` (berthd runs and
#           supervises its own rootful `podman system service` on a socket in
#           the data dir; the storage is the host's, so the image is there).
#   peer    `devcontainer up --workspace-folder COPY --docker-path podman` from
#           @devcontainers/cli (pinned in bench/package.json, installed once into
#           bench/node_modules), each run on a fresh copy of the repository:
#             [default]        the config exactly as committed;
#             [userns=host]    + "runArgs": ["--userns=host"]  (on rootful podman
#                              the CLI adds --userns=keep-id for a non-root
#                              remoteUser, which podman 4.x refuses; host userns
#                              is what Berth's containers get);
#             [userns=host, updateRemoteUserUID=false]  also skips the derived
#                              "-uid" image the CLI builds by default.
#           For the first working variant also `devcontainer up` on the stopped
#           container (the CLI's "start"), and podman stop / rm -f of it (the CLI
#           has no stop or remove verb) for reference.
#
# Each is repeated --runs times (default 5) after one untimed warm-up round
# (--no-warmup skips it), interleaving the two tools. Then it prints min /
# median / max seconds, the create ratio Berth/peer, berthd's idle RSS, and the
# step timings of one extra traced `berth create` and `devcontainer up` (--no-trace
# skips them).
#
# Timed: the whole client command, wall clock. Berth's create includes the git
# clone of the repository; the peer's copy is made before its timer starts.
# berthd's first admin gets a random password (BERTH_ADMIN_PASSWORD) and the CLI
# an API token of it (BERTH_TOKEN), got before any timer starts.
#
# Everything it makes carries a unique tag (workspace names bench-TAG-*, the
# repository berth-bench-TAG, hence the CLI's images vsc-berth-bench-TAG-*); on
# exit, Ctrl-C or TERM it stops berthd and its podman service, removes those
# containers and images, and deletes its temporary directory (--keep DIR first
# copies the logs there).

# Word splitting of container ids and the table format are meant:
# shellcheck disable=SC2046,SC2059,SC2086,SC2119,SC2207,SC2317
set -uo pipefail
export LC_ALL=C

BENCH_NAME=create.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DEVCONTAINER=$BENCH/node_modules/.bin/devcontainer
OP_TIMEOUT=300 # seconds; a bound on every timed command, not a pass mark

RUNS=5
WARMUP=1
TRACE=1

while [ $# -gt 0 ]; do
	case $1 in
	--runs)
		[ $# -ge 2 ] || die "--runs needs a number"
		RUNS=$2
		shift 2
		;;
	--runs=*)
		RUNS=${1#--runs=}
		shift
		;;
	--no-warmup)
		WARMUP=0
		shift
		;;
	--no-trace)
		TRACE=0
		shift
		;;
	--keep)
		[ $# -ge 2 ] || die "--keep needs a directory"
		KEEP=$2
		shift 2
		;;
	-h | --help)
		sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive number"

# ---------------------------------------------------------------- checks ---
for b in "$BERTH" "$BERTHD" "$AGENT"; do
	[ -x "$b" ] || die "$b is missing: run 'make build' first"
done
command -v podman >/dev/null || die "podman is not installed"
command -v curl >/dev/null || die "curl is not installed"
command -v git >/dev/null || die "git is not installed"
podman image exists "$IMAGE" || die "$IMAGE is not in podman's storage: run scripts/setup.sh"

# The peer, installed once from the pinned version.
want_version=$(sed -n 's/.*"@devcontainers\/cli": *"\([^"]*\)".*/\1/p' "$BENCH/package.json")
have_version=$("$DEVCONTAINER" --version 2>/dev/null || true)
if [ "$have_version" != "$want_version" ]; then
	command -v npm >/dev/null || die "npm is not installed (apt-get install npm)"
	echo "installing @devcontainers/cli $want_version into bench/node_modules ..." >&2
	(cd "$BENCH" && timeout 600 npm install --no-audit --no-fund --loglevel=error >&2) ||
		die "npm install failed"
	have_version=$("$DEVCONTAINER" --version 2>/dev/null) || die "devcontainer CLI does not run"
fi

# ------------------------------------------------------------ workspace ---
bench_workdir
REPO_NAME=berth-bench-$TAG
REPO=$WORK/$REPO_NAME
mkdir -p "$WORK/peer" "$WORK/tmp"

# what berthd's clean-up does not know: the peer's containers (labelled with a
# local folder under WORK) and its derived images
bench_cleanup_extra() {
	local ids
	ids=$(podman ps -a --filter label=devcontainer.local_folder \
		--format '{{.ID}} {{index .Labels "devcontainer.local_folder"}}' 2>/dev/null |
		awk -v p="$WORK/" 'index($2, p) == 1 { print $1 }')
	[ -n "$ids" ] && podman rm -f -t 0 $ids >/dev/null 2>&1
	local imgs
	imgs=$(podman images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null |
		grep "^localhost/vsc-$REPO_NAME-" || true)
	[ -n "$imgs" ] && podman rmi -f $imgs >/dev/null 2>&1
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# The repository: one commit, a README and the shared devcontainer.json.
mkdir -p "$REPO/.devcontainer"
git -C "$REPO" init -q -b main
echo "# $REPO_NAME" >"$REPO/README.md"
cat >"$REPO/.devcontainer/devcontainer.json" <<EOF
{
  "image": "$IMAGE",
  "postCreateCommand": "echo ready"
}
EOF
git -C "$REPO" add -A
git -C "$REPO" -c user.name=Bench -c user.email=bench@example.invalid commit -q -m initial

# ---------------------------------------------------------------- berthd ---
echo "starting berthd (embedded engine) ..." >&2
bench_start_berthd || {
	tail -n 20 "$LOGS/berthd.log" >&2
	die "berthd did not come up"
}
BERTH_TOKEN=$(bench_login_token)
[ -n "$BERTH_TOKEN" ] || die "cannot log in to berthd as its admin"
export BERTH_TOKEN

# ------------------------------------------------------------- measuring ---
declare -A SAMPLES FAILS REASON SEEN
ROWS=()

# timed OUT ERR CMD...: runs CMD bounded; sets T_RC and T_SECS
timed() {
	local out=$1 err=$2
	shift 2
	local s=$EPOCHREALTIME
	# In the background and waited for, so that a signal runs the traps at once;
	# timeout puts the command in a process group of its own, which cleanup ends.
	timeout -k 10 "$OP_TIMEOUT" "$@" >"$out" 2>"$err" &
	CHILD=$!
	wait "$CHILD"
	T_RC=$?
	local e=$EPOCHREALTIME
	CHILD=
	T_SECS=$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.3f", b - a }')
}

# record ROW COUNTED OK REASON: adds T_SECS (if OK) or a failure to ROW
record() {
	local row=$1 counted=$2 ok=$3 reason=${4:-}
	[ "$counted" = 1 ] || return 0
	if [ -z "${SEEN[$row]-}" ]; then
		SEEN[$row]=1
		ROWS+=("$row")
	fi
	if [ "$ok" = 1 ]; then
		SAMPLES[$row]="${SAMPLES[$row]-} $T_SECS"
	else
		FAILS[$row]=$((${FAILS[$row]-0} + 1))
		[ -n "${REASON[$row]-}" ] || REASON[$row]=$reason
	fi
}

last_line() { grep -v '^[[:space:]]*$' "$1" | tail -n 1 | cut -c1-160; }

berth_round() { # berth_round TAGNAME COUNTED
	local name=bench-$TAG-$1 counted=$2 l=$LOGS/berth-$1
	timed "$l.create" "$l.create" "$BERTH" create "$REPO" --name "$name"
	if [ $T_RC -eq 0 ] && "$BERTH" show "$name" --json 2>/dev/null | grep -q '"state": *"running"'; then
		record "berth|create" "$counted" 1
	else
		record "berth|create" "$counted" 0 "$(last_line "$l.create")"
		"$BERTH" rm "$name" >/dev/null 2>&1
		return
	fi
	local op
	for op in stop start rm; do
		timed "$l.$op" "$l.$op" "$BERTH" "$op" "$name"
		if [ $T_RC -eq 0 ]; then
			record "berth|$op" "$counted" 1
		else
			record "berth|$op" "$counted" 0 "$(last_line "$l.$op")"
		fi
	done
	"$BERTH" rm "$name" >/dev/null 2>&1 # if rm failed above; harmless otherwise
}

# The devcontainer.json of a peer variant.
variant_config() {
	case $1 in
	default) printf '{\n  "image": "%s",\n  "postCreateCommand": "echo ready"\n}\n' "$IMAGE" ;;
	userns) printf '{\n  "image": "%s",\n  "postCreateCommand": "echo ready",\n  "runArgs": ["--userns=host"]\n}\n' "$IMAGE" ;;
	nouid) printf '{\n  "image": "%s",\n  "postCreateCommand": "echo ready",\n  "runArgs": ["--userns=host"],\n  "updateRemoteUserUID": false\n}\n' "$IMAGE" ;;
	esac
}
declare -A VLABEL=(
	[default]="up [default config]"
	[userns]="up [+runArgs --userns=host]"
	[nouid]="up [+userns=host, updateRemoteUserUID=false]"
)
VARIANTS=(default userns nouid)
LIFECYCLE_VARIANT= # the first variant whose create works: its container gets stop/up/rm

peer_error() { # the CLI's own error line, else its JSON message
	local m
	m=$(grep -a '^Error: \|\] Error: ' "$1" | grep -v 'buildx\|Command failed' | tail -n 1 |
		sed 's/^\[[^]]*\] //')
	[ -n "$m" ] || m=$(sed -n 's/.*"message":"\([^"]*\).*/\1/p' "$2" | head -n 1)
	[ -n "$m" ] || m=$(last_line "$1")
	echo "$m" | cut -c1-160
}

peer_containers() { # ids of containers of local folder $1
	podman ps -a -q --filter "label=devcontainer.local_folder=$1" 2>/dev/null
}

peer_up() { # peer_up FOLDER LOG [extra args]: sets T_*, PEER_CID
	local dir=$1 l=$2
	shift 2
	TMPDIR=$WORK/tmp timed "$l.out" "$l.err" "$DEVCONTAINER" up --workspace-folder "$dir" \
		--docker-path podman "$@"
	PEER_CID=$(sed -n 's/.*"containerId":"\([0-9a-f]*\)".*/\1/p' "$l.out" | head -n 1)
	[ $T_RC -eq 0 ] && grep -q '"outcome":"success"' "$l.out"
}

peer_round() { # peer_round TAGNAME COUNTED
	local v dir l
	for v in "${VARIANTS[@]}"; do
		dir=$WORK/peer/$1-$v/$REPO_NAME
		l=$LOGS/peer-$1-$v
		mkdir -p "$(dirname "$dir")"
		cp -a "$REPO" "$dir"
		variant_config "$v" >"$dir/.devcontainer/devcontainer.json"
		if peer_up "$dir" "$l"; then
			record "devcontainer|${VLABEL[$v]}" "$2" 1
			[ -n "$LIFECYCLE_VARIANT" ] || LIFECYCLE_VARIANT=$v
		else
			record "devcontainer|${VLABEL[$v]}" "$2" 0 "$(peer_error "$l.err" "$l.out")"
		fi
		if [ "$v" = "$LIFECYCLE_VARIANT" ] && [ -n "$PEER_CID" ]; then
			local cid=$PEER_CID
			timed "$l.stop" "$l.stop" podman stop -t 10 "$cid"
			record "devcontainer|podman stop (the CLI has no stop)" "$2" $((T_RC == 0)) \
				"$(last_line "$l.stop")"
			local restart="devcontainer|up on the stopped container ${VLABEL[$v]#up }"
			if peer_up "$dir" "$l.restart"; then
				record "$restart" "$2" 1
			else
				record "$restart" "$2" 0 "$(peer_error "$l.restart.err" "$l.restart.out")"
			fi
			timed "$l.rm" "$l.rm" podman rm -f -t 10 "$cid"
			record "devcontainer|podman rm -f (the CLI has no rm)" "$2" $((T_RC == 0)) \
				"$(last_line "$l.rm")"
		fi
		local ids
		ids=$(peer_containers "$dir")
		[ -n "$ids" ] && podman rm -f -t 0 $ids >/dev/null 2>&1
	done
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
OTHERS=$(podman ps -q 2>/dev/null | wc -l)
START_DATE=$(date -u +%Y-%m-%dT%H:%MZ)

if [ "$WARMUP" = 1 ]; then
	echo "warm-up round (not counted) ..." >&2
	berth_round w 0
	peer_round w 0
fi
for ((r = 1; r <= RUNS; r++)); do
	echo "round $r/$RUNS ..." >&2
	# alternate which tool goes first, so neither always follows the other
	if ((r % 2)); then
		berth_round "$r" 1
		peer_round "$r" 1
	else
		peer_round "$r" 1
		berth_round "$r" 1
	fi
done

# berthd idle, every workspace gone: its memory, and its podman service's
for ((i = 0; i < 100; i++)); do
	"$BERTH" ls --json 2>/dev/null | grep -q '"id"' || break
	sleep 0.1
done
rss() { awk -v k="$2:" '$1 == k { print $2 " kB" }' "/proc/$1/status" 2>/dev/null; }
BERTHD_RSS=$(rss "$BERTHD_PID" VmRSS)
BERTHD_HWM=$(rss "$BERTHD_PID" VmHWM)
SERVICE_RSS=
[ -n "$SERVICE_PID" ] && SERVICE_RSS=$(rss "$SERVICE_PID" VmRSS)

# ------------------------------------------------------------- tracing ---
TRACE_OUT=
BERTH_TRACE_OUT=
if [ "$TRACE" = 1 ]; then
	echo "one traced berth create (not counted) ..." >&2
	name=bench-$TAG-trace
	s=$EPOCHREALTIME
	timeout --foreground "$OP_TIMEOUT" "$BERTH" create "$REPO" --name "$name" 2>&1 |
		while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done >"$LOGS/berth-trace"
	e=$EPOCHREALTIME
	"$BERTH" rm "$name" >/dev/null 2>&1
	BERTH_TRACE_OUT=$(
		echo "Where one 'berth create' spends its time (each line of its streamed log, stamped as it"
		echo "arrives; ms since the command started):"
		awk -v s="$s" -v e="$e" '
			{ t = $1; sub(/^[^ ]* /, ""); printf "  %6d ms  %s\n", (t - s) * 1000, substr($0, 1, 100) }
			END { printf "  %6d ms  (the command returned)\n", (e - s) * 1000 }' "$LOGS/berth-trace"
	)

	v=${LIFECYCLE_VARIANT:-default}
	echo "one traced devcontainer up [$v] (not counted) ..." >&2
	dir=$WORK/peer/trace/$REPO_NAME
	mkdir -p "$(dirname "$dir")"
	cp -a "$REPO" "$dir"
	variant_config "$v" >"$dir/.devcontainer/devcontainer.json"
	peer_up "$dir" "$LOGS/peer-trace" --log-level trace
	trace_ok=$((T_RC == 0))
	trace_secs=$T_SECS
	ids=$(peer_containers "$dir")
	[ -n "$ids" ] && podman rm -f -t 0 $ids >/dev/null 2>&1
	TRACE_OUT=$(
		echo "Where one 'devcontainer ${VLABEL[$v]}' spends its time (--log-level trace,"
		echo "wall ${trace_secs} s$([ "$trace_ok" = 1 ] || echo ", FAILED"); steps may overlap):"
		tr -d '\r' <"$LOGS/peer-trace.err" | awk '
			function add(k, ms) { if (!(k in sum)) order[++n] = k; sum[k] += ms; cnt[k]++ }
			/Stop \([0-9]+ ms\): / {
				ms = $0; sub(/.*Stop \(/, "", ms); sub(/ ms.*/, "", ms)
				what = $0; sub(/.*ms\): /, "", what)
				if (what ~ /^Run: podman events/) next
				else if (what ~ /^Run: podman build /) add("podman build of the -uid image (updateRemoteUserUID)", ms)
				else if (what ~ /^Starting container/) add("podman run until its start event", ms)
				else if (what ~ /^Run: podman /) add("other podman CLI calls (buildx/version probes, ps, inspect)", ms)
				else if (what ~ /^Run: /) add("other host commands (git rev-parse)", ms)
				else if (what ~ /^Run in container: \/bin\/sh -c echo ready/) add("postCreateCommand (echo ready)", ms)
				else if (what ~ /^Run in container: \/bin\/bash -lic/) add("probe of the login shell environment (bash -lic)", ms)
				else if (what ~ /^Run in container: /) add("other in-container commands (uname, passwd, markers, /etc patches)", ms)
				else if (what ~ /^Resolving Remote/) total = ms
			}
			END {
				for (i = 1; i <= n; i++) printf "  %6d ms  %3d x  %s\n", sum[order[i]], cnt[order[i]], order[i]
				if (total) printf "  %6d ms         total of the CLI'"'"'s \"Resolving Remote\" (the rest of the wall time is node start-up and exit)\n", total
			}'
		n=$(grep -la 'Failed to fetch control manifest' "$LOGS"/peer-*err 2>/dev/null | wc -l)
		m=$(find "$LOGS" -name "peer-*err" | wc -l)
		if [ "$n" -gt 0 ]; then
			echo "  ($n of $m devcontainer runs, warm-up included, first tried to fetch a control manifest"
			echo "  from containers.dev; offline that failed at once and the CLI went on)"
		fi
	)
fi

# ---------------------------------------------------------------- report ---
stats() { # prints "n min median max" of the samples
	echo "$1" | tr ' ' '\n' | grep -v '^$' | sort -g | awk '
		{ v[++n] = $1 }
		END {
			if (!n) { print 0; exit }
			med = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
			printf "%d %.2f %.2f %.2f\n", n, v[1], med, v[n]
		}'
}

berth_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || berth_rev="$berth_rev+dirty"
echo
echo "Berth create benchmark, $START_DATE, $(uname -n), $(nproc) CPUs, load average at start $LOAD_START, $OTHERS other running containers"
echo "  berth  $berth_rev; berthd --engine embedded (its own podman system service)$([ -n "$BERTH_TOKEN" ] && echo "; CLI as admin via BERTH_TOKEN")"
echo "  peer   @devcontainers/cli $have_version (node $(node --version 2>/dev/null)), --docker-path podman"
echo "  engine podman $(podman version --format '{{.Client.Version}}' 2>/dev/null), $([ "$(id -u)" = 0 ] && echo rootful || echo rootless)"
echo "  image  $IMAGE ($(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null | cut -c1-12)); repo: 1 commit, README.md + .devcontainer/devcontainer.json; postCreateCommand \"echo ready\""
echo "  runs   $RUNS per row$([ "$WARMUP" = 1 ] && echo ", after one untimed warm-up round"); seconds, wall clock of the whole client command"
echo
fmt="%-13s %-56s %5s %7s %7s %7s\n"
printf "$fmt" tool operation ok min median max
printf "$fmt" ----- --------- -- --- ------ ---
declare -A MEDIAN
for row in "${ROWS[@]}"; do
	tool=${row%%|*}
	op=${row#*|}
	[ "$tool" = berth ] && [ "$op" = create ] && op="create (clone, container, postCreate; until running)"
	read -r n mn md mx <<<"$(stats "${SAMPLES[$row]-}")"
	total=$((n + ${FAILS[$row]-0}))
	if [ "$n" -gt 0 ]; then
		printf "$fmt" "$tool" "$op" "$n/$total" "$mn" "$md" "$mx"
		MEDIAN[$row]=$md
	else
		printf "$fmt" "$tool" "$op" "0/$total" - - -
	fi
	if [ "${FAILS[$row]-0}" -gt 0 ]; then
		printf "%-13s   failed: %s\n" "" "${REASON[$row]}"
	fi
done
echo
if [ -n "${MEDIAN[berth|create]-}" ]; then
	for v in "${VARIANTS[@]}"; do
		row="devcontainer|${VLABEL[$v]}"
		if [ -n "${MEDIAN[$row]-}" ]; then
			awk -v b="${MEDIAN[berth|create]}" -v p="${MEDIAN[$row]}" -v l="${VLABEL[$v]#up }" \
				'BEGIN { printf "create ratio Berth/peer %-45s %.2f / %.2f = %.3f (peer %.1fx slower)\n", l, b, p, b / p, p / b }'
		else
			echo "create ratio Berth/peer ${VLABEL[$v]#up }: no successful peer run"
		fi
	done
else
	echo "create ratio: no successful berth create"
fi
echo "berthd idle after the runs: VmRSS ${BERTHD_RSS:-?} (peak VmHWM ${BERTHD_HWM:-?}); its podman system service: VmRSS ${SERVICE_RSS:-?}"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$BERTH_TRACE_OUT" ]; then
	echo
	echo "$BERTH_TRACE_OUT"
fi
if [ -n "$TRACE_OUT" ]; then
	echo
	echo "$TRACE_OUT"
fi
exit 0
