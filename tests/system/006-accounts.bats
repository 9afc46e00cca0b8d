#!/usr/bin/env bats
# Accounts, tokens, sessions and per-user isolation.

load helpers

setup_file() {
	start_berthd
	load_berthd_env
	make_user alice >"$BATS_FILE_TMPDIR/alice.token"
	make_user bob >"$BATS_FILE_TMPDIR/bob.token"
}

teardown_file() {
	stop_berthd
}

setup() {
	load_berthd_env
	ALICE=$(cat "$BATS_FILE_TMPDIR/alice.token")
	BOB=$(cat "$BATS_FILE_TMPDIR/bob.token")
}

as() { # as TOKEN COMMAND...: run the CLI as someone
	local t=$1
	shift
	BERTH_TOKEN=$t run timeout 300 "$BERTH" "$@"
}

status_of() { # status_of TOKEN METHOD PATH [BODY]: just the HTTP status
	API_TOKEN=$1 api "$2" "$3" "${4:-}" | head -1 | cut -d' ' -f1
}

@test "first start creates admin and prints its password once" {
	dir=$BATS_TEST_TMPDIR/fresh
	mkdir -p "$dir"
	port=$((20000 + RANDOM % 12000))
	env -u BERTH_ADMIN_PASSWORD "$BERTHD" --data "$dir" --listen 127.0.0.1:$port \
		--engine "$BERTH_TEST_ENGINE" >"$dir/log" 2>&1 3>&- &
	pid=$!
	for i in $(seq 1 100); do grep -q "password:" "$dir/log" && break; sleep 0.1; done
	pw=$(sed -n "s/.*created the account 'admin' with the password: \([A-Za-z0-9]*\).*/\1/p" "$dir/log")
	[ ${#pw} -ge 16 ]
	BERTH_SERVER=http://127.0.0.1:$port
	for i in $(seq 1 100); do curl -sf "$BERTH_SERVER/api/v1/health" >/dev/null && break; sleep 0.1; done
	tok=$(login_token admin "$pw")
	[[ "$tok" == berth_* ]]
	kill $pid
	wait $pid || true
	"$BERTHD" --data "$dir" --listen 127.0.0.1:$port --engine "$BERTH_TEST_ENGINE" >"$dir/log2" 2>&1 3>&- &
	pid=$!
	for i in $(seq 1 100); do curl -sf "$BERTH_SERVER/api/v1/health" >/dev/null && break; sleep 0.1; done
	kill $pid
	wait $pid || true
	! grep -q "password:" "$dir/log2"
}

@test "passwords and tokens are stored only as hashes" {
	run sqlite3 "$BERTH_DATA/berth.db" "SELECT password_hash FROM users WHERE name='alice'"
	[[ "$output" == '$argon2id$'* ]]
	secret_part=${ALICE##*_}
	run sqlite3 "$BERTH_DATA/berth.db" "SELECT COUNT(*) FROM tokens WHERE hex(hash) LIKE '%' || upper('$secret_part') || '%' OR id = '$ALICE'"
	assert_equal "$output" 0
	! grep -qa "$secret_part" "$BERTH_DATA/berth.db"
}

@test "a wrong name or password gets the same 401, and failures are throttled" {
	run api POST /api/v1/auth/login '{"username": "alice", "password": "wrong"}'
	assert_output_contains "401 "
	a=${output#* }
	run api POST /api/v1/auth/login '{"username": "nobody", "password": "wrong"}'
	assert_output_contains "401 "
	assert_equal "${output#* }" "$a"
	for i in 1 2 3 4 5; do
		API_TOKEN=none api POST /api/v1/auth/login '{"username": "carol-throttle", "password": "x"}' >/dev/null
	done
	run curl -s -D - -o /dev/null -X POST -H 'Content-Type: application/json' \
		--data-binary '{"username": "carol-throttle", "password": "x"}' "$BERTH_SERVER/api/v1/auth/login"
	assert_output_contains "429"
	assert_output_contains "Retry-After:"
}

@test "anonymous callers get 401 on every route but health and login" {
	for route in "GET /api/v1/workspaces" "POST /api/v1/workspaces" "GET /api/v1/workspaces/x" \
		"POST /api/v1/workspaces/x/start" "POST /api/v1/workspaces/x/stop" \
		"POST /api/v1/workspaces/x/rebuild" "DELETE /api/v1/workspaces/x" \
		"GET /api/v1/workspaces/x/events" "GET /api/v1/workspaces/x/logs" \
		"POST /api/v1/workspaces/x/exec" "GET /api/v1/me" "GET /api/v1/tokens" \
		"POST /api/v1/tokens" "GET /api/v1/users" "GET /api/v1/audit" \
		"GET /api/v1/admin/settings" "GET /api/v1/git-credentials" "GET /api/v1/secrets" \
		"POST /api/v1/auth/logout"; do
		assert_equal "$(status_of none ${route% *} ${route#* })" 401
	done
	assert_equal "$(status_of none GET /api/v1/health)" 200
}

@test "malformed Authorization headers get 401, never a crash" {
	for h in "Bearer" "Bearer " "Basic YWJjOmRlZg==" "bearer berth_x" "Bearer berth_zzzz_zzzz" \
		"Bearer $(head -c 3000 /dev/zero | tr '\0' a)" "Bearer berth_0123456789abcdef_$(printf '%064d' 0)"; do
		run curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $h" "$BERTH_SERVER/api/v1/me"
		assert_equal "$output" 401
	done
	run curl -sf "$BERTH_SERVER/api/v1/health"
	assert_success
}

@test "authorization matrix: owner yes, another user 404, anonymous 401, on every workspace route" {
	repo=$(make_repo matrix)
	name=$(ws_name)
	as "$ALICE" create "$repo" --name "$name"
	assert_success
	id=$(BERTH_TOKEN=$ALICE ws_field "$name" id)
	routes=("GET /api/v1/workspaces/$id" "GET /api/v1/workspaces/$id/events"
		"GET /api/v1/workspaces/$id/logs" "POST /api/v1/workspaces/$id/exec"
		"POST /api/v1/workspaces/$id/stop" "POST /api/v1/workspaces/$id/start"
		"POST /api/v1/workspaces/$id/rebuild" "DELETE /api/v1/workspaces/$id")
	for route in "${routes[@]}"; do
		body=
		[[ "$route" == *exec ]] && body='{"cmd": ["true"]}'
		assert_equal "$(status_of "$BOB" ${route% *} ${route#* } "$body")" 404
		assert_equal "$(status_of none ${route% *} ${route#* } "$body")" 401
	done
	# by name too
	assert_equal "$(status_of "$BOB" GET "/api/v1/workspaces/$name")" 404
	# bob does not see it in his list; alice does
	API_TOKEN=$BOB run api GET /api/v1/workspaces
	[[ "$output" != *"$id"* ]]
	API_TOKEN=$ALICE run api GET /api/v1/workspaces
	assert_output_contains "$id"
	# and alice can use every route
	for route in "${routes[@]:0:3}"; do
		assert_equal "$(status_of "$ALICE" ${route% *} ${route#* })" 200
	done
	assert_equal "$(status_of "$ALICE" POST "/api/v1/workspaces/$id/exec" '{"cmd": ["true"]}')" 200
	assert_equal "$(status_of "$ALICE" POST "/api/v1/workspaces/$id/stop")" 202
	BERTH_TOKEN=$ALICE wait_state "$id" stopped
	assert_equal "$(status_of "$ALICE" POST "/api/v1/workspaces/$id/start")" 202
	BERTH_TOKEN=$ALICE wait_state "$id" running
	assert_equal "$(status_of "$ALICE" POST "/api/v1/workspaces/$id/rebuild")" 202
	BERTH_TOKEN=$ALICE wait_state "$id" running
	assert_equal "$(status_of "$ALICE" DELETE "/api/v1/workspaces/$id")" 202
}

@test "admins list, stop and delete others' workspaces (audited) but cannot exec into them" {
	repo=$(make_repo adminview)
	name=$(ws_name)
	as "$ALICE" create "$repo" --name "$name"
	assert_success
	id=$(BERTH_TOKEN=$ALICE ws_field "$name" id)
	run api GET /api/v1/workspaces
	[[ "$output" != *"$id"* ]]
	run api GET "/api/v1/workspaces?all=1"
	assert_output_contains "$id"
	assert_equal "$(status_of "$ALICE" GET "/api/v1/workspaces?all=1")" 403
	# exec is refused, and the answer says why rather than "not found"
	assert_equal "$(status_of "$BERTH_TOKEN" POST "/api/v1/workspaces/$id/exec" '{"cmd": ["true"]}')" 403
	run api POST "/api/v1/workspaces/$id/exec" '{"cmd": ["true"]}'
	assert_output_contains "belongs to alice: admins may see, stop and delete"
	assert_equal "$(status_of "$BERTH_TOKEN" POST "/api/v1/workspaces/$id/stop")" 202
	BERTH_TOKEN=$ALICE wait_state "$id" stopped
	assert_equal "$(status_of "$BERTH_TOKEN" DELETE "/api/v1/workspaces/$id")" 202
	run api GET "/api/v1/audit?limit=50"
	echo "$output" | cut -d' ' -f2- | jq -e --arg id "$id" \
		'[.events[] | select(.target == $id and .actor == "admin") | .action] | index("admin.workspace.stop") != null and index("admin.workspace.delete") != null'
}

@test "a path on the server is cloned for admins, for others only from an allowed folder, never from the data dir" {
	# another user's workspace files: never, not even for an admin
	repo=$(make_repo mine)
	mine=mine-$RANDOM
	run_berth create "$repo" --name "$mine"
	assert_success
	id=$(ws_field "$mine" id)
	files=$(find "$BERTH_DATA/workspaces/$id" -maxdepth 2 -name .git -printf '%h\n' | head -1)
	[ -n "$files" ]
	as "$ALICE" create "$files" --name "steal-$RANDOM"
	assert_failure
	assert_output_contains "inside berthd's data directory"
	run_berth create "file://$files" --name "steal-$RANDOM"
	assert_failure
	assert_output_contains "inside berthd's data directory"
	# a repository elsewhere on the server: admins only, unless allowed
	other=$BATS_FILE_TMPDIR/elsewhere/proj
	mkdir -p "$other"
	git -C "$other" init -q -b main
	echo secret >"$other/notes"
	git -C "$other" add -A
	git -C "$other" -c user.name=T -c user.email=t@t commit -qm notes
	as "$ALICE" create "$other" --name "alice-$RANDOM"
	assert_failure
	assert_output_contains "only admins may clone those"
	assert_output_contains "--allow repo:/FOLDER"
	# .. and a symlink do not lead out of an allowed folder
	ln -s "$other" "$BATS_FILE_TMPDIR/repos/link"
	as "$ALICE" create "$BATS_FILE_TMPDIR/repos/link" --name "alice-$RANDOM"
	assert_failure
	as "$ALICE" create "$BATS_FILE_TMPDIR/repos/../elsewhere/proj" --name "alice-$RANDOM"
	assert_failure
	# git decodes %XX in a file:// URL: no %, so what is checked is what git reads
	as "$ALICE" create "file://$BATS_FILE_TMPDIR/repos/%2e%2e/elsewhere/proj" --name "alice-$RANDOM"
	assert_failure
	assert_output_contains "'%' is not allowed"
	# a relative path that looks like user@host:path is a path to git: refused
	as "$ALICE" create "repos/x@y:z" --name "alice-$RANDOM"
	assert_failure
	assert_output_contains "is not an absolute path"
	run_berth admin settings --allow "repo:$BATS_FILE_TMPDIR/elsewhere"
	assert_success
	name=alice-$RANDOM
	as "$ALICE" create "$other" --name "$name"
	assert_success
	as "$ALICE" exec "$name" -- cat notes
	assert_equal "$output" secret
	as "$ALICE" rm "$name"
	# checked again at every clone: a create that failed before its container
	# clones again on start, and by then the folder is no longer allowed
	echo '{"image": "localhost/berth/no-such-image:1"}' >"$other/.devcontainer.json"
	git -C "$other" add -A
	git -C "$other" -c user.name=T -c user.email=t@t commit -qm broken
	name=alice-$RANDOM
	as "$ALICE" create "$other" --name "$name"
	assert_failure
	run_berth admin settings --disallow "repo:$BATS_FILE_TMPDIR/elsewhere"
	assert_success
	as "$ALICE" start "$name"
	assert_failure
	assert_output_contains "only admins may clone those"
	as "$ALICE" rm "$name"
}

@test "a revoked token stops working on the next request" {
	run api POST /api/v1/tokens '{"name": "ci"}'
	assert_output_contains "201 "
	tok=$(echo "${output#* }" | jq -r .token)
	tid=$(echo "${output#* }" | jq -r .id)
	assert_equal "$(status_of "$tok" GET /api/v1/me)" 200
	run api GET /api/v1/tokens
	[[ "$output" != *"$tok"* ]]
	assert_output_contains "$tid"
	assert_equal "$(status_of "$BERTH_TOKEN" DELETE "/api/v1/tokens/$tid")" 204
	assert_equal "$(status_of "$tok" GET /api/v1/me)" 401
}

@test "a disabled user is locked out at once, and enabled again" {
	tok=$(make_user dave)
	assert_equal "$(status_of "$tok" GET /api/v1/me)" 200
	assert_equal "$(status_of "$BERTH_TOKEN" POST /api/v1/users/dave/disable)" 200
	assert_equal "$(status_of "$tok" GET /api/v1/me)" 401
	assert_equal "$(status_of "$BERTH_TOKEN" POST /api/v1/users/dave/enable)" 200
	assert_equal "$(status_of "$tok" GET /api/v1/me)" 200
	# only admins manage users
	assert_equal "$(status_of "$tok" POST /api/v1/users/alice/disable)" 403
	assert_equal "$(status_of "$tok" GET /api/v1/users)" 403
}

@test "browser sessions: HttpOnly cookie, and CSRF protection on state changes" {
	run curl -s -D "$BATS_TEST_TMPDIR/h" -c "$BATS_TEST_TMPDIR/jar" -X POST -H 'Content-Type: application/json' \
		--data-binary "{\"username\": \"admin\", \"password\": \"$BERTH_ADMIN_PASSWORD\"}" "$BERTH_SERVER/api/v1/auth/login"
	csrf=$(echo "$output" | jq -r .csrf_token)
	grep -i 'set-cookie: berth_session=' "$BATS_TEST_TMPDIR/h" | grep -qi httponly
	grep -i 'set-cookie: berth_session=' "$BATS_TEST_TMPDIR/h" | grep -qi samesite
	# reads work with the cookie alone
	run curl -s -o /dev/null -w '%{http_code}' -b "$BATS_TEST_TMPDIR/jar" "$BERTH_SERVER/api/v1/me"
	assert_equal "$output" 200
	# a change without the CSRF header is refused
	run curl -s -o /dev/null -w '%{http_code}' -b "$BATS_TEST_TMPDIR/jar" -X POST \
		-H 'Content-Type: application/json' --data-binary '{"name": "x"}' "$BERTH_SERVER/api/v1/tokens"
	assert_equal "$output" 403
	# ... and from another origin even with it
	run curl -s -o /dev/null -w '%{http_code}' -b "$BATS_TEST_TMPDIR/jar" -X POST -H "X-Berth-CSRF: $csrf" \
		-H 'Origin: http://evil.example' -H 'Content-Type: application/json' --data-binary '{"name": "x"}' "$BERTH_SERVER/api/v1/tokens"
	assert_equal "$output" 403
	run curl -s -o /dev/null -w '%{http_code}' -b "$BATS_TEST_TMPDIR/jar" -X POST -H "X-Berth-CSRF: $csrf" \
		-H 'Content-Type: application/json' --data-binary '{"name": "x"}' "$BERTH_SERVER/api/v1/tokens"
	assert_equal "$output" 201
	# logout ends the session
	run curl -s -o /dev/null -w '%{http_code}' -b "$BATS_TEST_TMPDIR/jar" -X POST -H "X-Berth-CSRF: $csrf" "$BERTH_SERVER/api/v1/auth/logout"
	assert_equal "$output" 204
	run curl -s -o /dev/null -w '%{http_code}' -b "$BATS_TEST_TMPDIR/jar" "$BERTH_SERVER/api/v1/me"
	assert_equal "$output" 401
}

@test "per-user limits give a clear 403 naming the limit" {
	tok=$(make_user erin)
	run api PUT /api/v1/admin/settings '{"max_workspaces_per_user": 2, "max_running_per_user": 1}'
	assert_output_contains "200 "
	repo=$(make_repo limits)
	as "$tok" create "$repo" --name "$(ws_name)"
	assert_success
	as "$tok" create "$repo" --name "$(ws_name)" --no-wait
	assert_failure
	assert_output_contains "running limit reached"
	as "$tok" stop "$(BERTH_TOKEN=$tok "$BERTH" ls --json | jq -r '.[0].name')"
	as "$tok" create "$repo" --name "$(ws_name)"
	assert_success
	as "$tok" create "$repo" --name "$(ws_name)" --no-wait
	assert_failure
	assert_output_contains "workspace limit reached"
	assert_output_contains "berth rm"
	api PUT /api/v1/admin/settings '{"max_workspaces_per_user": 1000, "max_running_per_user": 1000}'
}

@test "secrets reach matching workspaces as env and are masked in logs" {
	tok=$(make_user frank)
	API_TOKEN=$tok run api PUT /api/v1/secrets/API_KEY '{"value": "s3cr3t-value-123", "repo_pattern": "*/withsecret"}'
	assert_output_contains "200 "
	repo=$(make_repo withsecret '{"image": "localhost/berth/base:bookworm", "postCreateCommand": "echo key=$API_KEY"}')
	name=$(ws_name)
	as "$tok" create "$repo" --name "$name"
	assert_success
	assert_output_contains "key=***"
	[[ "$output" != *s3cr3t-value-123* ]]
	as "$tok" exec "$name" -- sh -c 'echo $API_KEY'
	assert_equal "$output" "s3cr3t-value-123"
	other=$(make_repo nosecret)
	name2=$(ws_name)
	as "$tok" create "$other" --name "$name2"
	as "$tok" exec "$name2" -- sh -c 'echo "[$API_KEY]"'
	assert_equal "$output" "[]"
	# never in the database in clear, nor in the listing
	! grep -qa "s3cr3t-value-123" "$BERTH_DATA/berth.db"
	API_TOKEN=$tok run api GET /api/v1/secrets
	[[ "$output" != *s3cr3t* ]]
	assert_output_contains "API_KEY"
}

@test "stored git credentials clone a private repo and never reach the workspace" {
	tok=$(make_user grace)
	repo=$(make_repo private)
	git -C "$repo" update-server-info
	port=$((12000 + RANDOM % 8000))
	bg python3 "$BATS_TEST_DIRNAME/fixtures/authserver.py" $port "$BATS_FILE_TMPDIR/repos" grace:git-pass-456
	for i in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
	url="http://127.0.0.1:$port/private/.git"
	name=$(ws_name)
	as "$tok" create "$url" --name "$name"
	assert_failure
	API_TOKEN=$tok run api POST /api/v1/git-credentials "{\"url\": \"http://127.0.0.1:$port\", \"username\": \"grace\", \"password\": \"git-pass-456\"}"
	assert_output_contains "201 "
	name=$(ws_name)
	as "$tok" create "$url" --name "$name"
	assert_success
	[[ "$output" != *git-pass-456* ]]
	as "$tok" exec "$name" -- sh -c 'cat README.md; env; cat .git/config; ls -a ~'
	assert_output_contains "# private"
	[[ "$output" != *git-pass-456* ]]
	# git inside the workspace gets them on demand from berthd, for that host only
	# (the server is on the host's loopback, so ask git's credential layer
	# directly rather than fetch)
	as "$tok" exec "$name" -- sh -c "printf 'protocol=http\\nhost=127.0.0.1:$port\\n\\n' | git credential fill"
	assert_success
	assert_output_contains "username=grace"
	assert_output_contains "password=git-pass-456"
	as "$tok" exec "$name" -- sh -c 'printf "protocol=https\nhost=elsewhere.example\n\n" | /.berth-agent/berth-agent git-credential get'
	assert_equal "$output" ""
	# the socket is the remote user's alone
	as "$tok" exec "$name" -- sh -c 'stat -c "%a %U" /.berth/ide/credentials.sock; id -un'
	assert_equal "$(sed -n 1p <<<"$output")" "600 $(sed -n 2p <<<"$output")"
	id=$(BERTH_TOKEN=$tok ws_field "$name" id)
	! grep -rqa "git-pass-456" "$BERTH_DATA/workspaces/$id" "$BERTH_DATA/berth.db"
	# another user's clone of the same URL does not get them
	as "$ALICE" create "$url" --name "$(ws_name)"
	assert_failure
}

@test "the audit log records logins, user and token changes, workspace acts by whom" {
	run api GET "/api/v1/audit?limit=1000"
	assert_output_contains "200 "
	body=${output#* }
	for action in login login.failed user.create user.disable token.create token.revoke workspace.create workspace.delete; do
		echo "$body" | jq -e --arg a "$action" '[.events[] | select(.action == $a)] | length > 0' >/dev/null || { echo "no $action"; return 1; }
	done
	echo "$body" | jq -e '[.events[] | select(.action == "workspace.create" and .actor == "alice")] | length > 0'
	assert_equal "$(status_of "$ALICE" GET /api/v1/audit)" 403
}

@test "berth login stores a 0600 token; whoami and logout use it" {
	export XDG_CONFIG_HOME=$BATS_TEST_TMPDIR/config
	pw=pw-henry-$RANDOM$RANDOM
	api POST /api/v1/users "{\"name\": \"henry\", \"password\": \"$pw\"}" >/dev/null
	BERTH_TOKEN= run sh -c "echo '$pw' | '$BERTH' login --username henry --password-stdin"
	assert_success
	assert_output_contains "henry"
	f=$XDG_CONFIG_HOME/berth/config.json
	assert_equal "$(stat -c %a "$f")" 600
	BERTH_TOKEN= run "$BERTH" whoami
	assert_success
	assert_output_contains "henry"
	BERTH_TOKEN= run "$BERTH" logout
	assert_success
	BERTH_TOKEN= run "$BERTH" whoami
	assert_failure
	assert_output_contains "berth login"
}

@test "the CLI manages users, tokens, secrets and git credentials against the real server" {
	pw=$("$BERTH" admin create-user ivan --json 2>/dev/null | jq -r .password)
	[ ${#pw} -ge 16 ]
	run "$BERTH" admin ls-users --json
	assert_success
	echo "$output" | jq -e 'map(select(.name == "ivan")) | length == 1'
	tok=$(login_token ivan "$pw")
	ci=$(BERTH_TOKEN=$tok "$BERTH" token create ci-token 2>/dev/null)
	[[ "$ci" == berth_* ]]
	BERTH_TOKEN=$ci run "$BERTH" whoami
	assert_output_contains "ivan"
	tid=$(BERTH_TOKEN=$tok "$BERTH" token ls --json 2>/dev/null | jq -r 'map(select(.name == "ci-token"))[0].id')
	BERTH_TOKEN=$tok run "$BERTH" token revoke "$tid"
	assert_success
	BERTH_TOKEN=$ci run "$BERTH" whoami
	assert_failure
	BERTH_TOKEN=$tok run sh -c "printf 'v4lue-xyz\n' | '$BERTH' secret set MY_SECRET --repo 'team/*' --value-stdin"
	assert_success
	BERTH_TOKEN=$tok run "$BERTH" secret ls --json
	assert_output_contains "MY_SECRET"
	[[ "$output" != *v4lue-xyz* ]]
	BERTH_TOKEN=$tok run sh -c "printf 'pass-123\n' | '$BERTH' git-credentials add https://git.example.com --username ivan --password-stdin"
	assert_success
	BERTH_TOKEN=$tok run "$BERTH" git-credentials ls --json
	assert_output_contains "https://git.example.com"
	[[ "$output" != *pass-123* ]]
	run "$BERTH" admin disable-user ivan
	assert_success
	BERTH_TOKEN=$tok run "$BERTH" whoami
	assert_failure
	assert_output_contains "disabled"
	"$BERTH" admin audit --json --limit 200 2>/dev/null | jq -e 'map(select(.action == "user.disable" and .target == "ivan")) | length == 1'
}
