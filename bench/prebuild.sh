#!/usr/bin/env bash
# bench/prebuild.sh [--runs N] [--size-mb MB] [--setup-seconds S] [--keep DIR]
#
# A benchmark, not a test: it measures and prints, and exits 0 however slow the
# machine is (non-zero only when it cannot run at all).
#
# One repository whose onCreateCommand stands for a real set-up: it sleeps
# --setup-seconds (default 20: an `npm ci`, a compile) and writes --size-mb
# (default 2048) of files into the checkout (node_modules, build output). On
# the same repository and image, in one run, it times:
#
#   berth prebuild          once: clone, container, onCreateCommand, commit
#   berth create            from that prebuild, --runs times (default 5):
#                           returns when the workspace is running
#   berth create            after a new commit on the branch: from the same
#                           prebuild, fetching and checking out the new commit
#                           and running updateContentCommand
#   berth create --no-prebuild   once: what every create costs without one
#   devcontainer up         the peer (@devcontainers/cli, bench/node_modules),
#                           once, on a fresh copy: it has no prebuild that a
#                           new container can start from, so every `up` runs
#                           the set-up (rootful podman needs --userns=host and
#                           updateRemoteUserUID=false, as bench/create.sh says)
#   tar restore             Gitpod's way (gitpod#7002): untar the prebuild's
#                           checkout into a fresh folder; the floor of any
#                           "restore a snapshot" scheme, and what grows with
#                           the size a prebuild wrote
#
# berthd is its own (lib.sh: --engine embedded, a temporary --data dir).

# shellcheck disable=SC2046,SC2086
set -uo pipefail
export LC_ALL=C

BENCH_NAME=prebuild.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DEVCONTAINER=$BENCH/node_modules/.bin/devcontainer

RUNS=5
SIZE_MB=2048
SETUP_S=20
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--size-mb) SIZE_MB=$2; shift 2 ;;
	--setup-seconds) SETUP_S=$2; shift 2 ;;
	--keep) KEEP=$2; shift 2 ;;
	-h | --help)
		sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

[ -x "$BERTHD" ] && [ -x "$BERTH" ] || die "build first (make build)"
command -v podman >/dev/null || die "podman is not installed"
podman image exists "$IMAGE" || die "$IMAGE is not in podman's storage: run scripts/setup.sh"

trap bench_cleanup EXIT
trap 'exit 130' INT TERM
bench_workdir
REPO=$WORK/berth-bench-pb-$TAG
mkdir -p "$REPO/.devcontainer" "$WORK/peer" "$WORK/tmp"
cat >"$REPO/.devcontainer/devcontainer.json" <<EOF
{
  "image": "$IMAGE",
  "onCreateCommand": "sleep $SETUP_S; mkdir -p node_modules; for i in \$(seq 1 $((SIZE_MB / 64))); do head -c 67108864 /dev/zero >node_modules/blob-\$i; done",
  "updateContentCommand": "git rev-parse HEAD >.content-at",
  "postCreateCommand": "echo ready"
}
EOF
echo "# bench" >"$REPO/README.md"
git -C "$REPO" init -q -b main
git -C "$REPO" add -A
git -C "$REPO" -c user.name=b -c user.email=b@b commit -q -m initial

bench_cleanup_extra() {
	local id
	for id in $(ls "$DATA/workspaces" 2>/dev/null); do
		[[ $id == pb* ]] && podman rmi -f "localhost/berth/prebuild-$id:latest" >/dev/null 2>&1
	done
	awk -v d="$DATA/" 'index($2, d) == 1 {print $2}' /proc/mounts | xargs -r -n1 umount -l 2>/dev/null
	local ids
	ids=$(podman ps -a -q --filter "label=devcontainer.local_folder=$WORK/peer/$(basename "$REPO")" 2>/dev/null)
	[ -n "$ids" ] && podman rm -f -t 0 $ids >/dev/null 2>&1
	podman images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep "vsc-berth-bench-pb-$TAG" |
		xargs -r podman rmi -f >/dev/null 2>&1
}

bench_start_berthd || die "berthd did not start (see $LOGS/berthd.log)"
BERTH_TOKEN=$(bench_login_token)
export BERTH_TOKEN
[ -n "$BERTH_TOKEN" ] || die "cannot log in"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
declare -A T
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "prebuild of a set-up that takes ${SETUP_S}s and writes ${SIZE_MB} MB ..." >&2
t=$(now)
timeout 1800 "$BERTH" prebuild "$REPO" --branch main >"$LOGS/prebuild.log" 2>&1 || die "prebuild failed: $(tail -n 3 "$LOGS/prebuild.log")"
T[prebuild]=$(since "$t")
PB=$("$BERTH" prebuilds --json | sed -n 's/.*"id": *"\(pb[0-9a-f]*\)".*/\1/p' | head -n1)

from=()
for i in $(seq 1 "$RUNS"); do
	t=$(now)
	timeout 600 "$BERTH" create "$REPO" --branch main --name "pb-$TAG-$i" >"$LOGS/create-$i.log" 2>&1 ||
		die "create from prebuild failed: $(tail -n 3 "$LOGS/create-$i.log")"
	from+=("$(since "$t")")
	grep -q "starting from prebuild" "$LOGS/create-$i.log" || die "create $i did not use the prebuild"
done
T[from]=$(median "${from[@]}")
SIZE_CHECK=$("$BERTH" exec "pb-$TAG-1" -- sh -c 'du -sm node_modules | cut -f1')

git -C "$REPO" -c user.name=b -c user.email=b@b commit -q --allow-empty -m second
t=$(now)
timeout 600 "$BERTH" create "$REPO" --branch main --name "pb-$TAG-moved" >"$LOGS/create-moved.log" 2>&1 ||
	die "create after a new commit failed"
T[moved]=$(since "$t")

echo "cold create (--no-prebuild) ..." >&2
t=$(now)
timeout 1800 "$BERTH" create "$REPO" --branch main --no-prebuild --name "pb-$TAG-cold" >"$LOGS/create-cold.log" 2>&1 ||
	die "cold create failed"
T[cold]=$(since "$t")

T[peer]="-"
if [ -x "$DEVCONTAINER" ]; then
	echo "devcontainer up (the peer) ..." >&2
	dir=$WORK/peer/$(basename "$REPO")
	cp -a "$REPO" "$dir"
	sed -i "s|\"image\": \"$IMAGE\",|\"image\": \"$IMAGE\", \"runArgs\": [\"--userns=host\"], \"updateRemoteUserUID\": false,|" \
		"$dir/.devcontainer/devcontainer.json"
	# the image's remote user (uid 1000) writes the checkout; Berth gives it
	# the files itself, the CLI leaves that to the host (not timed)
	chown -R 1000:1000 "$dir"
	t=$(now)
	if TMPDIR=$WORK/tmp timeout 1800 "$DEVCONTAINER" up --workspace-folder "$dir" --docker-path podman \
		>"$LOGS/peer.out" 2>"$LOGS/peer.err"; then
		T[peer]=$(since "$t")
	else
		T[peer]="failed"
	fi
else
	echo "no bench/node_modules/.bin/devcontainer (bash bench/create.sh installs it): peer skipped" >&2
fi

echo "tar restore of the prebuild's checkout ..." >&2
tar -C "$DATA/workspaces/$PB" -cf "$WORK/snapshot.tar" .
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
mkdir -p "$WORK/restore"
t=$(now)
tar -C "$WORK/restore" -xf "$WORK/snapshot.tar" && sync
T[tar]=$(since "$t")
rm -rf "$WORK/restore" "$WORK/snapshot.tar"

RSS=$(awk '$1 == "VmRSS:" {print $2 " kB"}' "/proc/$BERTHD_PID/status")
printf '\nprebuild bench: set-up %ss, %s MB written (workspace sees %s MB), %s runs\n' "$SETUP_S" "$SIZE_MB" "$SIZE_CHECK" "$RUNS"
printf '%-48s %10s\n' "what" "seconds"
printf '%-48s %10s\n' "berth prebuild (once)" "${T[prebuild]}"
printf '%-48s %10s\n' "berth create from the prebuild (median)" "${T[from]}"
printf '%-48s %10s\n' "  runs" "$(echo "${from[*]}" | tr ' ' ',')"
printf '%-48s %10s\n' "berth create, branch one commit ahead" "${T[moved]}"
printf '%-48s %10s\n' "berth create --no-prebuild" "${T[cold]}"
printf '%-48s %10s\n' "devcontainer up (peer, no prebuild to start from)" "${T[peer]}"
printf '%-48s %10s\n' "tar restore of the same checkout (Gitpod's way)" "${T[tar]}"
printf 'berthd RSS after: %s\n' "$RSS"
