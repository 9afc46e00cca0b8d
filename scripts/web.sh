#!/usr/bin/env bash
# scripts/web.sh [DATA_DIR]
#
# Install the dashboard's front-end packages and the browser test's driver,
# pinned by their lockfiles, from the npm registry:
#
#   DATA_DIR/web-vendor/node_modules/   web/package.json + web/package-lock.json
#                                       (@xterm/xterm, @xterm/addon-fit); berthd
#                                       serves this directory under /vendor/
#   tests/browser/node_modules/         tests/browser/package.json + lockfile
#                                       (playwright-core; drives Debian's
#                                       /usr/bin/chromium, never downloads one)
#   bench/node_modules/                 bench/package.json + lockfile
#                                       (@devcontainers/cli: the peer the
#                                       benchmarks and the conformance test
#                                       compare Berth with)
#
# Each tree carries a stamp with the SHA-256 of its package.json and lockfile;
# a second run that finds matching stamps returns at once. A tree is installed
# in a staging directory and renamed into place, so an interrupted run never
# leaves a half tree. No install scripts run (--ignore-scripts).
set -euo pipefail
umask 022

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA="$(abspath "${1:-$BERTH_DEFAULT_DATA}")"
WEB_SRC="$BERTH_REPO_ROOT/web"
TEST_SRC="$BERTH_REPO_ROOT/tests/browser"

# The stamp of a package directory: its manifest and lockfile, hashed.
stamp_of() {
	cat "$1/package.json" "$1/package-lock.json" | sha256sum | cut -d' ' -f1
}

# tree_ok SRC DEST: DEST/node_modules was installed from SRC's lockfile.
tree_ok() {
	[ "$(cat "$2/node_modules/.berth-stamp" 2>/dev/null)" = "$(stamp_of "$1")" ]
}

# install_tree NAME SRC DEST: npm ci SRC's lockfile into DEST/node_modules.
install_tree() {
	local name="$1" src="$2" dest="$3" stage log
	tree_ok "$src" "$dest" && return 0
	command -v npm >/dev/null || die "npm is missing (Debian package npm) to install $name"
	mkdir -p "$dest"
	stage="$(mktemp -d "$dest/.stage.XXXXXX")"
	STAGES+=("$stage")
	log="$DATA/web-install.log"
	say "installing $name from the npm registry"
	cp "$src/package.json" "$src/package-lock.json" "$stage/"
	if ! (cd "$stage" && npm ci --no-audit --no-fund --ignore-scripts --no-update-notifier \
		--loglevel=error) >>"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "npm ci failed for $name (log: $log)"
	fi
	stamp_of "$src" >"$stage/node_modules/.berth-stamp"
	chmod -R a+rX,go-w "$stage/node_modules"
	rm -rf "$dest/node_modules.old"
	[ ! -e "$dest/node_modules" ] || mv "$dest/node_modules" "$dest/node_modules.old"
	mv "$stage/node_modules" "$dest/node_modules"
	rm -rf "$dest/node_modules.old" "$stage"
}

BENCH_SRC="$BERTH_REPO_ROOT/bench"
if tree_ok "$WEB_SRC" "$DATA/web-vendor" && tree_ok "$TEST_SRC" "$TEST_SRC" &&
	tree_ok "$BENCH_SRC" "$BENCH_SRC"; then
	say "web packages present"
	exit 0
fi

mkdir -p "$DATA"
# Two set-ups at once (make run + make test) must not both install.
exec 9>"$DATA/.web.lock"
flock 9
STAGES=()
cleanup() { [ ${#STAGES[@]} -eq 0 ] || rm -rf "${STAGES[@]}"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

T0=$SECONDS
: >"$DATA/web-install.log"
install_tree "front-end packages (web/package-lock.json)" "$WEB_SRC" "$DATA/web-vendor"
install_tree "browser test packages (tests/browser/package-lock.json)" "$TEST_SRC" "$TEST_SRC"
install_tree "the devcontainer CLI (bench/package-lock.json)" "$BENCH_SRC" "$BENCH_SRC"

[ -f "$DATA/web-vendor/node_modules/@xterm/xterm/lib/xterm.js" ] ||
	die "xterm.js is missing after npm ci (log: $DATA/web-install.log)"
[ -f "$DATA/web-vendor/node_modules/@xterm/addon-fit/lib/addon-fit.js" ] ||
	die "addon-fit.js is missing after npm ci (log: $DATA/web-install.log)"
say "web packages installed in $((SECONDS - T0))s"
