#!/usr/bin/env bash
# tests/cluster/cluster.sh: a three-node Docker Swarm on this one machine, for
# the cluster tests and for working on the Swarm backend (docs/cluster.md).
#
#   cluster.sh up          install docker.io if missing, make the nodes, the swarm
#   cluster.sh down        remove everything up made (idempotent, also after a failed up)
#   cluster.sh status      one line a node, then the manager's `docker node ls`
#   cluster.sh smoke       prove it: 3 Ready, a service pinned to node2, an overlay
#                          between a container on node1 and one on node3
#   cluster.sh sock N      print node N's socket path (for docker -H unix://…)
#   cluster.sh overlay-opts  print the `network create` options the overlays get here
#   cluster.sh registry    print the nodes' registry (host:port) when it runs
#   cluster.sh node-stop N [--kill]   stop node N's dockerd (SIGTERM, or SIGKILL)
#   cluster.sh node-start N           start it again on its old state
#
# Layout. A bridge berthsw0 (10.77.0.1/24) on the host; node N is the network
# namespace berth-swN with a veth onto the bridge as its eth0 (10.77.0.1N), and
# in it one dockerd whose files are all its own:
#
#   /run/berth-cluster/nodeN/       docker.sock, dockerd.pid, dockerd.log, daemon.json,
#                                   exec/ (--exec-root; its containerd too)
#   /var/lib/berth-cluster/nodeN/   --data-root (images, volumes, swarm state)
#   cgroup /berth-cluster-nodeN     every container of the node (cgroup-parent)
#   10.77.0.1:5077                  a registry for the nodes (Debian docker-registry,
#                                   files in /var/lib/berth-cluster/registry; every
#                                   node lists it in insecure-registries)
#
# dockerd runs in its own mount and UTS namespaces too: a fresh sysfs so it sees
# its own network devices (with the host's cgroup tree moved back under it; `ip
# netns exec` would drop it and dockerd refuses to start), and its own hostname
# berth-nodeN, which is what Swarm names the node. It never uses
# /var/run/docker.sock, Podman's socket or Podman's storage. The host gets two
# iptables rules, each commented "berth-cluster": bridge traffic accepted in
# FORWARD, and the nodes masqueraded to the outside (the Debian mirror).
#
# Two kernel gaps on this machine kind, probed at `up` and reported, not hidden:
# - no IPsec (CONFIG_INET_ESP) and no gcm(aes): an `--opt encrypted` overlay is
#   created but carries nothing ("Failed Adding rSA{... rfc4106(gcm(aes)) ...}:
#   function not implemented" in dockerd's log). `up` probes the kernel with an
#   xfrm state in a throwaway netns and writes the verdict to $RUN/overlay;
#   overlay-opts then gives plain overlays.
# - no IPVS: a service's virtual IP answers "No route to host". Services here
#   use --endpoint-mode dnsrr (the name resolves to the task's own address).
#
# Everything this script kills it finds by what it made: a pid from a node's
# pidfile whose command is dockerd and whose network namespace is that node's,
# and processes in that node's cgroups. Never a name match.
set -euo pipefail

NODES=3
BRIDGE=berthsw0
SUBNET=10.77.0
RUN=${BERTH_CLUSTER_RUN:-/run/berth-cluster}
VARLIB=${BERTH_CLUSTER_VARLIB:-/var/lib/berth-cluster}
DOCKER=${BERTH_CLUSTER_DOCKER:-/usr/bin/docker}
DOCKERD=${BERTH_CLUSTER_DOCKERD:-/usr/sbin/dockerd}
IMAGE=localhost/berth/base:bookworm
# Overlay networks get their subnets here, clear of the bridge and of Podman's 10.88/16.
ADDR_POOL=10.78.0.0/16
REGISTRY=$SUBNET.1:5077
# A TCP server on port 7000 that answers each connection with its argument (the
# image has perl, not nc).
# shellcheck disable=SC2016 # perl's variables
HELLO_SERVER=(perl -MIO::Socket::INET -e '$m = shift; $s = IO::Socket::INET->new(LocalPort => 7000,
	Listen => 5, ReuseAddr => 1) or die "listen: $!"; while ($c = $s->accept) { print $c "$m\n"; close $c }')
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ARCHIVE=${BERTH_CLUSTER_IMAGE_TAR:-$REPO/.berth-data/images/base-bookworm.tar}

say() { printf 'cluster: %s\n' "$*" >&2; }
die() {
	printf 'cluster: error: %s\n' "$*" >&2
	exit 1
}

now() { date +%s.%N; }
# since T0: seconds since T0 with one decimal.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

ns() { printf 'berth-sw%s' "$1"; }
addr() { printf '%s.1%s' "$SUBNET" "$1"; }
ndir() { printf '%s/node%s' "$RUN" "$1"; }
sock() { printf '%s/node%s/docker.sock' "$RUN" "$1"; }
cgname() { printf 'berth-cluster-node%s' "$1"; }
dk() {
	local n=$1
	shift
	"$DOCKER" -H "unix://$(sock "$n")" "$@"
}

# wait_for SECONDS WHAT CMD...: runs CMD until it succeeds or SECONDS pass; a CMD
# that exits 2 says it never will.
wait_for() {
	local limit=$1 what=$2 t0
	shift 2
	t0=$(now)
	local rc=0
	while :; do
		rc=0
		"$@" >/dev/null 2>&1 || rc=$?
		[ "$rc" = 0 ] && return 0
		if [ "$rc" = 2 ]; then
			say "gave up waiting for $what"
			return 1
		fi
		if awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
			say "timed out after ${limit}s waiting for $what"
			return 1
		fi
		sleep 0.2
	done
}

# ---------------------------------------------------------------- install ---

ensure_docker() {
	[ -x "$DOCKERD" ] && [ -x "$DOCKER" ] && return 0
	say "installing Debian docker.io (apt)"
	local made_policy=0 rc=0
	# The package's postinst would start dockerd on /var/run/docker.sock through
	# invoke-rc.d; a policy-rc.d that says 101 stops that. Ours only while apt runs.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get -q update && apt-get -q install -y --no-install-recommends docker.io; } \
		</dev/null >"${TMPDIR:-/tmp}/berth-cluster-apt.log" 2>&1 || rc=$?
	if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
	if [ "$rc" -ne 0 ]; then
		tail -n 20 "${TMPDIR:-/tmp}/berth-cluster-apt.log" >&2
		die "apt-get install docker.io failed"
	fi
	[ -x "$DOCKERD" ] || die "docker.io installed but $DOCKERD is missing"
}

# The archive scripts/setup.sh makes (podman save, docker-archive format):
# `docker load` needs its manifest.json.
check_archive() {
	[ -f "$ARCHIVE" ] || die "no image archive at '$ARCHIVE' (run 'make setup' first)"
	tar -tf "$ARCHIVE" manifest.json >/dev/null 2>&1 ||
		die "'$ARCHIVE' has no manifest.json: not a docker-load archive"
}

# ---------------------------------------------------------------- network ---

# ipt_rule ARGS...: adds an iptables rule with our comment unless it is there.
ipt_rule() {
	local table=$1
	shift
	iptables -t "$table" -C "$@" -m comment --comment berth-cluster 2>/dev/null ||
		iptables -t "$table" -A "$@" -m comment --comment berth-cluster
}

make_bridge() {
	if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
		ip link add "$BRIDGE" type bridge
		ip addr add "$SUBNET.1/24" dev "$BRIDGE"
	fi
	ip link set "$BRIDGE" up
	# Bridged frames pass the host's FORWARD chain (br_netfilter); a dockerd
	# elsewhere on the host may set its policy to DROP. Accept ours explicitly.
	ipt_rule filter FORWARD -i "$BRIDGE" -j ACCEPT
	ipt_rule filter FORWARD -o "$BRIDGE" -j ACCEPT
	ipt_rule nat POSTROUTING -s "$SUBNET.0/24" ! -o "$BRIDGE" -j MASQUERADE
}

make_netns() {
	local n=$1 name host peer
	name=$(ns "$n")
	host="bsw${n}h"
	peer="bsw${n}n"
	[ -e "/run/netns/$name" ] || ip netns add "$name"
	if ! ip -n "$name" link show eth0 >/dev/null 2>&1; then
		ip link del "$host" 2>/dev/null || true
		ip link add "$host" type veth peer name "$peer"
		ip link set "$peer" netns "$name"
		ip -n "$name" link set "$peer" name eth0
		ip -n "$name" addr add "$(addr "$n")/24" dev eth0
	fi
	ip link set "$host" master "$BRIDGE" up
	ip -n "$name" link set lo up
	ip -n "$name" link set eth0 up
	ip -n "$name" route replace default via "$SUBNET.1"
}

# ---------------------------------------------------------------- dockerd ---

# dockerd_pid N: prints node N's dockerd pid when it is alive and really ours.
dockerd_pid() {
	local n=$1 pid
	pid=$(cat "$(ndir "$n")/dockerd.pid" 2>/dev/null) || return 1
	case "$pid" in '' | *[!0-9]*) return 1 ;; esac
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
	[ -e "/run/netns/$(ns "$n")" ] || return 1
	[ "$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null)" = \
		"$(stat -L -c %i "/run/netns/$(ns "$n")")" ] || return 1
	printf '%s\n' "$pid"
}

# Runs inside node N's network namespace, in fresh mount and UTS namespaces
# (see node_start); becomes dockerd.
node_exec() {
	local n=$1 d
	d=$(ndir "$n")
	mkdir -p "$d/cgroup"
	mount --rbind /sys/fs/cgroup "$d/cgroup"
	mount -t sysfs sysfs /sys
	mount --move "$d/cgroup" /sys/fs/cgroup
	rmdir "$d/cgroup"
	hostname "berth-node$n"
	exec "$DOCKERD" --config-file "$d/daemon.json" \
		--data-root "$VARLIB/node$n" --exec-root "$d/exec" \
		--pidfile "$d/dockerd.pid" -H "unix://$d/docker.sock"
}

# node_answers N LAUNCHER: node N's dockerd answers; gives up (exit 2, which ends
# wait_for at once) when the process that runs it has ended.
node_answers() {
	dk "$1" version >/dev/null 2>&1 && return 0
	[ -e "/proc/$2" ] || return 2
	return 1
}

node_start() {
	local n=$1 d t0 launcher
	d=$(ndir "$n")
	if dockerd_pid "$n" >/dev/null; then
		return 0
	fi
	mkdir -p "$d/exec" "$VARLIB/node$n"
	chmod 700 "$d" "$VARLIB/node$n"
	rm -f "$d/docker.sock" "$d/dockerd.pid"
	cat >"$d/daemon.json" <<-EOF
		{
		  "cgroup-parent": "/$(cgname "$n")",
		  "storage-driver": "overlay2",
		  "log-driver": "json-file",
		  "iptables": ${BERTH_CLUSTER_IPTABLES:-true},
		  "insecure-registries": ["$REGISTRY"]
		}
	EOF
	t0=$(now)
	# setsid -w: the launcher's pid lives exactly as long as dockerd does.
	setsid -w nsenter --net="/run/netns/$(ns "$n")" \
		unshare --mount --uts --propagation private \
		"$HERE/cluster.sh" _node "$n" </dev/null >>"$d/dockerd.log" 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
	launcher=$!
	if ! wait_for 60 "node$n dockerd" node_answers "$n" "$launcher"; then
		tail -n 15 "$d/dockerd.log" >&2
		die "node$n: dockerd did not start (log: $d/dockerd.log)"
	fi
	say "node$n: dockerd up in $(since "$t0")s (pid $(dockerd_pid "$n"), $(addr "$n"))"
}

# node_stop N [--kill]: SIGTERM (or SIGKILL) to node N's dockerd, waits for it to end.
node_stop() {
	local n=$1 sig=TERM pid
	if [ "${2:-}" = --kill ]; then sig=KILL; fi
	pid=$(dockerd_pid "$n") || return 0
	kill -s "$sig" "$pid"
	if ! wait_for 30 "node$n dockerd to exit" test ! -e "/proc/$pid"; then
		kill -s KILL "$pid" 2>/dev/null || true
		wait_for 10 "node$n dockerd to die" test ! -e "/proc/$pid" || true
	fi
}

# Processes left in node N's container cgroups (after its dockerd ended).
kill_node_cgroups() {
	local n=$1 cg pid left=0
	for cg in /sys/fs/cgroup/pids/"$(cgname "$n")" /sys/fs/cgroup/memory/"$(cgname "$n")"; do
		[ -d "$cg" ] || continue
		while read -r pid; do
			if [ -n "$pid" ] && kill -s KILL "$pid" 2>/dev/null; then left=$((left + 1)); fi
		done < <(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null)
	done
	[ "$left" = 0 ] || say "node$n: killed $left process(es) left in its cgroups"
	# Empty cgroups, deepest first, in every hierarchy dockerd made one in.
	for cg in /sys/fs/cgroup/*/"$(cgname "$n")"; do
		[ -d "$cg" ] || continue
		wait_for 10 "cgroup $cg to empty" sh -c "! find '$cg' -name cgroup.procs -exec cat {} + | grep -q ." || true
		find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
}

# Can this kernel carry Swarm's encrypted overlay (ESP transport, rfc4106(gcm(aes)))?
# Writes "encrypted" or "plain: <the kernel's words>" to $RUN/overlay.
probe_encryption() {
	local out
	if out=$(unshare --net ip xfrm state add src 10.0.0.1 dst 10.0.0.2 proto esp spi 0x100 \
		reqid 1 mode transport aead 'rfc4106(gcm(aes))' \
		0x0102030405060708090a0b0c0d0e0f1011121314 64 2>&1); then
		echo encrypted >"$RUN/overlay"
	else
		printf 'plain: %s\n' "${out:-ip xfrm failed}" >"$RUN/overlay"
		say "encrypted overlay unavailable (kernel: ${out:-ip xfrm failed}); overlays are plain"
	fi
}

overlay_opts() {
	case "$(cat "$RUN/overlay" 2>/dev/null)" in
	encrypted) echo "--opt encrypted" ;;
	*) echo ;;
	esac
}

# --------------------------------------------------------------- registry ---

registry_pid() {
	local pid
	pid=$(cat "$RUN/registry.pid" 2>/dev/null) || return 1
	case "$pid" in '' | *[!0-9]*) return 1 ;; esac
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = docker-registry ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$RUN/registry.yml" || return 1
	printf '%s\n' "$pid"
}

registry_up() {
	local pid
	registry_pid >/dev/null && return 0
	if ! command -v docker-registry >/dev/null; then
		say "no docker-registry (Debian docker-registry): the nodes get no registry"
		return 0
	fi
	mkdir -p "$VARLIB/registry"
	cat >"$RUN/registry.yml" <<-EOF
		version: 0.1
		log:
		  level: warn
		storage:
		  filesystem:
		    rootdirectory: $VARLIB/registry
		  delete:
		    enabled: true
		http:
		  addr: $REGISTRY
	EOF
	setsid docker-registry serve "$RUN/registry.yml" </dev/null >>"$RUN/registry.log" 2>&1 \
		3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
	pid=$!
	echo "$pid" >"$RUN/registry.pid"
	wait_for 20 "the registry on $REGISTRY" curl -fsS "http://$REGISTRY/v2/" ||
		die "the registry did not start (log: $RUN/registry.log)"
}

registry_down() {
	local pid
	pid=$(registry_pid) || return 0
	kill "$pid"
	wait_for 10 "the registry to exit" test ! -e "/proc/$pid" || kill -s KILL "$pid" 2>/dev/null || true
}

# ------------------------------------------------------------------ swarm ---

swarm_state() { dk "$1" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null; }

ready_count() {
	dk 1 node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$' || true
}
all_ready() { [ "$(ready_count)" = "$NODES" ]; }

make_swarm() {
	local n token
	if [ "$(swarm_state 1)" != active ]; then
		dk 1 swarm init --advertise-addr "$(addr 1)" --listen-addr "$(addr 1):2377" \
			--default-addr-pool "$ADDR_POOL" >/dev/null
	fi
	token=$(dk 1 swarm join-token -q worker)
	for n in $(seq 2 "$NODES"); do
		[ "$(swarm_state "$n")" = active ] && continue
		dk "$n" swarm join --token "$token" --advertise-addr "$(addr "$n")" \
			--listen-addr "$(addr "$n"):2377" "$(addr 1):2377" >/dev/null
	done
	wait_for 60 "$NODES nodes Ready" all_ready || die "swarm: only $(ready_count) of $NODES Ready"
}

load_image() {
	local n=$1
	dk "$n" image inspect "$IMAGE" >/dev/null 2>&1 && return 0
	dk "$n" load -q -i "$ARCHIVE" >/dev/null
}

# --------------------------------------------------------------- commands ---

cmd_up() {
	local t0 t n pid pids=()
	[ "$(id -u)" = 0 ] || die "needs root (network namespaces, dockerd)"
	for t in ip nsenter unshare iptables setsid; do
		command -v "$t" >/dev/null || die "'$t' is missing"
	done
	t0=$(now)
	ensure_docker
	check_archive
	say "docker.io ready ($(since "$t0")s)"
	mkdir -p "$RUN"
	chmod 700 "$RUN"
	t=$(now)
	probe_encryption
	make_bridge
	for n in $(seq 1 "$NODES"); do make_netns "$n"; done
	registry_up
	say "network and registry ready ($(since "$t")s)"
	for n in $(seq 1 "$NODES"); do node_start "$n"; done
	t=$(now)
	for n in $(seq 1 "$NODES"); do
		load_image "$n" &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || die "docker load into a node failed"; done
	say "image $IMAGE on every node ($(since "$t")s)"
	t=$(now)
	make_swarm
	say "swarm of $NODES Ready ($(since "$t")s)"
	say "up in $(since "$t0")s; manager: $(sock 1)"
}

cmd_down() {
	local n name t0 cg
	t0=$(now)
	local pids=() pid
	for n in $(seq 1 "$NODES"); do
		node_stop "$n" &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || true; done
	registry_down
	for n in $(seq 1 "$NODES"); do
		kill_node_cgroups "$n"
		name=$(ns "$n")
		ip link del "bsw${n}h" 2>/dev/null || true
		if [ -e "/run/netns/$name" ]; then ip netns del "$name"; fi
	done
	ip link del "$BRIDGE" 2>/dev/null || true
	local table rule
	for table in filter nat; do
		{ iptables -t "$table" -S 2>/dev/null || true; } | sed -n '/--comment berth-cluster/s/^-A /-D /p' |
			while read -r rule; do
			# shellcheck disable=SC2086 # the rule is iptables' own words
			eval iptables -t "$table" $rule
		done
	done
	# Mounts dockerd made lived in its own mount namespace and went with it;
	# unmount anything of ours that is still visible here before removing files.
	awk -v a="$RUN" -v b="$VARLIB" 'index($5, a) == 1 || index($5, b) == 1 { print $5 }' \
		/proc/self/mountinfo | sort -r | while read -r cg; do umount -l "$cg" || true; done
	rm -rf "$RUN" "$VARLIB"
	say "down in $(since "$t0")s"
}

cmd_status() {
	local n pid state
	for n in $(seq 1 "$NODES"); do
		pid=$(dockerd_pid "$n") || pid=-
		state=$(swarm_state "$n") || state=unreachable
		printf 'node%s %s netns=%s dockerd=%s swarm=%s\n' "$n" "$(addr "$n")" \
			"$([ -e "/run/netns/$(ns "$n")" ] && echo yes || echo no)" "$pid" "${state:-unreachable}"
	done
	printf 'registry %s pid=%s\n' "$REGISTRY" "$(registry_pid || echo -)"
	dk 1 node ls 2>/dev/null || true
}

# The proofs of docs/cluster.md's harness section, each timed.
cmd_smoke() {
	local t net enc out ip3 svc=berth-smoke-$$ c1=berth-smoke1-$$ c3=berth-smoke3-$$
	net=berth-smoke-$$
	all_ready || die "not all $NODES nodes Ready: $(ready_count)"
	dk 1 node ls
	t=$(now)
	dk 1 service create -q --detach --no-resolve-image --name "$svc" --replicas 1 --endpoint-mode dnsrr \
		--constraint node.hostname==berth-node2 "$IMAGE" sleep infinity >/dev/null
	wait_for 60 "service on node2" sh -c "'$DOCKER' -H 'unix://$(sock 2)' ps -q \
		--filter label=com.docker.swarm.service.name=$svc | grep -q ."
	say "service pinned to node2 running in $(since "$t")s"
	dk 1 service ps --format '{{.Name}} {{.Node}} {{.CurrentState}}' "$svc"
	dk 1 service rm "$svc" >/dev/null

	t=$(now)
	enc=$(overlay_opts)
	# shellcheck disable=SC2086 # no option or two words
	dk 1 network create -d overlay $enc --attachable "$net" >/dev/null
	dk 1 run -d --name "$c1" --network "$net" "$IMAGE" sleep infinity >/dev/null
	dk 3 run -d --name "$c3" --network "$net" "$IMAGE" "${HELLO_SERVER[@]}" "hello from node3" >/dev/null
	ip3=$(dk 3 inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$c3")
	if out=$(timeout 30 "$DOCKER" -H "unix://$(sock 1)" exec "$c1" bash -c \
		"for i in \$(seq 1 50); do exec 3<>/dev/tcp/$ip3/7000 && { cat <&3; exit 0; }; sleep 0.2; done; exit 1" 2>&1); then
		say "node1 -> node3 over overlay${enc:+ (encrypted)}: '$out' in $(since "$t")s"
	else
		say "node1 -> node3 over overlay failed: $out"
	fi
	dk 1 rm -f "$c1" >/dev/null
	dk 3 rm -f "$c3" >/dev/null
	dk 1 network rm "$net" >/dev/null || true
	[ "$out" = "hello from node3" ]
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
smoke) cmd_smoke ;;
sock) sock "${2:?node number}" && echo ;;
overlay-opts) overlay_opts ;;
registry) registry_pid >/dev/null && echo "$REGISTRY" ;;
node-stop) node_stop "${2:?node number}" "${3:-}" ;;
node-start) node_start "${2:?node number}" ;;
_node) node_exec "${2:?}" ;;
*)
	sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
