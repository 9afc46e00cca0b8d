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
