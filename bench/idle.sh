#!/usr/bin/env bash
# bench/idle.sh [--workspaces N]
#
# A benchmark, not a test: what idle auto-stop costs with N (default 100)
# running workspaces. It starts a berthd of its own (bench/lib.sh) with
# --max-running N, creates N workspaces of a small repository, and reads,
# from GET /api/v1/admin/idle, how long berthd's idle sweep took (it walks
# every workspace, loads its clock and settings, writes clocks that moved;
# it runs every 15 s). Beside it, for scale: the median of 20
# `GET /api/v1/workspaces` (which reads the same store and now carries each
# workspace's idle clock) and berthd's RSS. Then it deletes the workspaces.
set -uo pipefail
BENCH_NAME=idle
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
N=100
while [ $# -gt 0 ]; do
	case $1 in
	--workspaces) N=$2; shift 2 ;;
	*) die "usage: bench/idle.sh [--workspaces N]" ;;
	esac
done
[ -x "$BERTHD" ] || die "build first (make build)"
trap bench_cleanup EXIT
bench_workdir
repo=$WORK/repo
mkdir -p "$repo" && git -C "$repo" init -q -b main && echo "# idle" >"$repo/README.md" &&
	git -C "$repo" add -A && git -C "$repo" -c user.name=b -c user.email=b@b commit -qm x
# one idle minute = 1 s, so that sweeps come every 250 ms (their cost is the
# same at any period); every workspace "never" stops, so all N stay running
bench_start_berthd --max-running "$N" --max-workspaces "$N" --ssh-listen none --test-idle-minute 1000
BERTH_TOKEN=$(bench_login_token)
[ -n "$BERTH_TOKEN" ] || die "cannot log in"
export BERTH_SERVER BERTH_TOKEN
bench_idle_never
bench_create_running idle "$N" "$repo" 600
sleep 2
sweeps=()
for _ in $(seq 1 20); do
	sweeps+=("$(curl -sf -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/admin/idle" | jq .last_sweep_us)")
	sleep 0.3
done
lists=()
for _ in $(seq 1 20); do
	lists+=("$(curl -sf -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/workspaces")")
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
max() { printf '%s\n' "$@" | sort -g | tail -1; }
sweep_med=$(med "${sweeps[@]}")
echo "idle sweep over $N running workspaces: median $sweep_med us, max $(max "${sweeps[@]}") us"
echo "  = $(echo "scale=4; $sweep_med / 150000" | bc) % of one core at the real period (15 s)"
echo "GET /api/v1/workspaces ($N workspaces, with idle): median $(echo "$(med "${lists[@]}") * 1000" | bc) ms"
echo "berthd RSS: $(awk '/VmRSS/ {print $2 " kB"}' "/proc/$BERTHD_PID/status")"
for i in $(seq 1 "$N"); do
	"$BERTH" rm "idle-$i" --no-wait >/dev/null 2>&1
done
for _ in $(seq 1 300); do
	left=$(curl -sf -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/workspaces" | jq '.workspaces | length')
	[ "$left" = 0 ] && break
	sleep 1
done
