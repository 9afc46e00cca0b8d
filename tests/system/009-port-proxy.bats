#!/usr/bin/env bats
# The port proxy: keep-alive, streamed bodies, WebSockets, subdomain routing,
# the subdomain cookie exchange, and who may enter by either URL form.

load helpers

setup_file() {
	start_berthd
	load_berthd_env
	for u in alice bob; do
		pw="pw-$u-$RANDOM$RANDOM"
		curl -sf -X POST -H "Authorization: Bearer $BERTH_TOKEN" -H 'Content-Type: application/json' \
			--data-binary "$(jq -cn --arg u "$u" --arg p "$pw" '{name: $u, password: $p}')" \
			"$BERTH_SERVER/api/v1/users" >/dev/null
		echo "$pw" >"$BATS_FILE_TMPDIR/$u.password"
		login_token "$u" "$pw" >"$BATS_FILE_TMPDIR/$u.token"
	done
	repo=$(make_repo proxied)
	cp "$BATS_TEST_DIRNAME/fixtures/proxy-echo.pl" "$repo/"
	git -C "$repo" add -A
	git -C "$repo" -c user.name=T -c user.email=t@t commit -qm server
	BERTH_TOKEN=$(cat "$BATS_FILE_TMPDIR/alice.token") "$BERTH" create "$repo" --name proxied >/dev/null
}

teardown_file() {
	stop_berthd
}

setup() {
	load_berthd_env
	ALICE=$(cat "$BATS_FILE_TMPDIR/alice.token")
	BOB=$(cat "$BATS_FILE_TMPDIR/bob.token")
	BPORT=${BERTH_SERVER##*:}
	# every host name (a port's subdomain, localhost) reaches this berthd
	TO=(--connect-to "::127.0.0.1:$BPORT")
}

serve() { # serve PORT: starts the test server in the workspace, on 127.0.0.1 only
	BERTH_TOKEN=$ALICE "$BERTH" exec proxied -- sh -c "setsid perl proxy-echo.pl $1 127.0.0.1 </dev/null >/dev/null 2>&1 &"
	local i out
	for i in $(seq 1 100); do
		out=$(curl -s -H "Authorization: Bearer $ALICE" "$BERTH_SERVER/api/v1/workspaces/proxied/ports")
		jq -e --argjson p "$1" '.ports | map(select(.port == $p)) | length == 1' <<<"$out" >/dev/null && return 0
		sleep 0.2
	done
	echo "port $1 not detected: $out" >&2
	return 1
}

visibility() { # visibility PORT private|org|public
	curl -sf -X POST -H "Authorization: Bearer $ALICE" --data "{\"visibility\": \"$2\"}" \
		"$BERTH_SERVER/api/v1/workspaces/proxied/ports/$1/visibility" >/dev/null
}

sub() { # sub PORT [PATH]: the port's subdomain URL
	echo "http://$1-proxied.localhost:$BPORT${2:-/}"
}

# login_jar USER JAR: a browser session cookie for the main origin (localhost)
login_jar() {
	curl -sf "${TO[@]}" -c "$2" -X POST -H 'Content-Type: application/json' \
		--data-binary "$(jq -cn --arg u "$1" --arg p "$(cat "$BATS_FILE_TMPDIR/$1.password")" '{username: $u, password: $p}')" \
		"http://localhost:$BPORT/api/v1/auth/login" >/dev/null
}

# ka_open: a client connection to berthd on fd $KA (not 3: bats's), for
# requests sent one by one
ka_open() {
	[ -z "${KA:-}" ] || exec {KA}>&-
	exec {KA}<>"/dev/tcp/127.0.0.1/$BPORT"
}

# ka_get PATH TOKEN: a GET on the ka_open connection; prints "STATUS BODY"
ka_get() {
	printf 'GET %s HTTP/1.1\r\nHost: localhost:%s\r\nAuthorization: Bearer %s\r\nAccept: application/json\r\n\r\n' \
		"$1" "$BPORT" "$2" >&"$KA"
	local line status len=0 body=
	read -r -t 10 line <&"$KA" || return 1
	status=$(cut -d' ' -f2 <<<"$line")
	while read -r -t 10 line <&"$KA"; do
		line=${line%$'\r'}
		[ -z "$line" ] && break
		case ${line,,} in content-length:*) len=${line#*: } ;; esac
	done
	if [ "$len" -gt 0 ]; then read -r -t 10 -N "$len" body <&"$KA" || return 1; fi
	echo "$status $body"
}

@test "several requests share one client connection and one upstream connection" {
	serve 8201
	url="$BERTH_SERVER/w/proxied/ports/8201"
	run curl -sv -H "Authorization: Bearer $ALICE" "$url/conn" "$url/conn" "$url/other"
	assert_success
	assert_output_contains "Re-using existing connection"
	conns=$(grep '^conn ' <<<"$output" | sort -u | wc -l)
	assert_equal "$(grep -c '^conn ' <<<"$output")" 2
	assert_equal "$conns" 1
	assert_output_contains "hello from port 8201 at /other"
}

@test "chunked and large bodies stream both ways on a kept-alive connection" {
	serve 8202
	url="$BERTH_SERVER/w/proxied/ports/8202"
	head -c 8388608 /dev/urandom >"$BATS_TEST_TMPDIR/up"
	sum=$(sha1sum <"$BATS_TEST_TMPDIR/up" | cut -d' ' -f1)
	# chunked upload (8 MiB), then a download on the same connection
	run curl -sv -H "Authorization: Bearer $ALICE" -H 'Transfer-Encoding: chunked' \
		--data-binary @"$BATS_TEST_TMPDIR/up" -o "$BATS_TEST_TMPDIR/1" "$url/sum" \
		--next -H "Authorization: Bearer $ALICE" -o "$BATS_TEST_TMPDIR/2" "$url/chunked/500"
	assert_success
	assert_output_contains "Re-using existing connection"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/1")" "bytes 8388608 sha1 $sum"
	assert_equal "$(grep -c '^chunk [0-9]*$' "$BATS_TEST_TMPDIR/2")" 500
	assert_equal "$(tail -1 "$BATS_TEST_TMPDIR/2")" "chunk 500"
	# a body with a length, well past the server's 1 MiB limit for its own routes
	head -c 67108864 /dev/urandom >"$BATS_TEST_TMPDIR/big"
	sum=$(sha1sum <"$BATS_TEST_TMPDIR/big" | cut -d' ' -f1)
	run curl -s -H "Authorization: Bearer $ALICE" -H 'Expect:' --data-binary @"$BATS_TEST_TMPDIR/big" "$url/sum"
	assert_equal "$output" "bytes 67108864 sha1 $sum"
}

@test "an answer the app ends by closing reaches the client whole, and the connection stays" {
	serve 8203
	url="$BERTH_SERVER/w/proxied/ports/8203"
	run curl -sv -H "Authorization: Bearer $ALICE" -o "$BATS_TEST_TMPDIR/1" "$url/close" -o "$BATS_TEST_TMPDIR/2" "$url/after"
	assert_success
	assert_output_contains "Re-using existing connection"
	assert_equal "$(grep -c '^until the end$' "$BATS_TEST_TMPDIR/1")" 1000
	assert_equal "$(wc -c <"$BATS_TEST_TMPDIR/1")" 14000
	assert_equal "$(cat "$BATS_TEST_TMPDIR/2")" "hello from port 8203 at /after"
}

@test "HEAD, 204 and an empty POST leave the connection usable" {
	serve 8213
	url="$BERTH_SERVER/w/proxied/ports/8213"
	run curl -sv -H "Authorization: Bearer $ALICE" -I "$url/a" --next -H "Authorization: Bearer $ALICE" "$url/empty" \
		--next -H "Authorization: Bearer $ALICE" -X POST "$url/sum" --next -H "Authorization: Bearer $ALICE" "$url/last"
	assert_success
	assert_equal "$(grep -c 'Re-using existing connection' <<<"$output")" 3
	assert_output_contains "Content-Length: 27" # "hello from port 8213 at /a\n", not sent
	assert_output_contains "HTTP/1.1 204"
	assert_output_contains "bytes 0 sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709"
	assert_output_contains "hello from port 8213 at /last"
}

@test "a request on an app connection that closes just then is sent again on a new one" {
	serve 8214
	url="$BERTH_SERVER/w/proxied/ports/8214"
	run curl -sv -H "Authorization: Bearer $ALICE" "$url/drop-next" "$url/after"
	assert_success
	assert_output_contains "Re-using existing connection"
	assert_output_contains "dropping"
	assert_output_contains "hello from port 8214 at /after"
	[[ "$output" != *" 502 "* ]]
}

@test "a WebSocket echoes through both URL forms" {
	serve 8204
	run timeout 30 node "$BATS_TEST_DIRNAME/ws-raw.mjs" "$BPORT" "127.0.0.1:$BPORT" /w/proxied/ports/8204/ws "$ALICE"
	assert_success
	assert_output_contains "HTTP/1.1 101"
	assert_output_contains "text ping over the proxy"
	assert_output_contains "binary 300000"
	assert_output_contains " same"
	run timeout 30 node "$BATS_TEST_DIRNAME/ws-raw.mjs" "$BPORT" "8204-proxied.localhost:$BPORT" /ws "$ALICE"
	assert_success
	assert_output_contains "text ping over the proxy"
	assert_output_contains " same"
	# no credentials: no upgrade
	run timeout 30 node "$BATS_TEST_DIRNAME/ws-raw.mjs" "$BPORT" "8204-proxied.localhost:$BPORT" /ws
	assert_output_contains "HTTP/1.1 401"
}

@test "a server bound to 127.0.0.1 is reached at its subdomain, by workspace name or id" {
	serve 8205
	run curl -s "${TO[@]}" -H "Authorization: Bearer $ALICE" "$(sub 8205 '/some/path?q=1')"
	assert_equal "$output" "hello from port 8205 at /some/path?q=1"
	id=$(BERTH_TOKEN=$ALICE ws_field proxied id)
	run curl -s "${TO[@]}" -H "Authorization: Bearer $ALICE" "http://8205-$id.localhost:$BPORT/by-id"
	assert_equal "$output" "hello from port 8205 at /by-id"
	# keep-alive on the subdomain too
	run curl -sv "${TO[@]}" -H "Authorization: Bearer $ALICE" "$(sub 8205 /conn)" "$(sub 8205 /conn)"
	assert_output_contains "Re-using existing connection"
	assert_equal "$(grep '^conn ' <<<"$output" | sort -u | wc -l)" 1
	# any other host is Berth itself
	run curl -s "${TO[@]}" "http://localhost:$BPORT/api/v1/health"
	assert_output_contains '"status":"ok"'
	run curl -s "${TO[@]}" -H "Authorization: Bearer $ALICE" "http://8205-proxied.example.test:$BPORT/"
	[[ "$output" != *"hello from port"* ]]
}

@test "a browser gets a cookie for the subdomain through the main origin" {
	serve 8206
	jar=$BATS_TEST_TMPDIR/jar
	login_jar alice "$jar"
	run curl -s -L "${TO[@]}" -b "$jar" -c "$jar" -H 'Accept: text/html' "$(sub 8206 '/page?x=1')"
	assert_equal "$output" "hello from port 8206 at /page?x=1"
	grep -q "8206-proxied.localhost.*berth_port" "$jar"
	# host-only and HttpOnly: no domain-wide flag, the #HttpOnly_ prefix
	grep "berth_port" "$jar" | grep -q '^#HttpOnly_8206-proxied.localhost	FALSE'
	# from now on the cookie alone lets the browser in, without the round trip
	run curl -s -o /dev/null -w '%{http_code}' "${TO[@]}" -b "$jar" -H 'Accept: text/html' "$(sub 8206 /again)"
	assert_equal "$output" 200
	# the cookie is for this port only
	serve 8216
	run curl -s -o /dev/null -w '%{http_code}' "${TO[@]}" -b "$(grep berth_port "$jar" | awk '{print $6"="$7}')" \
		-H 'Accept: application/json' "$(sub 8216 /)"
	assert_equal "$output" 401
}

@test "the exchange's code works once, and next= stays on the port's host" {
	serve 8207
	jar=$BATS_TEST_TMPDIR/jar
	login_jar alice "$jar"
	loc=$(curl -s -o /dev/null -w '%{redirect_url}' "${TO[@]}" -b "$jar" \
		"http://localhost:$BPORT/api/v1/port-auth?ws=proxied&port=8207&next=//evil.example/x")
	[[ "$loc" == "http://8207-proxied.localhost:$BPORT/.berth/auth?code="* ]]
	[[ "$loc" == *"next=/" || "$loc" == *"next=%2F" ]]
	run curl -s -D "$BATS_TEST_TMPDIR/h" -o /dev/null -w '%{http_code}' "${TO[@]}" "$loc"
	assert_equal "$output" 302
	grep -i '^location: /' "$BATS_TEST_TMPDIR/h"
	! grep -i '^location: //' "$BATS_TEST_TMPDIR/h"
	grep -i '^set-cookie: berth_port=.*HttpOnly; SameSite=Lax' "$BATS_TEST_TMPDIR/h"
	run curl -s -o /dev/null -w '%{http_code}' "${TO[@]}" "$loc"
	assert_equal "$output" 403
	# a code for one port does not open another
	loc=$(curl -s -o /dev/null -w '%{redirect_url}' "${TO[@]}" -b "$jar" \
		"http://localhost:$BPORT/api/v1/port-auth?ws=proxied&port=8207&next=/")
	run curl -s -o /dev/null -w '%{http_code}' "${TO[@]}" "${loc/8207-proxied/8208-proxied}"
	assert_equal "$output" 403
	# no session on the main origin: off to the login page, coming back after
	run curl -s -o /dev/null -w '%{redirect_url}' "${TO[@]}" \
		"http://localhost:$BPORT/api/v1/port-auth?ws=proxied&port=8207&next=/"
	[[ "$output" == "http://localhost:$BPORT/login.html?next=%2Fapi%2Fv1%2Fport-auth"* ]]
}

@test "logging out of Berth ends the subdomain cookie" {
	serve 8209
	jar=$BATS_TEST_TMPDIR/jar
	login_jar alice "$jar"
	run curl -s -L "${TO[@]}" -b "$jar" -c "$jar" "$(sub 8209 /in)"
	assert_equal "$output" "hello from port 8209 at /in"
	csrf=$(awk '$6 == "berth_csrf" {print $7}' "$jar")
	curl -sf "${TO[@]}" -b "$jar" -X POST -H "X-Berth-CSRF: $csrf" "http://localhost:$BPORT/api/v1/auth/logout"
	run curl -s -o /dev/null -w '%{http_code}' "${TO[@]}" -b "$jar" -H 'Accept: application/json' "$(sub 8209 /in)"
	assert_equal "$output" 401
}

# check FORM PORT WHO WANT: one cell of the matrix. FORM path|sub; WHO alice,
# bob (tokens), anon-browser, anon-api, bob-browser (bob's cookie exchange).
check() {
	local form=$1 port=$2 who=$3 want=$4 url args=()
	# the main origin is localhost, where the browsers' session cookies are
	if [ "$form" = path ]; then url="http://localhost:$BPORT/w/proxied/ports/$port/who"; else url=$(sub "$port" /who); fi
	case $who in
	alice) args=(-H "Authorization: Bearer $ALICE") ;;
	bob) args=(-H "Authorization: Bearer $BOB") ;;
	anon-browser) args=(-H 'Accept: text/html') ;;
	anon-api) args=(-H 'Accept: application/json') ;;
	bob-browser) args=(-L -b "$BATS_FILE_TMPDIR/bob.jar" -c "$BATS_FILE_TMPDIR/bob.jar" -H 'Accept: text/html') ;;
	esac
	run curl -s "${TO[@]}" -o "$BATS_TEST_TMPDIR/body" -D "$BATS_TEST_TMPDIR/head" -w '%{http_code}' "${args[@]}" "$url"
	echo "$form $port $who: $output (want $want)"
	assert_equal "$output" "$want"
	if [ "$want" != 200 ]; then
		! grep -q "hello from port" "$BATS_TEST_TMPDIR/body"
	else
		grep -q "hello from port $port at /who" "$BATS_TEST_TMPDIR/body"
	fi
}

@test "private, org and public are enforced the same way in both URL forms" {
	serve 8210
	login_jar bob "$BATS_FILE_TMPDIR/bob.jar"
	for form in path sub; do
		visibility 8210 private
		check $form 8210 alice 200
		check $form 8210 bob 404
		check $form 8210 bob-browser 404
		check $form 8210 anon-browser 302
		check $form 8210 anon-api 401
		visibility 8210 org
		check $form 8210 alice 200
		check $form 8210 bob 200
		check $form 8210 bob-browser 200
		check $form 8210 anon-browser 302
		check $form 8210 anon-api 401
		visibility 8210 public
		check $form 8210 alice 200
		check $form 8210 bob 200
		check $form 8210 anon-browser 200
		check $form 8210 anon-api 200
	done
	# the browser's redirects: the login page, or the main origin's exchange
	visibility 8210 private
	run curl -s -o /dev/null -w '%{redirect_url}' "${TO[@]}" "http://localhost:$BPORT/w/proxied/ports/8210/a?b=1"
	assert_equal "$output" "http://localhost:$BPORT/login.html?next=%2Fw%2Fproxied%2Fports%2F8210%2Fa%3Fb%3D1"
	run curl -s -o /dev/null -w '%{redirect_url}' "${TO[@]}" "$(sub 8210 '/a?b=1')"
	assert_equal "$output" "http://localhost:$BPORT/api/v1/port-auth?ws=proxied&port=8210&next=%2Fa%3Fb%3D1"
	# an unknown workspace looks the same as someone else's private port
	run curl -s -o /dev/null -w '%{http_code}' "${TO[@]}" -H "Authorization: Bearer $BOB" "http://8210-nosuchws.localhost:$BPORT/"
	assert_equal "$output" 404
	run curl -s -o /dev/null -w '%{http_code}' "${TO[@]}" -H 'Accept: application/json' "http://8210-nosuchws.localhost:$BPORT/"
	assert_equal "$output" 401
}

@test "no Berth cookie or token reaches the app, on any request of a connection, in either form" {
	serve 8211
	jar=$BATS_TEST_TMPDIR/jar
	login_jar alice "$jar"
	curl -s -L "${TO[@]}" -b "$jar" -c "$jar" -o /dev/null "$(sub 8211 /)"
	pass=$(awk '$6 == "berth_port" {print $7}' "$jar")
	[ -n "$pass" ]
	cookies="berth_session=secret-session; app_pref=dark; berth_csrf=secret-csrf; berth_port=$pass"
	# and as they are named over HTTPS
	cookies="$cookies; __Host-berth_session=secret-session-tls; __Host-berth_port=$pass"
	url="$BERTH_SERVER/w/proxied/ports/8211"
	run curl -sv -D "$BATS_TEST_TMPDIR/h1" -H "Authorization: Bearer $ALICE" -H "Cookie: $cookies" \
		"$url/echo-headers" "$url/echo-headers" "$url/echo-headers"
	assert_output_contains "Re-using existing connection"
	assert_equal "$(grep -c 'app_pref=dark' <<<"$output")" 6 # 3 in curl's trace, 3 echoed
	body=$(grep -v '^[<>*{}]' <<<"$output")
	[[ "$body" != *secret-session* && "$body" != *secret-csrf* && "$body" != *"$pass"* && "$body" != *"$ALICE"* ]]
	[[ "${body,,}" != *authorization* ]]
	assert_equal "$(grep -ci '^content-security-policy: sandbox' "$BATS_TEST_TMPDIR/h1")" 3
	! grep -i '^content-security-policy:.*allow-same-origin' "$BATS_TEST_TMPDIR/h1"
	# the subdomain, by cookie
	run curl -sv "${TO[@]}" -D "$BATS_TEST_TMPDIR/h2" -H "Cookie: $cookies" \
		"$(sub 8211 /echo-headers)" "$(sub 8211 /echo-headers)"
	assert_output_contains "Re-using existing connection"
	body=$(grep -v '^[<>*{}]' <<<"$output")
	assert_equal "$(grep -c 'app_pref=dark' <<<"$body")" 2
	[[ "$body" != *secret-session* && "$body" != *secret-csrf* && "$body" != *"$pass"* ]]
	assert_equal "$(grep -ci '^content-security-policy: sandbox' "$BATS_TEST_TMPDIR/h2")" 2
	# the app learns the client and the scheme from Berth, never from the client
	run curl -s -H "Authorization: Bearer $ALICE" -H 'X-Forwarded-For: 192.0.2.66' \
		-H 'X-Forwarded-Proto: https' "$url/echo-headers"
	[[ $output != *192.0.2.66* ]]
	assert_output_contains "127.0.0.1"
	grep -qi '^x-forwarded-proto: http$' <<<"${output//$'\r'/}"
}

@test "the app cannot set Berth's cookies" {
	serve 8212
	run curl -s -D - -o /dev/null -H "Authorization: Bearer $ALICE" "$BERTH_SERVER/w/proxied/ports/8212/set-cookie"
	assert_success
	grep -qi '^set-cookie: app=1' <<<"$output"
	! grep -qi '^set-cookie: berth_' <<<"$output"
}

@test "a revoked token or a disabled user is refused on the next request of an open connection" {
	serve 8217
	visibility 8217 org
	out=$(curl -sf -X POST -H "Authorization: Bearer $ALICE" -H 'Content-Type: application/json' \
		--data '{"name": "proxy"}' "$BERTH_SERVER/api/v1/tokens")
	tok=$(jq -r .token <<<"$out")
	tid=$(jq -r .id <<<"$out")
	ka_open
	run ka_get /w/proxied/ports/8217/a "$tok"
	assert_equal "$output" "200 hello from port 8217 at /a"
	curl -sf -X DELETE -H "Authorization: Bearer $ALICE" "$BERTH_SERVER/api/v1/tokens/$tid"
	run ka_get /w/proxied/ports/8217/b "$tok"
	assert_output_contains "401 "
	[[ "$output" != *"hello from port"* ]]

	pw="pw-carol-$RANDOM$RANDOM"
	curl -sf -X POST -H "Authorization: Bearer $BERTH_TOKEN" -H 'Content-Type: application/json' \
		--data-binary "$(jq -cn --arg p "$pw" '{name: "carol", password: $p}')" \
		"$BERTH_SERVER/api/v1/users" >/dev/null
	carol=$(login_token carol "$pw")
	ka_open
	run ka_get /w/proxied/ports/8217/c "$carol"
	assert_equal "$output" "200 hello from port 8217 at /c"
	curl -sf -X POST -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/users/carol/disable" >/dev/null
	run ka_get /w/proxied/ports/8217/d "$carol"
	assert_output_contains "401 "
	[[ "$output" != *"hello from port"* ]]
	curl -sf -X POST -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/users/carol/enable" >/dev/null
	run ka_get /w/proxied/ports/8217/e "$carol"
	assert_equal "$output" "200 hello from port 8217 at /e"
}

@test "a port made private refuses another user's next request on an open connection" {
	serve 8218
	visibility 8218 org
	ka_open
	run ka_get /w/proxied/ports/8218/a "$BOB"
	assert_equal "$output" "200 hello from port 8218 at /a"
	visibility 8218 private
	run ka_get /w/proxied/ports/8218/b "$BOB"
	assert_output_contains "404 "
	[[ "$output" != *"hello from port"* ]]
	# the owner still gets in, and bob again once it is shared
	ka_open
	run ka_get /w/proxied/ports/8218/c "$ALICE"
	assert_equal "$output" "200 hello from port 8218 at /c"
	visibility 8218 org
	run ka_get /w/proxied/ports/8218/d "$BOB"
	assert_equal "$output" "200 hello from port 8218 at /d"
}
