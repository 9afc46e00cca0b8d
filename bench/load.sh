#!/usr/bin/env bash
# bench/load.sh [--workspaces N] [--clients C] [--terminals T] [--seconds S]
#
# A benchmark, not a test: berthd under the traffic of a team. It starts a
# berthd of its own (bench/lib.sh) with its limits raised, creates N (default
# 100) workspaces of a small repository, all running, then for S seconds
# (default 300) runs C (default 20) clients that loop over
# `GET /api/v1/workspaces`, `GET /api/v1/workspaces/{ws}` of a random one and
# `berth exec` in a random one, while T (default 10) `berth shell` terminals
# stream output (a few thousand lines a second each). It prints the API's
# p50/p99/max per kind, how many requests failed, the exec round trip, and
# berthd's RSS before and after. Its cleanup removes the workspaces' containers.
set -uo pipefail
BENCH_NAME=load
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
N=100 CLIENTS=20 TERMS=10 SECONDS_RUN=300
while [ $# -gt 0 ]; do
	case $1 in
	--workspaces) N=$2; shift 2 ;;
	--clients) CLIENTS=$2; shift 2 ;;
	--terminals) TERMS=$2; shift 2 ;;
	--seconds) SECONDS_RUN=$2; shift 2 ;;
	*) die "usage: bench/load.sh [--workspaces N] [--clients C] [--terminals T] [--seconds S]" ;;
	esac
done
[ -x "$BERTHD" ] || die "build first (make build)"
PIDS=()
# the clients and terminals first; bench_cleanup stops berthd and removes its
# containers (never a bare `wait`: berthd is a child too)
load_cleanup() {
	local rc=$? p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	(exit "$rc") # bench_cleanup exits with the status the script ended with
	bench_cleanup
}
trap load_cleanup EXIT
bench_workdir
repo=$WORK/repo
mkdir -p "$repo" && git -C "$repo" init -q -b main && echo "# load" >"$repo/README.md" &&
	git -C "$repo" add -A && git -C "$repo" -c user.name=b -c user.email=b@b commit -qm x
bench_start_berthd --max-running "$N" --max-workspaces "$N" --ssh-listen none
BERTH_TOKEN=$(bench_login_token)
[ -n "$BERTH_TOKEN" ] || die "cannot log in"
export BERTH_SERVER BERTH_TOKEN
bench_idle_never
rss() { awk '/VmRSS/ {print $2}' "/proc/$BERTHD_PID/status"; }
rss0=$(rss)

bench_create_running load "$N" "$repo" 900
[ "$RUNNING" = "$N" ] || die "not every workspace runs"
rss1=$(rss)

end=$(($(date +%s) + SECONDS_RUN))
# the terminals: each streams lines until the run ends
for t in $(seq 1 "$TERMS"); do
	(printf 'while :; do seq 1 2000; sleep 0.05; done\n'; sleep "$SECONDS_RUN"; printf 'exit\n') |
		"$BERTH" shell "load-$t" >"$WORK/term-$t.out" 2>"$WORK/term-$t.err" &
	PIDS+=($!)
done
# the clients: "KIND SECONDS HTTP_CODE" per request
client() { # client K
	local k=$1 out=$WORK/client-$1.log ws code
	while [ "$(date +%s)" -lt "$end" ]; do
		ws=load-$((RANDOM % N + 1))
		curl -s -o /dev/null -w 'list %{time_total} %{http_code}\n' \
			-H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/workspaces" >>"$out"
		curl -s -o /dev/null -w 'show %{time_total} %{http_code}\n' \
			-H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/workspaces/$ws" >>"$out"
		local s e
		s=$(date +%s.%N)
		"$BERTH" exec "$ws" -- true >/dev/null 2>&1
		code=$?
		e=$(date +%s.%N)
		echo "exec $(echo "$e - $s" | bc) $([ $code = 0 ] && echo 200 || echo "exit-$code")" >>"$out"
	done
}
for k in $(seq 1 "$CLIENTS"); do
	client "$k" &
	PIDS+=($!)
done
rss_peak=$rss1
while [ "$(date +%s)" -lt "$end" ]; do
	r=$(rss)
	[ "$r" -gt "$rss_peak" ] && rss_peak=$r
	sleep 5
done
for p in "${PIDS[@]:$TERMS}"; do wait "$p" 2>/dev/null; done
sleep 2
for p in "${PIDS[@]:0:$TERMS}"; do kill "$p" 2>/dev/null; done
rss2=$(rss)

cat "$WORK"/client-*.log >"$WORK/all.log"
pct() { # pct KIND P: the P-th percentile of KIND's seconds, in ms
	awk -v k="$1" '$1 == k {print $2}' "$WORK/all.log" | sort -g |
		awk -v p="$2" '{a[NR]=$1} END {if (NR) {i=int(NR*p/100+0.999); if (i<1) i=1; printf "%.1f", a[i]*1000} else print "-"}'
}
printf '\n%s workspaces, %s clients, %s streaming terminals, %s s\n' "$N" "$CLIENTS" "$TERMS" "$SECONDS_RUN"
printf '%-6s %8s %8s %8s %8s %8s\n' kind count p50_ms p99_ms max_ms errors
for kind in list show exec; do
	count=$(awk -v k="$kind" '$1 == k' "$WORK/all.log" | wc -l)
	errors=$(awk -v k="$kind" '$1 == k && $3 != 200' "$WORK/all.log" | wc -l)
	printf '%-6s %8s %8s %8s %8s %8s\n' "$kind" "$count" "$(pct "$kind" 50)" "$(pct "$kind" 99)" \
		"$(pct "$kind" 100)" "$errors"
done
bytes=$(cat "$WORK"/term-*.out 2>/dev/null | wc -c)
echo "terminal output received: $((bytes / 1024)) KiB over $TERMS terminals in $SECONDS_RUN s"
for t in $(seq 1 "$TERMS"); do
	if [ -s "$WORK/term-$t.err" ]; then echo "terminal $t said: $(head -c 300 "$WORK/term-$t.err")"; fi
done
echo "berthd RSS: ${rss0} kB idle, ${rss1} kB with $N running, peak ${rss_peak} kB under load, ${rss2} kB after"
