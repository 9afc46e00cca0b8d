#!/usr/bin/env bash
# scripts/base-image.sh DATA_DIR
#
# Ensure the default workspace image localhost/berth/base:bookworm exists in
# Podman's storage. In order of cost:
#   1. already in storage                         -> nothing to do
#   2. DATA_DIR/images/base-bookworm.tar exists   -> podman load (seconds)
#   3. otherwise build it with mmdebstrap from the host's Debian mirror,
#      podman import it, and save the cache archive for next time.
#
# The image has the shape of mcr.microsoft.com/devcontainers/base:bookworm:
# user vscode (1000:1000, bash, passwordless sudo), git, curl, en_US.UTF-8,
# CMD ["/bin/bash"], label devcontainer.metadata=[{"remoteUser":"vscode"}].
#
# Environment overrides: BERTH_DEBIAN_MIRROR, BERTH_DEBIAN_SECURITY_MIRROR,
# BERTH_BASE_REBUILD=1 (ignore storage and archive; build afresh).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUITE=bookworm
IMAGE="$BERTH_BASE_IMAGE"
METADATA='[{"remoteUser":"vscode"}]'
PACKAGES="bash,git,ca-certificates,curl,sudo,procps,openssh-client,less,locales"

DATA="$(abspath "${1:-$BERTH_DEFAULT_DATA}")"
IMAGES="$DATA/images"
ARCHIVE="$IMAGES/$BERTH_BASE_ARCHIVE_NAME"

command -v podman >/dev/null || die "podman is not installed (run scripts/setup.sh)"
mkdir -p "$IMAGES"

# Two set-ups at once (make run + make test) must not both build.
exec 9>"$IMAGES/.lock"
flock 9

image_ok() {
	podman image exists "$IMAGE" || return 1
	local got
	got="$(podman image inspect --format '{{index .Labels "devcontainer.metadata"}}' "$IMAGE" 2>/dev/null)" || return 1
	[ "$got" = "$METADATA" ]
}

if [ "${BERTH_BASE_REBUILD:-0}" != 1 ]; then
	if image_ok; then
		say "image $IMAGE present"
		# the cluster tests load the nodes from the archive
		if [ ! -s "$ARCHIVE" ]; then
			say "saving cache archive $ARCHIVE"
			quiet podman save -q --format docker-archive -o "$ARCHIVE.tmp" "$IMAGE" &&
				mv -f "$ARCHIVE.tmp" "$ARCHIVE"
		fi
		exit 0
	fi
	if [ -s "$ARCHIVE" ]; then
		say "loading $IMAGE from $ARCHIVE"
		if quiet podman load -q -i "$ARCHIVE" && image_ok; then
			exit 0
		fi
		say "cached archive is unusable; moving it aside and rebuilding"
		mv -f "$ARCHIVE" "$ARCHIVE.bad"
	fi
fi

# ---------------------------------------------------------------- build ---
command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (run scripts/setup.sh)"
[ "$(id -u)" = 0 ] || die "building the base image needs root (mmdebstrap --mode=root)"

# Mirrors from the host's apt sources (deb822 *.sources and one-line *.list).
# Prints "SUITE URI" for every enabled deb entry.
apt_source_entries() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '
			function flush() {
				if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) != "no") {
					nu = split(uris, U, /[ \t]+/); ns = split(suites, S, /[ \t]+/)
					for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
						if (U[i] != "" && S[j] != "") print S[j], U[i]
				}
				types = uris = suites = enabled = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			{
				key = tolower($1); sub(/:$/, "", key)
				val = $0; sub(/^[^:]*:[ \t]*/, "", val)
				if (key == "types") types = val
				else if (key == "uris") uris = val
				else if (key == "suites") suites = val
				else if (key == "enabled") enabled = val
			}
			END { flush() }
		' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '
			$1 != "deb" { next }
			{
				i = 2
				if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
				if (i + 1 <= NF) print $(i + 1), $i
			}
		' "$f"
	done
}

pick_mirror() { # $1 = regex on the suite
	apt_source_entries | awk -v re="$1" '$1 ~ re { print $2; exit }'
}

MIRROR="${BERTH_DEBIAN_MIRROR:-$(pick_mirror "^$SUITE\$")}"
[ -n "$MIRROR" ] || MIRROR="$(pick_mirror '^[a-z]+$')"
[ -n "$MIRROR" ] || MIRROR="http://deb.debian.org/debian"
SECURITY="${BERTH_DEBIAN_SECURITY_MIRROR:-$(pick_mirror "^$SUITE-security\$")}"
[ -n "$SECURITY" ] || SECURITY="$(pick_mirror '-security$')"
[ -n "$SECURITY" ] || SECURITY="${MIRROR%/debian*}/debian-security"
MIRROR="${MIRROR%/}"
SECURITY="${SECURITY%/}"

OLD_ID="$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
TMP="$(mktemp -d "$IMAGES/.build.XXXXXX")"
TMPIMG="localhost/berth/base-build-$$:tmp"
cleanup() {
	rm -rf "$TMP"
	podman rmi -f "$TMPIMG" >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "building $IMAGE with mmdebstrap from $MIRROR (takes a minute or two)"
LOG="$IMAGES/mmdebstrap.log"
start=$SECONDS
# Hooks run as `sh -c HOOK exec ROOTDIR`, so "$1" is the new root.
# shellcheck disable=SC2016
if ! mmdebstrap \
	--mode=root \
	--variant=minbase \
	--components=main \
	--include="$PACKAGES" \
	--aptopt='Acquire::Retries "3"' \
	--aptopt='Acquire::Languages "none"' \
	--dpkgopt='force-unsafe-io' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-include=/usr/share/locale/locale.alias' \
	--customize-hook='sed -i "s/^# *\(en_US.UTF-8 UTF-8\)/\1/" "$1/etc/locale.gen"' \
	--customize-hook='chroot "$1" locale-gen' \
	--customize-hook='printf "LANG=en_US.UTF-8\n" > "$1/etc/default/locale"' \
	--customize-hook='chroot "$1" groupadd --gid 1000 vscode' \
	--customize-hook='chroot "$1" useradd --uid 1000 --gid 1000 --create-home --home-dir /home/vscode --shell /bin/bash vscode' \
	--customize-hook='printf "vscode ALL=(root) NOPASSWD:ALL\n" > "$1/etc/sudoers.d/vscode"; chmod 0440 "$1/etc/sudoers.d/vscode"' \
	--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log "$1"/etc/hostname' \
	"$SUITE" "$TMP/rootfs.tar" \
	"deb $MIRROR $SUITE main" \
	"deb $MIRROR $SUITE-updates main" \
	"deb $SECURITY $SUITE-security main" \
	</dev/null >"$LOG" 2>&1; then
	tail -n 30 "$LOG" >&2
	die "mmdebstrap failed (full log: $LOG)"
fi
say "rootfs built in $((SECONDS - start))s; importing"

quiet podman import \
	--change 'CMD ["/bin/bash"]' \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'ENV LANG=en_US.UTF-8' \
	--change "LABEL devcontainer.metadata=$METADATA" \
	"$TMP/rootfs.tar" "$TMPIMG" >/dev/null
rm -f "$TMP/rootfs.tar"

got="$(podman image inspect --format '{{index .Labels "devcontainer.metadata"}}' "$TMPIMG")"
if [ "$got" = "$METADATA" ]; then
	quiet podman tag "$TMPIMG" "$IMAGE"
else
	# Fallback: a one-line build on top of the import (works offline).
	printf 'FROM %s\nLABEL devcontainer.metadata=%s\n' "$TMPIMG" "'$METADATA'" >"$TMP/Containerfile"
	quiet podman build -q --pull=never -t "$IMAGE" -f "$TMP/Containerfile" "$TMP" >/dev/null
fi
podman rmi "$TMPIMG" >/dev/null 2>&1 || true
image_ok || die "image $IMAGE lacks label devcontainer.metadata=$METADATA"
# A rebuild leaves the previous image untagged; drop it unless in use.
[ -z "$OLD_ID" ] || podman rmi "$OLD_ID" >/dev/null 2>&1 || true

say "saving cache archive $ARCHIVE"
quiet podman save -q --format docker-archive -o "$TMP/base.tar" "$IMAGE"
mv -f "$TMP/base.tar" "$ARCHIVE"
rm -f "$ARCHIVE.bad"
say "image $IMAGE ready ($((SECONDS - start))s)"
