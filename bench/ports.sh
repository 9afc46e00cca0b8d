#!/usr/bin/env bash
# bench/ports.sh [--duration S] [--connections N] [--rounds R] [--idle N] [--big MIB] [--keep DIR]
#                [--no-nginx]
#
# A benchmark, not a test: it measures and prints, and exits 0 however slow the
# machine is (non-zero only when it cannot run at all: no build, no image, no
# podman, no wrk).
#
# Against its own berthd (bench/lib.sh: release build, --engine embedded, a
# temporary --data dir, a free loopback port, an admin token) it creates one
# workspace and runs bench/static.pl in it twice on port 8080, with the same
# files (a 1 KiB file and a --big MiB one, default 256): once on 127.0.0.1,
# which berthd's proxy reaches through the agent, once on the container's own
# address, which the host reaches over podman's bridge. Then, in the same run
# and alternating the two paths:
#
#   requests/s     wrk -t2 -c N (default 32) -d S (default 10) --latency on the
#                  1 KiB file, --rounds times (default 3; the median is shown);
#                  through berthd by the path form /w/WS/ports/8080/ and by
#                  the subdomain form (Host: 8080-WS.localhost);
#   latency        p50 / p99 from the same runs, and from wrk -t1 -c1 (one
#                  request at a time: what the proxy adds to each);
#   throughput     curl of the big file, --rounds times (median);
#   idle memory    before the load: berthd's VmRSS, then N (default 200)
#                  kept-alive connections through the proxy that have each
#                  made one request and stay open, VmRSS again; the difference
#                  divided by N.
#
# For reference, the same loads go through nginx too (one worker, HTTP/1.1
# keep-alive to the container's address, no buffering, no authentication: a
# plain reverse proxy's cost on this machine). The nginx binary is Debian's,
# unpacked once without its service into .berth-data/bench/nginx (skipped when
# apt cannot fetch it); --no-nginx leaves it out.
#
# Targets from the issue: at least 0.8x the direct requests/s and throughput,
# under 0.5 ms added at p50, at most 64 KiB of berthd RSS per idle connection.
# On exit, Ctrl-C or TERM it stops berthd and its podman service, removes the
# workspace's container and deletes its temporary directory.

# The table's format is meant:
# shellcheck disable=SC2317,SC2059,SC2119
set -uo pipefail
export LC_ALL=C
BENCH_NAME=ports.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=10
CONNS=32
ROUNDS=3
IDLE=200
BIG=256
NGINX=yes
while [ $# -gt 0 ]; do
	case $1 in
	--no-nginx)
		NGINX=
		shift
		;;
	--duration | --connections | --rounds | --idle | --big | --keep)
		[ $# -ge 2 ] || die "$1 needs a value"
		case $1 in
		--duration) DURATION=$2 ;;
		--connections) CONNS=$2 ;;
		--rounds) ROUNDS=$2 ;;
		--idle) IDLE=$2 ;;
		--big) BIG=$2 ;;
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
for n in "$DURATION" "$CONNS" "$ROUNDS" "$IDLE" "$BIG"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "'$n' is not a positive number"
done

for b in "$BERTH" "$BERTHD" "$AGENT"; do
	[ -x "$b" ] || die "$b is missing: run 'make build' first"
done
for p in podman wrk curl git jq python3; do
	command -v "$p" >/dev/null || die "$p is not installed (scripts/setup.sh installs it)"
done
podman image exists "$IMAGE" || die "$IMAGE is not in podman's storage: run scripts/setup.sh"

bench_workdir
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "starting berthd (embedded engine) ..." >&2
bench_start_berthd || {
	tail -n 20 "$LOGS/berthd.log" >&2
	die "berthd did not come up"
}
BERTH_TOKEN=$(bench_login_token)
[ -n "$BERTH_TOKEN" ] || die "cannot log in to berthd as its admin"
export BERTH_TOKEN

# ------------------------------------------------------------ workspace ---
REPO=$WORK/berth-bench-ports-$TAG
NAME=bench-ports-$TAG
mkdir -p "$REPO"
git -C "$REPO" init -q -b main
cp "$ROOT/bench/static.pl" "$REPO/"
git -C "$REPO" add -A
git -C "$REPO" -c user.name=Bench -c user.email=bench@example.invalid commit -q -m initial
echo "creating workspace $NAME ..." >&2
"$BERTH" create "$REPO" --name "$NAME" >"$LOGS/create.log" 2>&1 || die "berth create failed: $(tail -n 3 "$LOGS/create.log")"
ID=$("$BERTH" show "$NAME" --json | jq -r .id)
CIP=$(podman inspect "berth-$ID" --format '{{.NetworkSettings.IPAddress}}' 2>/dev/null)
[ -n "$CIP" ] || die "the workspace's container has no address on podman's bridge"

"$BERTH" exec "$NAME" -- sh -c "mkdir -p /tmp/www && head -c 1024 /dev/urandom >/tmp/www/small &&
	head -c $((BIG * 1048576)) /dev/urandom >/tmp/www/big" || die "cannot write the files"
for addr in 127.0.0.1 "$CIP"; do
	"$BERTH" exec "$NAME" -- sh -c "setsid perl static.pl /tmp/www 8080 $addr </dev/null >/dev/null 2>&1 &" ||
		die "cannot start the server on $addr"
done

DIRECT=http://$CIP:8080
PROXY=$BERTH_SERVER/w/$NAME/ports/8080
SUBHOST=8080-$NAME.localhost:$BERTH_PORT
AUTH="Authorization: Bearer $BERTH_TOKEN"
for ((i = 0; i < 100; i++)); do
	curl -sf -o /dev/null "$DIRECT/small" && curl -sf -o /dev/null -H "$AUTH" "$PROXY/small" && break
	sleep 0.2
done
[ "$i" -lt 100 ] || die "the static server does not answer on both paths"

rss() { awk '/^VmRSS/ {print $2}' "/proc/$BERTHD_PID/status"; }

# --------------------------------------------------- nginx, for reference ---
# nginx_bin: prints an nginx binary: the installed one, or Debian's package
# unpacked (not installed: no service starts) under .berth-data/bench/nginx
nginx_bin() {
	local dir=$ROOT/.berth-data/bench/nginx
	if command -v nginx 2>/dev/null; then return 0; fi
	if [ ! -x "$dir/usr/sbin/nginx" ]; then
		rm -rf "$dir" && mkdir -p "$dir/deb" &&
			(cd "$dir/deb" && apt-get download nginx >/dev/null 2>&1) &&
			dpkg-deb -x "$dir"/deb/nginx_*.deb "$dir" || return 1
	fi
	"$dir/usr/sbin/nginx" -v 2>/dev/null && echo "$dir/usr/sbin/nginx"
}
NGINX_URL=
if [ -n "$NGINX" ] && NGINX_BIN=$(nginx_bin) && [ -n "$NGINX_BIN" ]; then
	mkdir -p "$WORK/nginx"
	for _ in $(seq 1 20); do
		np=$((20000 + RANDOM % 12000))
		(exec 3<>"/dev/tcp/127.0.0.1/$np") 2>/dev/null || break
	done
	cat >"$WORK/nginx/nginx.conf" <<NGINXCONF
daemon off;
master_process off;
worker_processes 1;
error_log $LOGS/nginx-error.log;
pid $WORK/nginx/nginx.pid;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $WORK/nginx/body;
	proxy_temp_path $WORK/nginx/proxy;
	fastcgi_temp_path $WORK/nginx/fastcgi;
	uwsgi_temp_path $WORK/nginx/uwsgi;
	scgi_temp_path $WORK/nginx/scgi;
	upstream app { server $CIP:8080; keepalive 64; }
	server {
		listen 127.0.0.1:$np;
		location / {
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
		}
	}
}
NGINXCONF
	setsid "$NGINX_BIN" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >>"$LOGS/nginx.log" 2>&1 &
	BENCH_PIDS+=($!)
	for ((i = 0; i < 100; i++)); do
		curl -sf -o /dev/null "http://127.0.0.1:$np/small" && NGINX_URL=http://127.0.0.1:$np && break
		sleep 0.1
	done
	[ -n "$NGINX_URL" ] || echo "warning: nginx did not answer; its rows are left out" >&2
elif [ -n "$NGINX" ]; then
	echo "warning: no nginx (apt-get download nginx failed); its rows are left out" >&2
fi

# ---------------------------------------------------------- idle memory ---
# N connections through the proxy, each after one request, held open
cat >"$WORK/idle.py" <<'PY'
import socket, sys
host, port, path, auth, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
socks = []
for _ in range(n):
    s = socket.create_connection((host, port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(body) < length:
        body += s.recv(65536)
    socks.append(s)
print("ready", flush=True)
sys.stdin.read()
PY
echo "idle connections: $IDLE ..." >&2
curl -sf -o /dev/null -H "$AUTH" "$PROXY/small"
RSS0=$(rss)
coproc IDLER { python3 "$WORK/idle.py" 127.0.0.1 "$BERTH_PORT" "/w/$NAME/ports/8080/small" "$AUTH" "$IDLE" 2>"$LOGS/idle.log"; }
read -r -t 120 ready <&"${IDLER[0]}" || ready=
sleep 1 # let berthd settle (not a measurement of time)
RSS1=$(rss)
idle_in=${IDLER[1]}
exec {idle_in}>&- # the client's stdin ends: it closes its connections
wait "$IDLER_PID" 2>/dev/null
[ "$ready" = ready ] || echo "warning: the idle connections did not all open: $(tail -n 2 "$LOGS/idle.log")" >&2

# -------------------------------------------------------------- wrk runs ---
# wrk_run KEY ARGS...: one wrk run; appends "RPS P50MS P99MS" to RES[KEY]
declare -A RES
to_ms() { # "1.23ms" / "456.00us" / "1.20s" -> ms
	awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/) n *= 1000; printf "%.3f", n }'
}
wrk_run() {
	local key=$1 out
	shift
	out=$(wrk --latency "$@" 2>&1)
	echo "$out" >>"$LOGS/wrk-$key.log"
	local rps p50 p99
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
	RES[$key]="${RES[$key]-}${rps:-0} $(to_ms "${p50:-0}") $(to_ms "${p99:-0}")"$'\n'
}
dl() { # dl KEY URL [curl args]: appends the download speed in MiB/s to RES[KEY]
	local key=$1 url=$2 s
	shift 2
	s=$(curl -s -o /dev/null -w '%{speed_download}' "$@" "$url")
	RES[$key]="${RES[$key]-}$(awk -v s="${s:-0}" 'BEGIN { printf "%.1f", s / 1048576 }')"$'\n'
}
median() { # median KEY COLUMN
	printf '%s' "${RES[$1]-}" | awk -v c="$2" 'NF { print $c }' | sort -g |
		awk '{ v[++n] = $1 } END { if (!n) { print "-"; exit } print n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "warm-up ..." >&2
wrk -t2 -c"$CONNS" -d2s "$DIRECT/small" >/dev/null 2>&1
wrk -t2 -c"$CONNS" -d2s -H "$AUTH" "$PROXY/small" >/dev/null 2>&1
for ((r = 1; r <= ROUNDS; r++)); do
	echo "round $r of $ROUNDS ..." >&2
	wrk_run direct -t2 -c"$CONNS" -d"${DURATION}s" "$DIRECT/small"
	wrk_run proxy -t2 -c"$CONNS" -d"${DURATION}s" -H "$AUTH" "$PROXY/small"
	wrk_run direct1 -t1 -c1 -d"${DURATION}s" "$DIRECT/small"
	wrk_run proxy1 -t1 -c1 -d"${DURATION}s" -H "$AUTH" "$PROXY/small"
	dl direct_big "$DIRECT/big"
	dl proxy_big "$PROXY/big" -H "$AUTH"
	wrk_run sub -t2 -c"$CONNS" -d"${DURATION}s" -H "$AUTH" -H "Host: $SUBHOST" "$BERTH_SERVER/small"
	if [ -n "$NGINX_URL" ]; then
		wrk_run nginx -t2 -c"$CONNS" -d"${DURATION}s" "$NGINX_URL/small"
		wrk_run nginx1 -t1 -c1 -d"${DURATION}s" "$NGINX_URL/small"
		dl nginx_big "$NGINX_URL/big"
	fi
done

# ---------------------------------------------------------------- report ---
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || rev="$rev+dirty"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 == 0) print "-"; else printf "%.2fx", b / a }'; }
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f ms", b - a }'; }
fmt="%-44s %14s %16s %12s\n"
echo
echo "Berth port proxy benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n), $(nproc) CPUs, load average at start $LOAD_START"
echo "  berth $rev, release build; server: bench/static.pl (perl, a process per connection) in the workspace"
echo "  wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}') -t2 -c$CONNS and -t1 -c1, ${DURATION}s each, $ROUNDS rounds alternating the paths (medians)"
echo "  direct: http://CONTAINER-IP:8080 over podman's bridge; through berthd: /w/$NAME/ports/8080/ with a bearer token"
echo
printf "$fmt" "" "direct" "through berthd" "proxy/direct"
printf "$fmt" "requests/s, 1 KiB file, $CONNS connections" "$(median direct 1)" "$(median proxy 1)" "$(ratio "$(median direct 1)" "$(median proxy 1)")"
printf "$fmt" "  latency p50 (ms)" "$(median direct 2)" "$(median proxy 2)" "$(added "$(median direct 2)" "$(median proxy 2)")"
printf "$fmt" "  latency p99 (ms)" "$(median direct 3)" "$(median proxy 3)" "$(added "$(median direct 3)" "$(median proxy 3)")"
printf "$fmt" "requests/s, 1 connection" "$(median direct1 1)" "$(median proxy1 1)" "$(ratio "$(median direct1 1)" "$(median proxy1 1)")"
printf "$fmt" "  latency p50 (ms)" "$(median direct1 2)" "$(median proxy1 2)" "$(added "$(median direct1 2)" "$(median proxy1 2)")"
printf "$fmt" "  latency p99 (ms)" "$(median direct1 3)" "$(median proxy1 3)" "$(added "$(median direct1 3)" "$(median proxy1 3)")"
printf "$fmt" "throughput, $BIG MiB file (MiB/s)" "$(median direct_big 1)" "$(median proxy_big 1)" "$(ratio "$(median direct_big 1)" "$(median proxy_big 1)")"
printf "$fmt" "subdomain form: requests/s, $CONNS connections" "" "$(median sub 1)" "$(ratio "$(median direct 1)" "$(median sub 1)")"
if [ -n "$NGINX_URL" ]; then
	echo
	printf "$fmt" "for reference, $("$NGINX_BIN" -v 2>&1 | sed 's|.*: ||')" "direct" "through nginx" "nginx/direct"
	printf "$fmt" "requests/s, 1 KiB file, $CONNS connections" "$(median direct 1)" "$(median nginx 1)" "$(ratio "$(median direct 1)" "$(median nginx 1)")"
	printf "$fmt" "  latency p50 (ms)" "$(median direct 2)" "$(median nginx 2)" "$(added "$(median direct 2)" "$(median nginx 2)")"
	printf "$fmt" "requests/s, 1 connection" "$(median direct1 1)" "$(median nginx1 1)" "$(ratio "$(median direct1 1)" "$(median nginx1 1)")"
	printf "$fmt" "  latency p50 (ms)" "$(median direct1 2)" "$(median nginx1 2)" "$(added "$(median direct1 2)" "$(median nginx1 2)")"
	printf "$fmt" "throughput, $BIG MiB file (MiB/s)" "$(median direct_big 1)" "$(median nginx_big 1)" "$(ratio "$(median direct_big 1)" "$(median nginx_big 1)")"
	echo "  nginx: one worker, keep-alive to the container's address, no buffering, no authentication"
fi
echo
awk -v a="$RSS0" -v b="$RSS1" -v n="$IDLE" 'BEGIN {
	printf "berthd VmRSS with %d idle proxied connections: %d kB -> %d kB, %.1f KiB per connection\n", n, a, b, (b - a) / n }'
echo "berthd VmRSS after the load: $(rss) kB (peak VmHWM $(awk '/^VmHWM/ {print $2}' "/proc/$BERTHD_PID/status") kB)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "targets: >= 0.80x requests/s and throughput; < 0.5 ms added at p50; <= 64 KiB per idle connection"
exit 0
