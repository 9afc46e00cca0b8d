# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it; do not run it.
# shellcheck disable=SC2034 # variables are used by the sourcing scripts

BERTH_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BERTH_DEFAULT_DATA="$BERTH_REPO_ROOT/.berth-data"
BERTH_BASE_IMAGE="localhost/berth/base:bookworm"
BERTH_BASE_ARCHIVE_NAME="base-bookworm.tar"

# Progress lines go to stderr so stdout stays usable by callers.
say() { printf 'setup: %s\n' "$*" >&2; }
die() {
	printf 'setup: error: %s\n' "$*" >&2
	exit 1
}

# Make a path absolute without requiring that it exists.
abspath() {
	case "$1" in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$(pwd)" "$1" ;;
	esac
}

# missing_packages PKG...: those of the Debian packages not installed, one a line.
missing_packages() {
	local installed p
	# dpkg-query exits 1 when some package is unknown to dpkg; that is fine.
	installed=" $({ dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null || true; } |
		awk '$2 == "ii" { printf "%s ", $1 }') "
	for p in "$@"; do
		case "$installed" in *" $p "*) ;; *) printf '%s\n' "$p" ;; esac
	done
}

# apt_install LOG PKG...: apt-get update and install, output to LOG; on failure
# shows its end and dies.
apt_install() {
	local log=$1
	shift
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get -q update >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		die "apt-get update failed (log: $log)"
	fi
	if ! apt-get -q -y \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		install "$@" </dev/null >>"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "apt-get install failed (log: $log)"
	fi
}

# Run a command quietly; on failure show its output and the command.
quiet() {
	local out rc=0
	out="$("$@" 2>&1)" || rc=$?
	if [ "$rc" -ne 0 ]; then
		printf '%s\n' "$out" >&2
		printf 'setup: command failed (%d): %s\n' "$rc" "$*" >&2
	fi
	return "$rc"
}
