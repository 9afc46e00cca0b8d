#!/usr/bin/env bash
# bench/ssh.sh [--runs N] [--keystrokes N] [--size-mib M] [--rounds R] [--no-scp] [--keep DIR]
#
# A benchmark, not a test: it measures and prints, and exits 0 however slow the
# machine is (non-zero only when it cannot run at all: no build, no image, no
# podman, not root, no OpenSSH).
#
# berthd's SSH gateway (src/sshd/sshd.c) against Debian's OpenSSH sshd, in one
# run. The gateway: its own berthd (bench/lib.sh: release build, --engine
# embedded, a temporary --data, free loopback ports for HTTP and for
# --ssh-listen, an admin token), one workspace of a one-commit repository on
# localhost/berth/base:bookworm, and an ed25519 key registered with
# `berth ssh-key add`. The peer, the floor: /usr/sbin/sshd -D -f CONFIG -p PORT
# on 127.0.0.1 with a host key, an AuthorizedKeysFile (the same public key)
# and a config of its own in the temporary directory (no PAM, Debian's
# sftp-server), logged into as root: a plain SSH login with no container.
# openssh-server is installed with apt when missing (its service is not used).
# Both are reached by the same OpenSSH client with the same options
# (-F /dev/null, the key only, no known_hosts), alternating:
#
#   connect+exec  `ssh HOST true`, --runs times (default 20) on each, after one
#                 unmeasured login: median and p90 of the wall time. Twice:
#                 with each server's preferred key exchange (OpenSSH:
#                 sntrup761x25519-sha512, which libssh 0.10 lacks; berthd:
#                 curve25519-sha256), and with curve25519-sha256 on both.
#   echo          `ssh -tt HOST 'stty raw -echo; echo READY; exec cat'` driven
#                 from a python3 script through pipes: one byte written, the
#                 time until it comes back; --keystrokes (default 50) after 10
#                 unmeasured ones: median and p90.
#   scp           a --size-mib (default 1024) file of random data, uploaded
#                 to the server (the workspace's /tmp; the temporary directory
#                 for OpenSSH) and downloaded back, --rounds times (default 2)
#                 in alternating order; OpenSSH 9's scp (SFTP). MiB/s of the
#                 wall time, the median; every copy's SHA-256 is checked
#                 against the source's outside the timer. --no-scp skips it.
#
# Targets (issue #13): connect+exec at most 1.5x OpenSSH's time, scp at least
# 0.7x OpenSSH's throughput. On exit, Ctrl-C or TERM it stops sshd, berthd and
# its podman service, removes the workspace's container and deletes its
# temporary directory (--keep DIR first copies the logs there).

# The table's format is meant:
# shellcheck disable=SC2059,SC2317,SC2119
set -uo pipefail
export LC_ALL=C

BENCH_NAME=ssh.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OP_TIMEOUT=600 # seconds; a bound on every measured command, not a pass mark

RUNS=20
KEYSTROKES=50
SIZE_MIB=1024
ROUNDS=2
SCP=yes
while [ $# -gt 0 ]; do
	case $1 in
	--no-scp)
		SCP=
		shift
		;;
	--runs | --keystrokes | --size-mib | --rounds | --keep)
		[ $# -ge 2 ] || die "$1 needs a value"
		case $1 in
		--runs) RUNS=$2 ;;
		--keystrokes) KEYSTROKES=$2 ;;
		--size-mib) SIZE_MIB=$2 ;;
		--rounds) ROUNDS=$2 ;;
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
for n in "$RUNS" "$KEYSTROKES" "$SIZE_MIB" "$ROUNDS"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "'$n' is not a positive number"
done

# ---------------------------------------------------------------- checks ---
for b in "$BERTH" "$BERTHD" "$AGENT"; do
	[ -x "$b" ] || die "$b is missing: run 'make build' first"
done
[ "$(id -u)" = 0 ] || die "needs root (the embedded engine is rootful; sshd runs as root)"
for c in podman curl git jq python3 ssh scp ssh-keygen sha256sum; do
	command -v $c >/dev/null || die "$c is not installed (scripts/setup.sh installs it)"
done
podman image exists "$IMAGE" || die "$IMAGE is not in podman's storage: run scripts/setup.sh"
SSHD=/usr/sbin/sshd
if [ ! -x "$SSHD" ]; then
	echo "installing openssh-server (for the peer; its service is not used) ..." >&2
	# scripts/lib.sh's apt_install, in a subshell: its die and say are setup's
	(
		# shellcheck source=scripts/lib.sh
		. "$ROOT/scripts/lib.sh"
		apt_install "${TMPDIR:-/tmp}/berth-bench-ssh-apt.log" openssh-server
	) || die "cannot install openssh-server"
	[ -x "$SSHD" ] || die "$SSHD is missing after installing openssh-server"
fi

bench_workdir
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port: a loopback port nobody listens on (racy, as bench_start_berthd's)
free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 12000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || {
			echo "$p"
			return 0
		}
	done
	return 1
}

KEY=$WORK/id_ed25519
ssh-keygen -q -t ed25519 -N '' -C "bench-$TAG" -f "$KEY" || die "ssh-keygen failed"

# ------------------------------------------------------- OpenSSH's sshd ---
OSSH=$WORK/openssh
mkdir -m 0700 "$OSSH"
ssh-keygen -q -t ed25519 -N '' -C "bench-host-$TAG" -f "$OSSH/host_ed25519" || die "ssh-keygen failed"
cp "$KEY.pub" "$OSSH/authorized_keys"
OPENSSH_PORT=$(free_port) || die "no free port for sshd"
cat >"$OSSH/sshd_config" <<SSHDCONF
ListenAddress 127.0.0.1
HostKey $OSSH/host_ed25519
AuthorizedKeysFile $OSSH/authorized_keys
PidFile none
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PrintMotd no
PrintLastLog no
UseDNS no
X11Forwarding no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel ERROR
# bash (root's shell) sources ~/.bashrc for every command sshd starts, the
# sftp-server too, unless SHLVL says it is not the first shell: this machine's
# root ~/.bashrc (pyenv, nvm, ...) is nobody's SSH server's cost
SetEnv SHLVL=1
SSHDCONF
# the privilege separation directory the package's service would make
[ -d /run/sshd ] || mkdir -m 0755 /run/sshd
"$SSHD" -t -f "$OSSH/sshd_config" 2>"$LOGS/sshd.log" || die "sshd rejects its config: $(head -n 3 "$LOGS/sshd.log")"
setsid "$SSHD" -D -e -f "$OSSH/sshd_config" -p "$OPENSSH_PORT" >>"$LOGS/sshd.log" 2>&1 &
SSHD_PID=$!
BENCH_PIDS+=("$SSHD_PID")

# ---------------------------------------------------------------- berthd ---
SSH_PORT=$(free_port) || die "no free port for the gateway"
echo "starting berthd (embedded engine, gateway on 127.0.0.1:$SSH_PORT) ..." >&2
bench_start_berthd --ssh-listen "127.0.0.1:$SSH_PORT" || {
	tail -n 20 "$LOGS/berthd.log" >&2
	die "berthd did not come up"
}
BERTH_TOKEN=$(bench_login_token)
[ -n "$BERTH_TOKEN" ] || die "cannot log in to berthd as its admin"
export BERTH_TOKEN
"$BERTH" ssh-key add "$KEY.pub" --name bench >"$LOGS/ssh-key.log" 2>&1 ||
	die "berth ssh-key add failed: $(tail -n 2 "$LOGS/ssh-key.log")"

REPO=$WORK/berth-bench-ssh-$TAG
NAME=bench-ssh-$TAG
mkdir -p "$REPO/.devcontainer"
git -C "$REPO" init -q -b main
echo "# $NAME" >"$REPO/README.md"
printf '{\n  "image": "%s"\n}\n' "$IMAGE" >"$REPO/.devcontainer/devcontainer.json"
git -C "$REPO" add -A
git -C "$REPO" -c user.name=Bench -c user.email=bench@example.invalid commit -q -m initial
echo "creating workspace $NAME ..." >&2
timeout "$OP_TIMEOUT" "$BERTH" create "$REPO" --name "$NAME" >"$LOGS/create.log" 2>&1 ||
	die "berth create failed: $(tail -n 3 "$LOGS/create.log")"

# ------------------------------------------------------------ the client ---
SSH_OPTS=(-F /dev/null -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes
	-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
	-o ConnectTimeout=60)
declare -A PORT=([berth]=$SSH_PORT [openssh]=$OPENSSH_PORT)
declare -A USERNAME=([berth]=$NAME [openssh]=root)

# run T CMD...: CMD bounded by T seconds, as CHILD (clean-up stops it); its status
run() {
	local t=$1
	shift
	timeout -k 5 "$t" "$@" &
	CHILD=$!
	wait "$CHILD"
	local rc=$?
	CHILD=
	return $rc
}
# on SIDE CMD...: ssh into SIDE running CMD (bounded; not measured)
on() {
	local side=$1
	shift
	timeout -k 5 "$OP_TIMEOUT" ssh "${SSH_OPTS[@]}" -p "${PORT[$side]}" "${USERNAME[$side]}@127.0.0.1" "$@"
}
declare -A KEX TPR

for side in openssh berth; do
	for ((i = 0; i < 100; i++)); do
		run 60 ssh "${SSH_OPTS[@]}" -p "${PORT[$side]}" "${USERNAME[$side]}@127.0.0.1" true \
			</dev/null >/dev/null 2>>"$LOGS/ssh-$side.log" && break
		alive "$SSHD_PID" || die "sshd exited: $(tail -n 3 "$LOGS/sshd.log")"
		sleep 0.2
	done
	[ "$i" -lt 100 ] || die "cannot log in to the $side side: $(tail -n 3 "$LOGS/ssh-$side.log")"
	# what was negotiated, for the header
	KEX[$side]=$(ssh -v "${SSH_OPTS[@]}" -p "${PORT[$side]}" "${USERNAME[$side]}@127.0.0.1" true 2>&1 </dev/null |
		sed -n 's/.*kex: algorithm: \(.*\)/\1/p; s/.*kex: server->client cipher: \([^ ]*\).*/\1/p' | paste -sd' ')
done

# p50 and p90 (nearest rank) of the numbers on stdin: "n p50 p90"
pct() {
	sort -g | awk '
		{ v[++n] = $1 }
		END {
			if (!n) { print "0 - -"; exit }
			i50 = int(0.50 * n); if (i50 < 0.50 * n) i50++
			i90 = int(0.90 * n); if (i90 < 0.90 * n) i90++
			printf "%d %.3f %.3f\n", n, v[i50], v[i90]
		}'
}
median() { # of the numbers on stdin
	sort -g | awk '{ v[++n] = $1 } END { if (!n) { print "-"; exit }
		print n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')

# -------------------------------------------------------- connect + exec ---
# Twice: with each server's preferred key exchange (OpenSSH 9.2 picks
# sntrup761x25519-sha512, which libssh 0.10 lacks: curve25519-sha256 for
# berthd), and with curve25519-sha256 on both (the same work on both sides).
echo "connect+exec: ssh HOST true, $RUNS runs each, two key exchanges ..." >&2
for f in connect-berth connect-openssh kex-berth kex-openssh; do : >"$WORK/$f"; done
for ((r = 1; r <= RUNS; r++)); do
	order=(berth openssh)
	((r % 2)) || order=(openssh berth)
	for side in "${order[@]}"; do
		for m in connect kex; do
			extra=()
			[ $m = kex ] && extra=(-o KexAlgorithms=curve25519-sha256)
			s=$EPOCHREALTIME
			run 60 ssh "${SSH_OPTS[@]}" "${extra[@]}" -p "${PORT[$side]}" "${USERNAME[$side]}@127.0.0.1" true \
				</dev/null >/dev/null 2>>"$LOGS/ssh-$side.log" &&
				awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }' >>"$WORK/$m-$side"
		done
	done
done

# ------------------------------------------------------------------ echo ---
cat >"$WORK/echo.py" <<'PY'
# echo.py N WARM CMD...: runs CMD (an ssh -tt to 'stty raw -echo; echo READY;
# exec cat') with pipes, waits for READY, then writes one byte at a time and
# times until it comes back; prints N round trips in ms, one a line.
import os, select, subprocess, sys, time
n, warm, cmd = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
fin, fout = p.stdin.fileno(), p.stdout.fileno()

def read_until(want, seconds):
    got = b""
    deadline = time.monotonic() + seconds
    while want not in got:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fout], [], [], left)[0]:
            sys.exit("echo.py: timed out waiting for %r (got %r)" % (want, got[-80:]))
        chunk = os.read(fout, 4096)
        if not chunk:
            sys.exit("echo.py: the session ended (got %r)" % got[-80:])
        got += chunk
    return got

read_until(b"READY\n", 120)
out = []
for i in range(warm + n):
    c = b"abcdefghij"[i % 10:i % 10 + 1]
    t0 = time.perf_counter_ns()
    os.write(fin, c)
    read_until(c, 30)
    if i >= warm:
        out.append((time.perf_counter_ns() - t0) / 1e6)
p.kill()
p.wait()
print("\n".join("%.3f" % x for x in out))
PY
echo "echo: $KEYSTROKES keystrokes each ..." >&2
for side in berth openssh; do
	run "$OP_TIMEOUT" python3 "$WORK/echo.py" "$KEYSTROKES" 10 ssh -tt -e none "${SSH_OPTS[@]}" \
		-p "${PORT[$side]}" "${USERNAME[$side]}@127.0.0.1" 'stty raw -echo; echo READY; exec cat' \
		>"$WORK/echo-$side" 2>>"$LOGS/echo-$side.log" || {
		echo "warning: the $side echo failed: $(tail -n 1 "$LOGS/echo-$side.log")" >&2
		: >"$WORK/echo-$side"
	}
done

# ------------------------------------------------------------------- scp ---
declare -A TP
SCP_FAILED=()
if [ -n "$SCP" ]; then
	SRC=$WORK/src.bin
	REMOTE=/tmp/bench-ssh-$TAG.bin
	echo "scp: writing $SIZE_MIB MiB of random data ..." >&2
	head -c $((SIZE_MIB * 1048576)) /dev/urandom >"$SRC" || die "cannot write $SRC"
	SUM=$(sha256sum "$SRC" | cut -d' ' -f1)
	BYTES=$(stat -c %s "$SRC")
	# xfer KEY FROM TO: one timed scp; appends MiB/s to TP[KEY]; false on failure
	xfer() {
		local key=$1 from=$2 to=$3 side=${1%-*} s e
		sync
		s=$EPOCHREALTIME
		if ! run "$OP_TIMEOUT" scp -q "${SSH_OPTS[@]}" -P "${PORT[$side]}" "$from" "$to" \
			</dev/null 2>>"$LOGS/scp-$key.log"; then
			SCP_FAILED+=("$key: $(tail -n 1 "$LOGS/scp-$key.log")")
			return 1
		fi
		e=$EPOCHREALTIME
		TP[$key]+="$(awk -v a="$s" -v b="$e" -v n="$BYTES" 'BEGIN { printf "%.1f", n / 1048576 / (b - a) }') "
	}
	# check KEY SUM: the copy's checksum is the source's
	check() {
		[ "$2" = "$SUM" ] && return 0
		SCP_FAILED+=("$1: checksum ${2:-none} differs from the source's")
		return 1
	}
	for ((r = 1; r <= ROUNDS; r++)); do
		echo "scp round $r of $ROUNDS ..." >&2
		order=(berth openssh)
		((r % 2)) || order=(openssh berth)
		for side in "${order[@]}"; do
			if [ "$side" = berth ]; then
				xfer berth-up "$SRC" "$NAME@127.0.0.1:$REMOTE" &&
					check berth-up "$(on berth sha256sum "$REMOTE" </dev/null | cut -d' ' -f1)" &&
					xfer berth-down "$NAME@127.0.0.1:$REMOTE" "$WORK/down.bin" &&
					check berth-down "$(sha256sum "$WORK/down.bin" | cut -d' ' -f1)"
				on berth rm -f "$REMOTE" </dev/null
			else
				xfer openssh-up "$SRC" "root@127.0.0.1:$WORK/up.bin" &&
					check openssh-up "$(sha256sum "$WORK/up.bin" | cut -d' ' -f1)" &&
					xfer openssh-down "root@127.0.0.1:$SRC" "$WORK/down.bin" &&
					check openssh-down "$(sha256sum "$WORK/down.bin" | cut -d' ' -f1)"
			fi
			rm -f "$WORK/up.bin" "$WORK/down.bin"
		done
	done
	rm -f "$SRC"
fi

# ---------------------------------------------------------------- report ---
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || rev="$rev+dirty"
ratio() { # ratio BERTH OPENSSH: BERTH/OPENSSH
	awk -v b="$1" -v o="$2" 'BEGIN { if (o + 0 == 0 || b == "-") print "-"; else printf "%.2fx", b / o }'
}
echo
echo "Berth SSH benchmark, $START_DATE, $(uname -n), $(nproc) CPUs, load average at start $LOAD_START"
echo "  berth $rev, release build; berthd --ssh-listen 127.0.0.1:$SSH_PORT (libssh $(dpkg-query -W -f '${Version}' libssh-4 2>/dev/null))"
echo "  peer: $("$SSHD" -V 2>&1 | head -n 1 | cut -d, -f1) on 127.0.0.1:$OPENSSH_PORT, UsePAM no; client $(ssh -V 2>&1 | cut -d, -f1)"
echo "  negotiated: berthd ${KEX[berth]}; OpenSSH ${KEX[openssh]}"
echo
fmt="%-42s %12s %12s %10s\n"
printf "$fmt" "" "berthd" "OpenSSH" "berth/ossh"
for m in connect kex echo; do
	read -r bn b50 b90 <<<"$(pct <"$WORK/$m-berth")"
	read -r on o50 o90 <<<"$(pct <"$WORK/$m-openssh")"
	case $m in
	connect) title="ssh HOST true, ms ($bn/$RUNS, $on/$RUNS ok)" ;;
	kex) title="  the same, both curve25519-sha256" ;;
	echo) title="keystroke echo, ms ($bn, $on keystrokes)" ;;
	esac
	printf "$fmt" "$title" "" "" ""
	printf "$fmt" "  p50" "$b50" "$o50" "$(ratio "$b50" "$o50")"
	printf "$fmt" "  p90" "$b90" "$o90" "$(ratio "$b90" "$o90")"
	[ $m = connect ] && C50=("$b50" "$o50")
	[ $m = kex ] && K50=("$b50" "$o50")
	[ $m = echo ] && awk -v b="$b50" -v o="$o50" 'BEGIN { if (b != "-" && o != "-") printf "  berthd adds %+.3f ms at p50\n", b - o }'
done
if [ -n "$SCP" ]; then
	for d in up down; do
		bm=$(echo "${TP[berth-$d]-}" | tr ' ' '\n' | grep . | median)
		om=$(echo "${TP[openssh-$d]-}" | tr ' ' '\n' | grep . | median)
		[ $d = up ] && dir="scp $SIZE_MIB MiB to the server, MiB/s" || dir="scp $SIZE_MIB MiB from the server, MiB/s"
		printf "$fmt" "$dir" "$bm" "$om" "$(ratio "$bm" "$om")"
		printf "$fmt" "  each run" "${TP[berth-$d]-}" "${TP[openssh-$d]-}" ""
		TPR[$d]=$(ratio "$bm" "$om")
	done
	for f in "${SCP_FAILED[@]}"; do
		echo "  failed: $f"
	done
	[ ${#SCP_FAILED[@]} -eq 0 ] && echo "  every copy's SHA-256 equals the source's"
fi
echo
cr=$(ratio "${C50[0]}" "${C50[1]}")
kr=$(ratio "${K50[0]}" "${K50[1]}")
verdict() { awk -v r="${1%x}" -v t="$2" -v op="$3" 'BEGIN { if (r == "-") print "not measured";
	else if ((op == "le" && r <= t) || (op == "ge" && r >= t)) print "met"; else print "missed" }'; }
echo "targets: connect+exec <= 1.5x OpenSSH's time: $cr, $(verdict "$cr" 1.5 le) (same key exchange: $kr, $(verdict "$kr" 1.5 le))"
if [ -n "$SCP" ]; then
	echo "         scp throughput >= 0.7x OpenSSH's: up ${TPR[up]}, $(verdict "${TPR[up]}" 0.7 ge); down ${TPR[down]}, $(verdict "${TPR[down]}" 0.7 ge)"
fi
echo "berthd VmRSS at the end: $(awk '/^VmRSS/ {print $2}' "/proc/$BERTHD_PID/status") kB (peak VmHWM $(awk '/^VmHWM/ {print $2}' "/proc/$BERTHD_PID/status") kB)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit 0
