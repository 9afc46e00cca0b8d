#!/usr/bin/env bash
# bench/terminal.sh [--keystrokes N] [--rounds R] [--runs R] [--lines L] [--keep DIR]
#
# A benchmark, not a test: it measures and prints, and exits 0 however slow the
# machine is (it exits non-zero only when it cannot run at all: no build, no
# image, no podman, no gcc or no libraries to build its helper with).
#
# What a terminal costs on the way through berthd. On one workspace it creates
# itself (localhost/berth/base:bookworm, a one-commit repository) against a
# berthd it starts itself (`--engine embedded`, temporary --data, a free loopback
# port, an admin token through BERTH_TOKEN, as bench/create.sh does), it measures:
#
#   keystroke echo  N single-byte keystrokes (default 2000), each sent after the
#                   echo of the one before, on two paths to the same kind of PTY:
#                     agent socket      DATA/run/ID/agent.sock, an EXEC of
#                                       /bin/sh with the TTY field (what berthd
#                                       itself does for a terminal);
#                     berthd WebSocket  GET /api/v1/workspaces/WS/terminal, with
#                                       the CLI's own client (src/cli/wsclient.c,
#                                       what `berth shell` uses).
#                   On each, the shell is told `stty raw -echo; dd bs=1 count=...`,
#                   so every byte comes back once, from dd. The keystrokes are
#                   split into --rounds rounds (default 4) alternating the two
#                   paths, each round after 100 unmeasured ones. Prints p50 and
#                   p99 of each path and what berthd adds.
#   throughput      `yes | head -n L` (default 100000 lines, 300 kB through the
#                   PTY) typed into an open shell, until an end marker arrives,
#                   on both paths; and the whole `berth shell WS` command fed
#                   that line and `exit` on stdin (connect, login shell, output,
#                   exit), and fed only `exit` (start-up alone). --runs times
#                   each (default 5): min / median / max seconds.
#
# The helper (bench/terminal-echo.c) is built with gcc into the temporary
# directory from the CLI's sources. On exit, Ctrl-C or TERM the script stops
# berthd and its podman service, removes its container and deletes its
# temporary directory (--keep DIR first copies the logs there).

# Word splitting of container ids and the table format are meant:
# shellcheck disable=SC2046,SC2059,SC2086,SC2119,SC2207,SC2317
set -uo pipefail
export LC_ALL=C

BENCH_NAME=terminal.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OP_TIMEOUT=300 # seconds; a bound on every measured command, not a pass mark

KEYSTROKES=2000
ROUNDS=4
RUNS=5
LINES=100000
number() { # number OPTION VALUE
	[[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive number"
	echo "$2"
}

while [ $# -gt 0 ]; do
	case $1 in
	--keystrokes | --rounds | --runs | --lines | --keep)
		[ $# -ge 2 ] || die "$1 needs a value"
		case $1 in
		--keystrokes) KEYSTROKES=$(number "$1" "$2") || exit 1 ;;
		--rounds) ROUNDS=$(number "$1" "$2") || exit 1 ;;
		--runs) RUNS=$(number "$1" "$2") || exit 1 ;;
		--lines) LINES=$(number "$1" "$2") || exit 1 ;;
		--keep) KEEP=$2 ;;
		esac
		shift 2
		;;
	-h | --help)
		sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
done
[ "$KEYSTROKES" -ge "$ROUNDS" ] || die "--keystrokes must be at least --rounds"

# ---------------------------------------------------------------- checks ---
for b in "$BERTH" "$BERTHD" "$AGENT"; do
	[ -x "$b" ] || die "$b is missing: run 'make build' first"
done
for c in podman curl git gcc; do
	command -v $c >/dev/null || die "$c is not installed"
done
[ "$(id -u)" = 0 ] || die "needs root (the embedded engine is rootful; the agent socket is root's)"
podman image exists "$IMAGE" || die "$IMAGE is not in podman's storage: run scripts/setup.sh"

bench_workdir
REPO_NAME=berth-bench-term-$TAG
REPO=$WORK/$REPO_NAME
HELPER=$WORK/terminal-echo
NAME=bench-term-$TAG
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helper ---
echo "building the helper ..." >&2
gcc -O2 -D_GNU_SOURCE -I "$ROOT/src" -o "$HELPER" "$BENCH/terminal-echo.c" \
	"$ROOT/src/cli/wsclient.c" "$ROOT/src/cli/client.c" "$ROOT/src/util/buf.c" \
	"$ROOT/src/util/err.c" "$ROOT/src/util/xalloc.c" \
	-lwslay -lcrypto -lcurl -ljansson -lm 2>"$LOGS/gcc.log" ||
	die "cannot build bench/terminal-echo.c (needs libwslay-dev, libssl-dev, libcurl and libjansson headers): $(head -n 3 "$LOGS/gcc.log")"

# ------------------------------------------------------------ workspace ---
mkdir -p "$REPO/.devcontainer"
git -C "$REPO" init -q -b main
echo "# $REPO_NAME" >"$REPO/README.md"
printf '{\n  "image": "%s"\n}\n' "$IMAGE" >"$REPO/.devcontainer/devcontainer.json"
git -C "$REPO" add -A
git -C "$REPO" -c user.name=Bench -c user.email=bench@example.invalid commit -q -m initial

echo "starting berthd (embedded engine) ..." >&2
bench_start_berthd || {
	tail -n 20 "$LOGS/berthd.log" >&2
	die "berthd did not come up"
}
BERTH_TOKEN=$(bench_login_token)
[ -n "$BERTH_TOKEN" ] || die "cannot log in to berthd as its admin"
export BERTH_TOKEN

echo "creating workspace $NAME ..." >&2
timeout "$OP_TIMEOUT" "$BERTH" create "$REPO" --name "$NAME" >"$LOGS/create.log" 2>&1 ||
	die "berth create failed: $(tail -n 3 "$LOGS/create.log")"
WS_ID=$("$BERTH" show "$NAME" --json | sed -n 's/^ *"id": *"\([^"]*\)".*/\1/p' | head -n 1)
SOCK=$DATA/run/$WS_ID/agent.sock
[ -S "$SOCK" ] || die "no agent socket at $SOCK"

# ------------------------------------------------------------- measuring ---
# helper ARGS...: runs the helper bounded, output to $WORK/out; false on failure
helper() {
	timeout -k 5 "$OP_TIMEOUT" "$HELPER" "$@" >"$WORK/out" 2>>"$LOGS/helper.log" &
	CHILD=$!
	wait "$CHILD"
	local rc=$?
	CHILD=
	return $rc
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
START_DATE=$(date -u +%Y-%m-%dT%H:%MZ)
PER_ROUND=$((KEYSTROKES / ROUNDS))
: >"$WORK/agent.samples"
: >"$WORK/ws.samples"
FAILED=()
for ((r = 1; r <= ROUNDS; r++)); do
	echo "keystrokes, round $r/$ROUNDS ($PER_ROUND on each path) ..." >&2
	order=(agent ws)
	((r % 2)) || order=(ws agent)
	for p in "${order[@]}"; do
		if [ "$p" = agent ]; then
			TERMINAL_ECHO_SAMPLES=$WORK/agent.samples helper echo agent "$SOCK" "$PER_ROUND" ||
				FAILED+=("agent echo round $r")
		else
			TERMINAL_ECHO_SAMPLES=$WORK/ws.samples helper echo ws "$BERTH_SERVER" "$NAME" "$PER_ROUND" ||
				FAILED+=("WebSocket echo round $r")
		fi
	done
done

percentiles() { # FILE: "n p50 p99 mean"
	sort -g "$1" | awk '
		{ v[++n] = $1; s += $1 }
		END {
			if (!n) { print 0; exit }
			i50 = int(0.50 * n); if (i50 < 0.50 * n) i50++
			i99 = int(0.99 * n); if (i99 < 0.99 * n) i99++
			printf "%d %.3f %.3f %.3f\n", n, v[i50], v[i99], s / n
		}'
}

declare -A TP
for ((r = 1; r <= RUNS; r++)); do
	echo "throughput, run $r/$RUNS ..." >&2
	helper yes ws "$BERTH_SERVER" "$NAME" "$LINES" && TP[ws]+=" $(cut -d' ' -f1 "$WORK/out")"
	helper yes agent "$SOCK" "$LINES" && TP[agent]+=" $(cut -d' ' -f1 "$WORK/out")"
	s=$EPOCHREALTIME
	printf 'yes | head -n %s\nexit\n' "$LINES" |
		timeout "$OP_TIMEOUT" "$BERTH" shell "$NAME" >"$WORK/shell.out" 2>>"$LOGS/shell.log"
	rc=$?
	e=$EPOCHREALTIME
	y=$(grep -c '^y' "$WORK/shell.out")
	if [ $rc -eq 0 ] && [ "$y" -ge "$LINES" ]; then
		TP[cli]+=" $(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.3f", b - a }')"
	else
		echo "berth shell: exit $rc, $y lines of yes" >>"$LOGS/shell.log"
	fi
	s=$EPOCHREALTIME
	printf 'exit\n' | timeout "$OP_TIMEOUT" "$BERTH" shell "$NAME" >/dev/null 2>>"$LOGS/shell.log" &&
		TP[start]+=" $(awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')"
done

stats() { # prints "n min median max" of the samples
	echo "$1" | tr ' ' '\n' | grep -v '^$' | sort -g | awk '
		{ v[++n] = $1 }
		END {
			if (!n) { print 0; exit }
			med = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
			printf "%d %.3f %.3f %.3f\n", n, v[1], med, v[n]
		}'
}

# ---------------------------------------------------------------- report ---
berth_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || berth_rev="$berth_rev+dirty"
echo
echo "Berth terminal benchmark, $START_DATE, $(uname -n), $(nproc) CPUs, load average at start $LOAD_START"
echo "  berth  $berth_rev; berthd --engine embedded on 127.0.0.1; workspace on $IMAGE"
echo "  echo   $KEYSTROKES single-byte keystrokes per path in $ROUNDS alternating rounds (+100 unmeasured each),"
echo "         each sent after the echo of the one before; the PTY runs 'stty raw -echo; dd bs=1'"
echo
fmt="%-52s %6s %8s %8s %8s\n"
printf "$fmt" path n "p50 ms" "p99 ms" "mean ms"
printf "$fmt" ---- - ------ ------ -------
read -r an a50 a99 amean <<<"$(percentiles "$WORK/agent.samples")"
read -r wn w50 w99 wmean <<<"$(percentiles "$WORK/ws.samples")"
[ "$an" -gt 0 ] && printf "$fmt" "agent socket (EXEC /bin/sh with a TTY)" "$an" "$a50" "$a99" "$amean"
[ "$wn" -gt 0 ] && printf "$fmt" "berthd WebSocket (berth shell's client)" "$wn" "$w50" "$w99" "$wmean"
if [ "$an" -gt 0 ] && [ "$wn" -gt 0 ]; then
	awk -v a="$a50" -v w="$w50" -v a9="$a99" -v w9="$w99" 'BEGIN {
		printf "berthd adds %.3f ms at p50 (target: under 1 ms), %.3f ms at p99\n", w - a, w9 - a9 }'
fi
for f in "${FAILED[@]}"; do
	echo "  failed: $f ($(tail -n 1 "$LOGS/helper.log"))"
done
echo
fmt="%-52s %5s %7s %7s %7s\n"
printf "$fmt" "throughput: yes | head -n $LINES" ok "min s" "median" "max s"
printf "$fmt" ---------- -- ----- ------ -----
row() { # LABEL SAMPLES
	local n mn md mx
	read -r n mn md mx <<<"$(stats "$2")"
	if [ "$n" -gt 0 ]; then
		printf "$fmt" "$1" "$n/$RUNS" "$mn" "$md" "$mx"
	else
		printf "$fmt" "$1" "0/$RUNS" - - -
	fi
}
row "berthd WebSocket, shell already open" "${TP[ws]-}"
row "agent socket, shell already open" "${TP[agent]-}"
row "berth shell WS, whole command (+ connect, exit)" "${TP[cli]-}"
row "berth shell WS with only 'exit' (start-up alone)" "${TP[start]-}"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit 0
