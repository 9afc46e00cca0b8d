#!/usr/bin/env bats
# devcontainer.json beyond the image: mounts, limits, environment, waitFor,
# postAttach, and the policy that keeps a hostile repository in its box.

load helpers
bats_require_minimum_version 1.5.0

setup_file() {
	start_berthd
}

teardown_file() {
	stop_berthd
}

setup() {
	load_berthd_env
}

IMAGE=localhost/berth/base:bookworm

@test "a hostile config is refused with a clear message and nothing runs on the host" {
	marker=$BATS_TEST_TMPDIR/pwned
	repo=$(make_repo hostile "{\"image\": \"$IMAGE\",
  \"initializeCommand\": \"touch $marker\",
  \"mounts\": [\"type=bind,source=/,target=/host\"]}")
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_failure
	assert_output_contains 'initializeCommand skipped'
	assert_output_contains 'is refused by this server'"'"'s policy'
	# "/" holds berthd's data: no allow-list entry could let it in
	assert_output_contains '"mounts"[0] "type=bind,source=/,target=/host": would expose'
	assert_equal "$(ws_field "$name" state)" failed
	[ ! -e "$marker" ]
	assert_equal "$(our_containers | wc -l)" 0

	repo=$(make_repo privileged "{\"image\": \"$IMAGE\", \"privileged\": true}")
	run_berth create "$repo" --name "$(ws_name)"
	assert_failure
	assert_output_contains '"privileged": true: gives the container every capability'
	assert_output_contains 'allow-list entry "privileged" (berth admin settings --allow privileged)'

	repo=$(make_repo hostnet "{\"image\": \"$IMAGE\", \"runArgs\": [\"--network=host\"]}")
	run_berth create "$repo" --name "$(ws_name)"
	assert_failure
	assert_output_contains 'runArgs "--network host": puts the container on a network'

	repo=$(make_repo sock "{\"image\": \"$IMAGE\", \"runArgs\": [\"-v\", \"/run/podman/podman.sock:/var/run/docker.sock\"]}")
	run_berth create "$repo" --name "$(ws_name)"
	assert_failure
	assert_output_contains 'refused'

	repo=$(make_repo unknownflag "{\"image\": \"$IMAGE\", \"runArgs\": [\"--pid=host\"]}")
	run_berth create "$repo" --name "$(ws_name)"
	assert_failure
	assert_output_contains 'runArgs "--pid=host" is not supported'
}

@test "a config asking for four refused settings is told of all four at once, and berth config marks them" {
	mkdir -p "$BATS_TEST_TMPDIR/hostdir"
	shared=$(realpath "$BATS_TEST_TMPDIR/hostdir")
	repo=$(make_repo fourfold "{\"image\": \"$IMAGE\", \"privileged\": true,
  \"capAdd\": [\"SYS_ADMIN\"],
  \"mounts\": [\"type=bind,source=$shared,target=/host\", \"type=volume,source=cache,target=/cache\"],
  \"runArgs\": [\"--init\", \"--network=host\"]}")
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_failure
	assert_output_contains "'.devcontainer/devcontainer.json': 4 settings are refused by this server's policy:"
	assert_output_contains '  "privileged": true: gives the container every capability and the host'"'"'s devices; allow-list entry "privileged" (berth admin settings --allow privileged)'
	assert_output_contains '  capAdd "SYS_ADMIN": adds a Linux capability to the container; allow-list entry "capAdd:SYS_ADMIN" (berth admin settings --allow capAdd:SYS_ADMIN)'
	assert_output_contains "  \"mounts\"[0] \"type=bind,source=$shared,target=/host\": mounts a folder of the host into the container; allow-list entry \"bind:$shared\" (berth admin settings --allow bind:$shared)"
	assert_output_contains '  runArgs "--network host": puts the container on a network other than its own; allow-list entry "network:host" (berth admin settings --allow network:host)'
	assert_equal "$(ws_field "$name" state)" failed
	assert_equal "$(our_containers | wc -l)" 0

	# berth config marks the same four (after the configuration, on stderr)
	run --separate-stderr timeout 300 "$BERTH" config "$repo" --json
	assert_success
	assert_equal "$(jq '.berthPolicy.refused | length' <<<"$output")" 4
	assert_equal "$(jq -r '[.berthPolicy.refused[].allow[]] | join(" ")' <<<"$output")" \
		"privileged capAdd:SYS_ADMIN bind:$shared network:host"
	assert_equal "$(jq -r .mergedConfiguration.privileged <<<"$output")" true
	[[ "$stderr" == *"4 settings of '.devcontainer/devcontainer.json' would be refused by the policy of"* ]]
	[[ "$stderr" == *'capAdd "SYS_ADMIN": adds a Linux capability'*'(berth admin settings --allow capAdd:SYS_ADMIN)'* ]]

	# what the policy allows is not marked
	run_berth admin settings --allow capAdd:SYS_ADMIN --allow network:host
	assert_success
	run --separate-stderr timeout 300 "$BERTH" config "$repo" --json
	assert_success
	assert_equal "$(jq -r '[.berthPolicy.refused[].allow[]] | join(" ")' <<<"$output")" \
		"privileged bind:$shared"
	[[ "$stderr" == *"2 settings of"* ]]
	[[ "$stderr" != *SYS_ADMIN* ]]
	run_berth admin settings --disallow capAdd:SYS_ADMIN --disallow network:host
	assert_success

	# a server that cannot be asked: the configuration all the same, and why the marks are missing
	run --separate-stderr timeout 300 "$BERTH" --server http://127.0.0.1:1 config "$repo"
	assert_success
	assert_equal "$(jq -r .privileged <<<"$output")" true
	[[ "$stderr" == *"the settings this server would refuse are not marked: cannot read its policy: "* ]]
}

@test "an admin allow-list lets a capability and a host folder in, never the data dir" {
	shared=$BATS_FILE_TMPDIR/shared
	mkdir -p "$shared"
	echo from-host >"$shared/hello.txt"
	# entries are checked and kept in one spelling
	run_berth admin settings --allow capAdd:NOT_A_CAP
	assert_failure
	assert_output_contains "'NOT_A_CAP' is not a Linux capability"
	run_berth admin settings --allow capAdd:cap_sys_ptrace --allow "bind:$shared" --json
	assert_success
	assert_output_contains 'capAdd:SYS_PTRACE'
	repo=$(make_repo allowed "{\"image\": \"$IMAGE\", \"capAdd\": [\"SYS_PTRACE\"],
  \"runArgs\": [\"--cap-add=SYS_PTRACE\"],
  \"mounts\": [{\"type\": \"bind\", \"source\": \"$shared\", \"target\": \"/shared\"}]}")
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run_berth exec "$name" -- cat /shared/hello.txt
	assert_equal "$output" from-host
	run podman inspect -f '{{.HostConfig.CapAdd}}' "$(ws_field "$name" container_id)"
	assert_output_contains SYS_PTRACE

	# an entry taken off the allow-list is taken from the containers made
	# with it too, from their next start; the files stay for a rebuild
	run_berth admin settings --disallow capAdd:SYS_PTRACE
	assert_success
	run_berth stop "$name"
	assert_success
	run_berth start "$name"
	assert_failure
	assert_output_contains 'made with "capAdd:SYS_PTRACE", which this server'
	assert_output_contains 'rebuild it'
	assert_equal "$(ws_field "$name" state)" failed
	cid=$(ws_field "$name" container_id)
	run podman inspect -f '{{.State.Running}}' "$cid"
	assert_output_contains false
	# the rebuild it suggests fails on the same policy, before the old
	# container is touched
	run_berth rebuild "$name"
	assert_failure
	assert_output_contains 'refused by this server'"'"'s policy'
	assert_output_contains 'the previous container is kept'
	assert_equal "$(ws_field "$name" container_id)" "$cid"
	run podman container exists "$cid"
	assert_success
	run_berth admin settings --allow capAdd:SYS_PTRACE
	assert_success
	run_berth start "$name"
	assert_success
	run_berth exec "$name" -- cat /shared/hello.txt
	assert_equal "$output" from-host

	# an allowed prefix still cannot reach berthd's data
	run_berth admin settings --allow "bind:$BERTH_DATA"
	assert_success
	repo=$(make_repo datadir "{\"image\": \"$IMAGE\", \"mounts\": [\"type=bind,source=$BERTH_DATA,target=/data\"]}")
	run_berth create "$repo" --name "$(ws_name)"
	assert_failure
	assert_output_contains 'which no workspace may mount'
	run_berth admin settings --disallow capAdd:SYS_PTRACE --disallow "bind:$shared" --disallow "bind:$BERTH_DATA" --json
	assert_success
	[[ "$output" != *SYS_PTRACE* ]]
}

@test "volume and tmpfs mounts: the volume is the workspace's own, survives a rebuild, goes with delete" {
	repo=$(make_repo volumes "{\"image\": \"$IMAGE\",
  \"mounts\": [\"source=cache,target=/cache,type=volume\", {\"type\": \"tmpfs\", \"target\": \"/scratch\"}],
  \"postCreateCommand\": \"sudo chown vscode /cache\"}")
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	id=$(ws_field "$name" id)
	run_berth exec "$name" -- sh -c 'echo kept > /cache/file && findmnt -n -o FSTYPE /scratch'
	assert_success
	assert_equal "$output" tmpfs
	run podman volume ls -q --filter "label=berth.workspace=$id"
	assert_equal "$output" "berth-$id-cache"
	run_berth rebuild "$name"
	assert_success
	run_berth exec "$name" -- cat /cache/file
	assert_equal "$output" kept
	run_berth rm "$name"
	assert_success
	for i in $(seq 1 100); do
		[ -z "$(podman volume ls -q --filter "label=berth.workspace=$id")" ] && break
		sleep 0.2
	done
	run podman volume ls -q --filter "label=berth.workspace=$id"
	assert_equal "$output" ""
}

@test "hostRequirements become container limits; more than the admin allows fails clearly" {
	repo=$(make_repo limits "{\"image\": \"$IMAGE\", \"hostRequirements\": {\"cpus\": 1, \"memory\": \"512mb\"}}")
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run podman inspect -f '{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}' "$(ws_field "$name" container_id)"
	assert_equal "$output" "1000000000 536870912"
	# what the workspace itself sees (cgroup v2, or v1 on older hosts)
	run_berth exec "$name" -- sh -c 'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes'
	assert_equal "$output" 536870912

	repo=$(make_repo toobig '{"image": "'$IMAGE'", "hostRequirements": {"cpus": 4096}}')
	run_berth create "$repo" --name "$(ws_name)"
	assert_failure
	assert_output_contains 'hostRequirements.cpus: asks for 4096 CPUs, but this server allows at most'
	assert_output_contains '(berth admin settings --max-cpus 4096)'
}

@test "remoteEnv with \${containerEnv:VAR} reaches commands and terminals" {
	repo=$(make_repo remoteenv "{\"image\": \"$IMAGE\",
  \"containerEnv\": {\"BASE\": \"/opt/base\"},
  \"remoteEnv\": {\"TOOLS\": \"\${containerEnv:BASE}/bin\", \"GREETING\": \"hello from remoteEnv\"},
  \"postCreateCommand\": \"echo \\\"post: \$GREETING \$TOOLS\\\"\"}")
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	assert_output_contains "post: hello from remoteEnv /opt/base/bin"
	run_berth exec "$name" -- sh -c 'echo "$GREETING|$TOOLS"'
	assert_equal "$output" "hello from remoteEnv|/opt/base/bin"
}

@test "waitFor: the workspace is ready after updateContentCommand while postCreateCommand still runs" {
	repo=$(make_repo waitfor "{\"image\": \"$IMAGE\",
  \"updateContentCommand\": \"echo updated > .updated\",
  \"postCreateCommand\": \"while [ ! -e .release ]; do sleep 0.2; done; echo released > .post\"}")
	name=$(ws_name)
	run_berth create "$repo" --name "$name" --no-wait
	assert_success
	wait_state "$name" running failed
	assert_equal "$(ws_field "$name" state)" running
	assert_equal "$(ws_field "$name" lifecycle)" "running postCreateCommand"
	run_berth exec "$name" -- cat .updated
	assert_equal "$output" updated
	run_berth exec "$name" -- touch .release
	assert_success
	wait_lifecycle "$name" done
	run_berth exec "$name" -- cat .post
	assert_equal "$output" released
}

@test "postAttachCommand runs when a terminal attaches, not at create" {
	repo=$(make_repo attach "{\"image\": \"$IMAGE\", \"postAttachCommand\": \"echo attached >> .attach\"}")
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run_berth exec "$name" -- sh -c 'cat .attach 2>/dev/null | wc -l'
	assert_equal "$output" 0
	run timeout 90 node --experimental-websocket --no-warnings "$BATS_TEST_DIRNAME/ws-client.mjs" \
		"${BERTH_SERVER/http:/ws:}/api/v1/workspaces/$name/terminal?cols=80&rows=24" "$BERTH_TOKEN" "exit
"
	assert_success
	for i in $(seq 1 150); do
		[ "$("$BERTH" exec "$name" -- sh -c 'cat .attach 2>/dev/null | wc -l')" = 1 ] && break
		sleep 0.2
	done
	run_berth exec "$name" -- cat .attach
	assert_equal "$output" attached
	run_berth logs "$name"
	assert_output_contains "running postAttachCommand"
}

# make_build_repo NAME: a repo whose config builds .devcontainer/Dockerfile.
make_build_repo() {
	local dir=$BATS_FILE_TMPDIR/repos/$1
	mkdir -p "$dir/.devcontainer"
	git -C "$dir" init -q -b main
	echo "# $1" >"$dir/README.md"
	cat >"$dir/.devcontainer/Dockerfile" <<-DOCKERFILE
	FROM $IMAGE AS dev
	# unique per run: the first build of this test really builds
	LABEL berth.test.run="$$-$RANDOM$RANDOM"
	ARG GREETING=none
	COPY README.md /opt/readme.md
	RUN echo "\$GREETING" > /etc/greeting && echo 'export FROM_PROFILE=probed' > /etc/profile.d/berth-test.sh
	FROM dev AS broken
	RUN exit 7
	DOCKERFILE
	cat >"$dir/.devcontainer/devcontainer.json" <<-JSON
	{
	  // the target skips the broken stage
	  "build": {"dockerfile": "Dockerfile", "context": "..", "target": "dev",
	            "args": {"GREETING": "built-with-args"}},
	  "remoteUser": "vscode",
	}
	JSON
	git -C "$dir" add -A
	git -C "$dir" -c user.name=Test -c user.email=test@example.com commit -q -m "initial"
	echo "$dir"
}

@test "a Dockerfile config builds with args and target, runs, and is reused by the next workspace" {
	repo=$(make_build_repo built)
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	assert_output_contains "building '.devcontainer/Dockerfile' (context '.')"
	assert_output_contains "build: "
	run_berth exec "$name" -- cat /etc/greeting /opt/readme.md
	assert_equal "$output" "built-with-args
# built"
	# userEnvProbe (default loginInteractiveShell): /etc/profile.d is seen
	run_berth exec "$name" -- sh -c 'echo "$FROM_PROFILE"'
	assert_equal "$output" probed
	image=$(ws_field "$name" image)
	[[ "$image" == localhost/berth/build-* ]]
	run_berth create "$repo" --name "$(ws_name)"
	assert_success
	assert_output_contains "using the image built before"

	sed -i 's/"target": "dev"/"target": "broken"/' "$repo/.devcontainer/devcontainer.json"
	git -C "$repo" -c user.name=Test -c user.email=test@example.com commit -qam broken
	run_berth create "$repo" --name "$(ws_name)"
	assert_failure
	assert_output_contains "building '.devcontainer/Dockerfile' failed"
}

@test "a Dockerfile may not ADD from a URL, which the server would fetch from its own network" {
	repo=$(make_build_repo addurl)
	sed -i 's|^FROM .* AS dev$|&\nADD http://127.0.0.1:9/secret /secret|' "$repo/.devcontainer/Dockerfile"
	git -C "$repo" -c user.name=Test -c user.email=test@example.com commit -qam add-url
	run_berth create "$repo" --name "$(ws_name)"
	assert_failure
	assert_output_contains "'.devcontainer/Dockerfile' line 2: ADD from a URL is refused"
}

# feature DIR ID INSTALLS_AFTER: a feature that records its install order.
make_feature() {
	mkdir -p "$1"
	cat >"$1/devcontainer-feature.json" <<-JSON
	{"id": "$2", "version": "1.0.0", "installsAfter": [$3],
	 "options": {"greeting": {"type": "string", "default": "default-$2"}},
	 "containerEnv": {"FEATURE_$2": "on"}}
	JSON
	cat >"$1/install.sh" <<-'SH'
	#!/bin/sh
	set -e
	echo "$FEATURE_ID:$GREETING:$_REMOTE_USER" >> /opt/feature-order
	SH
	sed -i "s/\$FEATURE_ID/$2/" "$1/install.sh"
}

@test "features install in installsAfter order with their options, from a folder and a tarball URL" {
	repo=$BATS_FILE_TMPDIR/repos/features
	mkdir -p "$repo/.devcontainer"
	git -C "$repo" init -q -b main
	make_feature "$repo/.devcontainer/second" second '"first"'
	make_feature "$repo/.devcontainer/first" first ''
	served=$BATS_FILE_TMPDIR/served
	make_feature "$served/src" third '"second"'
	tar -czf "$served/third.tgz" -C "$served/src" .
	bg_on_free_port 'curl -sf -o /dev/null http://127.0.0.1:{port}/third.tgz' \
		python3 -m http.server --bind 127.0.0.1 --directory "$served" {port}
	port=$PORT
	curl -sf -o /dev/null "http://127.0.0.1:$port/third.tgz"
	cat >"$repo/.devcontainer/devcontainer.json" <<-JSON
	{"image": "$IMAGE", "remoteUser": "vscode",
	 "features": {"http://127.0.0.1:$port/third.tgz": {},
	              "./second": {"greeting": "hello-second"},
	              "./first": {}}}
	JSON
	git -C "$repo" add -A
	git -C "$repo" -c user.name=Test -c user.email=test@example.com commit -q -m "features"
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	assert_output_contains "installing features in this order: ./first, ./second, http://127.0.0.1:$port/third.tgz"
	run_berth exec "$name" -- cat /opt/feature-order
	assert_equal "$output" "first:default-first:vscode
second:hello-second:vscode
third:default-third:vscode"
	run_berth exec "$name" -- sh -c 'echo $FEATURE_first$FEATURE_third'
	assert_equal "$output" onon
	run_berth rebuild "$name"
	assert_success
	assert_output_contains "built before"
}

# push_blob REGISTRY NAME FILE: uploads a blob; prints its digest.
push_blob() {
	local digest loc
	digest=sha256:$(sha256sum "$3" | cut -d' ' -f1)
	loc=$(curl -sf -i -X POST "$1/v2/$2/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
	[[ "$loc" == http* ]] || loc="$1$loc"
	[[ "$loc" == *\?* ]] && loc="$loc&digest=$digest" || loc="$loc?digest=$digest"
	curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$3" "$loc" >/dev/null
	echo "$digest"
}

@test "a feature from an OCI registry (Debian's docker-registry on loopback) installs" {
	reg=$BATS_TEST_TMPDIR/registry
	mkdir -p "$reg/data"
	# the registry reads its address from its config, written per port tried
	bg_on_free_port 'curl -sf -o /dev/null http://127.0.0.1:{port}/v2/' sh -c \
		'printf "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n" "$1" "$2" >"$3" &&
		exec docker-registry serve "$3"' sh "$reg/data" {port} "$reg/config.yml"
	port=$PORT
	url=http://127.0.0.1:$port
	curl -sf -o /dev/null "$url/v2/"
	make_feature "$reg/src" fourth ''
	tar -cf "$reg/layer.tar" -C "$reg/src" .
	echo '{}' >"$reg/config.json"
	name=berth-test/features/fourth
	layer=$(push_blob "$url" "$name" "$reg/layer.tar")
	config=$(push_blob "$url" "$name" "$reg/config.json")
	manifest=$(jq -nc --arg l "$layer" --argjson ls "$(stat -c %s "$reg/layer.tar")" \
		--arg c "$config" --argjson cs "$(stat -c %s "$reg/config.json")" \
		'{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
		  config: {mediaType: "application/vnd.devcontainers", digest: $c, size: $cs},
		  layers: [{mediaType: "application/vnd.devcontainers.layer.v1+tar", digest: $l, size: $ls}]}')
	curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
		--data-binary "$manifest" "$url/v2/$name/manifests/1" >/dev/null
	repo=$(make_repo ocifeature "{\"image\": \"$IMAGE\", \"remoteUser\": \"vscode\",
  \"features\": {\"127.0.0.1:$port/$name:1\": {\"greeting\": \"from-the-registry\"}}}")
	ws=$(ws_name)
	run_berth create "$repo" --name "$ws"
	assert_success
	assert_output_contains "fetching feature '127.0.0.1:$port/$name:1'"
	run_berth exec "$ws" -- cat /opt/feature-order
	assert_equal "$output" "fourth:from-the-registry:vscode"
}

@test "\${localEnv:VAR} comes from the owner's secrets; the stored environment never holds a secret" {
	printf 'from-the-owner-123' | "$BERTH" secret set DC_LOCAL --value-stdin
	printf 'never-stored-456' | "$BERTH" secret set DC_OTHER --value-stdin
	repo=$(make_repo localenv "{\"image\": \"$IMAGE\",
  \"containerEnv\": {\"FROM_OWNER\": \"\${localEnv:DC_LOCAL}\", \"FROM_BERTHD\": \"\${localEnv:HOME:unset}\"}}")
	name=$(ws_name)
	run_berth create "$repo" --name "$name"
	assert_success
	run_berth exec "$name" -- sh -c 'echo "$FROM_OWNER|$FROM_BERTHD|$DC_OTHER"'
	assert_equal "$output" "from-the-owner-123|unset|never-stored-456"
	run sqlite3 "$BERTH_DATA/berth.db" "SELECT runtime FROM workspaces WHERE name = '$name'"
	assert_success
	[[ "$output" == *'"env"'* ]]
	[[ "$output" != *never-stored-456* ]]
}
