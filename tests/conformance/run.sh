#!/usr/bin/env bash
# tests/conformance/run.sh: `berth config` against the reference
# `devcontainer read-configuration --include-merged-configuration`
# (@devcontainers/cli, pinned in bench/package.json) on every config under
# configs/, field by field of the merged configuration. Prints every field
# that differs; a difference listed in known-differences.txt (with its reason)
# is reported but accepted. Exits 1 when an unexplained difference remains.
#
# Needs a berthd to ask for the image's metadata: BERTH_SERVER and BERTH_TOKEN
# (or a stored login), and the image present in its engine.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BERTH=${BERTH:-$ROOT/build/src/cli/berth}
DEVCONTAINER=${DEVCONTAINER:-$ROOT/bench/node_modules/.bin/devcontainer}
KNOWN=$HERE/known-differences.txt
export BERTH_CONFORMANCE_VAR="from the caller's environment"
unset BERTH_CONFORMANCE_UNSET

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
compared=0
differ=0
unexplained=0

# config name, the path of its file inside the folder (or "" for the default)
for dir in "$HERE"/configs/*/; do
	name=$(basename "$dir")
	# a copy, so the folder names are the same for both tools and no state is kept
	cp -a "$dir" "$work/$name"
	folder=$work/$name
	berth_args=() dc_args=()
	if [ -f "$folder/.devcontainer/python/devcontainer.json" ]; then
		berth_args=(--devcontainer .devcontainer/python/devcontainer.json)
		dc_args=(--config "$folder/.devcontainer/python/devcontainer.json")
	fi
	if ! "$BERTH" config "$folder" "${berth_args[@]}" --json >"$work/$name.berth.json" 2>"$work/$name.berth.err"; then
		echo "$name: berth config failed: $(cat "$work/$name.berth.err")"
		unexplained=$((unexplained + 1))
		continue
	fi
	if ! "$DEVCONTAINER" read-configuration --workspace-folder "$folder" "${dc_args[@]}" \
		--include-merged-configuration --docker-path podman >"$work/$name.dc.json" 2>"$work/$name.dc.err"; then
		echo "$name: devcontainer read-configuration failed: $(tail -3 "$work/$name.dc.err")"
		unexplained=$((unexplained + 1))
		continue
	fi
	keys=$(jq -r -s '[.[].mergedConfiguration | keys[]] | unique | .[]' "$work/$name.berth.json" "$work/$name.dc.json")
	for key in $keys; do
		[ "$key" = configFilePath ] && continue
		compared=$((compared + 1))
		b=$(jq -cS --arg k "$key" '.mergedConfiguration[$k]' "$work/$name.berth.json")
		d=$(jq -cS --arg k "$key" '.mergedConfiguration[$k]' "$work/$name.dc.json")
		[ "$b" = "$d" ] && continue
		differ=$((differ + 1))
		reason=$(awk -v c="$name" -v k="$key" '($1 == c || $1 == "*") && $2 == k { $1 = ""; $2 = ""; sub(/^ +/, ""); print; exit }' "$KNOWN")
		if [ -n "$reason" ]; then
			echo "$name: $key differs (known: $reason)"
		else
			unexplained=$((unexplained + 1))
			echo "$name: $key differs"
		fi
		echo "    berth:        $b"
		echo "    devcontainer: $d"
	done
done
echo "conformance: $compared fields compared, $differ differ, $unexplained unexplained"
[ "$unexplained" -eq 0 ]
