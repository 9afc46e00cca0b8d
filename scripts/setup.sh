#!/usr/bin/env bash
# scripts/setup.sh [--data DIR]
#
# Prepare this host for Berth (used by `make run` and `make test`):
#   1. install missing Debian packages (APT_PACKAGES below);
#   2. repair the host so rootful `podman run` works: stale Podman runtime
#      state from an earlier machine, the cgroup v1/v2 hybrid that crun
#      rejects, rlimits without CAP_SYS_RESOURCE, no systemd, and an iptables
#      FORWARD policy of DROP left by dockerd;
#   3. ensure the default image localhost/berth/base:bookworm (base-image.sh).
# Idempotent; a second run takes a few seconds. Needs root.
set -euo pipefail

# Debian packages Berth needs to build, run and test. Extend here.
APT_PACKAGES="
	podman crun runc catatonit conmon fuse-overlayfs slirp4netns uidmap
	containernetworking-plugins netavark aardvark-dns iptables
	mmdebstrap debian-archive-keyring
	meson ninja-build musl-tools pkg-config gcc git curl ca-certificates
	libuv1-dev libhttp-parser-dev libwslay-dev libcurl4-openssl-dev libssl-dev
	libjansson-dev libsqlite3-dev libsodium-dev libssh-dev openssh-client openssh-sftp-server libcmocka-dev libyaml-dev
	bats sqlite3 jq python3 clang clang-format libclang-rt-14-dev procps chromium libnss3-tools
	docker-registry
	wrk tmux
"

# Written only when its content changes. Podman 4.3 reads drop-ins from
# /etc/containers/containers.conf.d/*.conf after containers.conf.
CONF_DROPIN=/etc/containers/containers.conf.d/50-berth.conf

# Podman's runtime directories. They should be on a tmpfs, but on this
# machine kind /run is on the disk and outlives the machine.
PODMAN_RUN_DIRS="/run/libpod /run/containers /run/crun /run/runc /run/podman"
BOOT_MARKER=/run/libpod/berth-boot-id

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	echo "usage: $0 [--data DIR]   (default DIR: $BERTH_DEFAULT_DATA)"
}

DATA="$BERTH_DEFAULT_DATA"
while [ $# -gt 0 ]; do
	case "$1" in
	--data)
		[ $# -ge 2 ] || die "--data needs a directory"
		DATA="$2"
		shift 2
		;;
	--data=*)
		DATA="${1#--data=}"
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		die "unknown argument: $1"
		;;
	esac
done
DATA="$(abspath "$DATA")"

if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		exec sudo -n -- "$BASH" "$0" --data "$DATA"
	fi
	die "must run as root (rootful Podman, mounts, apt)"
fi

mkdir -p "$DATA"
T0=$SECONDS

# ------------------------------------------------------------- packages ---
step_packages() {
	local missing
	# shellcheck disable=SC2086 # APT_PACKAGES is a word list
	mapfile -t missing < <(missing_packages $APT_PACKAGES)
	[ ${#missing[@]} -gt 0 ] || return 0
	say "installing ${#missing[@]} packages: ${missing[*]}"
	apt_install "$DATA/apt.log" "${missing[@]}"
}

# ------------------------------------------------ stale podman run state ---
# Podman notices a reboot by the absence of /run/libpod/alive and then
# "refreshes" (containers -> stopped, locks re-allocated). With /run on
# disk, a new machine inherits the old alive file, old mount counts in
# /run/containers/storage and dead netns files, and Podman trusts them.
# Wipe them when they belong to an earlier boot, as a reboot would.
step_stale_runtime() {
	local boot prev stale=0 btime mtime d f
	boot="$(cat /proc/sys/kernel/random/boot_id)"
	prev="$(cat "$BOOT_MARKER" 2>/dev/null || true)"
	if [ -n "$prev" ]; then
		[ "$prev" = "$boot" ] || stale=1
	elif [ -e /run/libpod/alive ]; then
		btime="$(awk '$1 == "btime" { print $2 }' /proc/stat)"
		mtime="$(stat -c %Y /run/libpod/alive)"
		[ "$mtime" -ge "$btime" ] || stale=1
	fi
	if [ "$stale" = 1 ]; then
		local live
		live="$(pgrep -a -x 'conmon|podman' | cut -c1-100 || true)"
		if [ -n "$live" ]; then
			say "warning: Podman state looks stale but Podman processes run; leaving it:"
			printf '  %s\n' "$live" >&2
			KEEP_MARKER=1 # check again next time
		else
			say "Podman runtime state is from an earlier boot; resetting it"
			for d in $PODMAN_RUN_DIRS; do
				# Never delete through a live mount.
				if [ -d "$d" ] && ! findmnt -rn -o TARGET | grep -q "^$d/"; then
					rm -rf "$d"
				fi
			done
			for f in /run/netns/netns-*; do
				[ -e "$f" ] || continue
				mountpoint -q "$f" || rm -f "$f"
			done
			# Podman's lock table; a reboot clears it with /dev/shm.
			rm -f /dev/shm/libpod_lock
		fi
	fi
}

KEEP_MARKER=0
mark_boot() {
	[ "$KEEP_MARKER" = 0 ] || return 0
	mkdir -p "$(dirname "$BOOT_MARKER")"
	cat /proc/sys/kernel/random/boot_id >"$BOOT_MARKER"
}

# -------------------------------------------------------------- cgroups ---
# crun 1.8 refuses a cgroup v1/v2 hybrid whose v2 hierarchy has controllers
# ("cgroups in hybrid mode not supported"); hugetlb lands there when no v1
# hierarchy claims it. Mounting each such controller as a v1 hierarchy
# empties the v2 list. If that fails, use runc, which copes.
RUNTIME=crun
step_cgroups() {
	local unified=/sys/fs/cgroup/unified c left
	[ -f "$unified/cgroup.controllers" ] || return 0 # pure v1 or pure v2
	# Repair a lost hugetlb mount even when the v2 list is already empty.
	for c in $(cat "$unified/cgroup.controllers") hugetlb; do
		awk -v c="$c" '$1 == c && $4 == 1 { ok = 1 } END { exit !ok }' /proc/cgroups || continue
		mountpoint -q "/sys/fs/cgroup/$c" && continue
		mkdir -p "/sys/fs/cgroup/$c" 2>/dev/null || true
		if mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" 2>/dev/null; then
			say "mounted cgroup v1 $c hierarchy at /sys/fs/cgroup/$c"
		fi
	done
	left="$(tr '\n' ' ' <"$unified/cgroup.controllers")"
	left="${left% }"
	if [ -n "$left" ]; then
		command -v runc >/dev/null || die "cgroup v2 still lists '$left' (crun refuses) and runc is missing"
		say "cgroup v2 still lists '$left'; crun refuses this, using runc"
		RUNTIME=runc
	fi
}

# ----------------------------------------------------- containers.conf ---
step_containers_conf() {
	local mgr=cgroupfs content want got
	[ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && [ -d /run/systemd/system ] && mgr=systemd
	content="# Written by berth scripts/setup.sh; rewritten on every set-up.
[containers]
# CAP_SYS_RESOURCE is absent here: rlimits above the host's hard limits fail.
default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]

[engine]
cgroup_manager = \"$mgr\"
events_logger = \"file\"
runtime = \"$RUNTIME\""
	mkdir -p "$(dirname "$CONF_DROPIN")"
	if [ "$(cat "$CONF_DROPIN" 2>/dev/null)" != "$content" ]; then
		printf '%s\n' "$content" >"$CONF_DROPIN.tmp"
		mv -f "$CONF_DROPIN.tmp" "$CONF_DROPIN"
		say "wrote $CONF_DROPIN (runtime $RUNTIME, cgroups $mgr)"
	fi
	[ -z "${CONTAINERS_CONF:-}" ] || say "warning: CONTAINERS_CONF=$CONTAINERS_CONF overrides $CONF_DROPIN"

	# This is also Podman's first command after a stale-state reset, so it
	# performs the refresh.
	want="$RUNTIME $mgr file"
	local err
	err="$(mktemp)"
	if ! got="$(podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Host.EventLogger}}' 2>"$err")"; then
		cat "$err" >&2
		die "podman info failed"
	fi
	if grep -q 'level=error' "$err"; then
		grep 'level=error' "$err" >&2
		say "warning: Podman reported errors (above)"
	fi
	rm -f "$err"
	[ "$got" = "$want" ] || die "Podman ignores $CONF_DROPIN: wants '$want', has '$got'"
	mark_boot
}

# -------------------------------------------------------------- network ---
step_network() {
	local ipt policy
	# netavark drives iptables; if the kernel lacks nf_tables, try legacy.
	if ! iptables -S FORWARD >/dev/null 2>&1 && command -v iptables-legacy >/dev/null &&
		iptables-legacy -S FORWARD >/dev/null 2>&1; then
		update-alternatives --quiet --set iptables /usr/sbin/iptables-legacy
		update-alternatives --quiet --set ip6tables /usr/sbin/ip6tables-legacy || true
		say "iptables-nft does not work here; switched to iptables-legacy"
	fi
	for ipt in iptables ip6tables; do
		command -v "$ipt" >/dev/null || continue
		if ! policy="$("$ipt" -S FORWARD 2>&1)"; then
			[ "$ipt" = iptables ] && die "iptables does not work: $policy"
			continue
		fi
		case "$policy" in
		*"-P FORWARD DROP"* | *"-P FORWARD REJECT"*)
			# dockerd sets this; it drops Podman's bridge traffic.
			"$ipt" -P FORWARD ACCEPT
			say "$ipt FORWARD policy was DROP (dockerd?); set to ACCEPT"
			;;
		esac
	done
	if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
		echo 1 >/proc/sys/net/ipv4/ip_forward
		say "enabled net.ipv4.ip_forward"
	fi
}

# ----------------------------------------------------------- smoke test ---
# A real container on the default bridge: runtime, cgroups, rlimits, NAT.
step_smoke() {
	local out limit code mirror
	# Inside: the nofile limit, the mirror from the image's sources.list, and
	# the HTTP status of a HEAD request to it.
	# shellcheck disable=SC2016
	out="$(podman run --rm --name "berth-setup-check-$$" "$BERTH_BASE_IMAGE" sh -c '
		m=$(awk "/^deb /{print \$2; exit}" /etc/apt/sources.list)
		echo "$(ulimit -n) $m $(curl -s -o /dev/null --max-time 15 -w "%{http_code}" -I "$m/dists/bookworm/Release")"
	' 2>&1)" || {
		printf '%s\n' "$out" >&2
		die "podman run failed; see the message above"
	}
	read -r limit mirror code <<<"$out"
	[ "$limit" = 20000 ] || die "container nofile limit is '$limit', expected 20000: $out"
	[ "$code" = 200 ] && return 0
	if curl -s -o /dev/null --max-time 15 -I "$mirror/dists/bookworm/Release"; then
		die "containers cannot reach $mirror but the host can (iptables FORWARD/NAT?)"
	fi
	say "warning: the Debian mirror $mirror is unreachable from the host and from containers"
}

# ------------------------------------------------------------------ run ---
step_packages
step_stale_runtime
step_cgroups
step_containers_conf
step_network
bash "$BERTH_REPO_ROOT/scripts/base-image.sh" "$DATA"
bash "$BERTH_REPO_ROOT/scripts/ide.sh" "$DATA"
bash "$BERTH_REPO_ROOT/scripts/web.sh" "$DATA"
step_smoke
podman ps -a -q >/dev/null 2>&1 || die "'podman ps -a' fails: Podman's state is damaged (run it to see why)"
say "ready in $((SECONDS - T0))s (runtime $RUNTIME, data $DATA)"
