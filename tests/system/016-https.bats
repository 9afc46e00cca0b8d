#!/usr/bin/env bats
# berthd over HTTPS (--tls-cert, --tls-key) with a test CA: the API, the CLI
# (which trusts the CA named by $BERTH_CACERT), a terminal over wss://, the
# port subdomains under a wildcard name, a new certificate on SIGHUP, the
# redirecting listener; the CLI's own WebSocket client over https:// (berth
# shell, port-forward, ssh-proxy); and behind a TLS-terminating proxy
# (--behind-proxy).

load helpers

# make_cert NAME: a key and a certificate signed by the test CA, for the
# loopback and berth.localhost with its port subdomains.
make_cert() {
	local d=$BATS_FILE_TMPDIR
	openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
		-keyout "$d/$1.key" -out "$d/$1.csr" 2>/dev/null || return 1
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:berth.localhost,DNS:*.berth.localhost\n' \
		>"$d/san.ext"
	openssl x509 -req -in "$d/$1.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
		-CAcreateserial -days 2 -extfile "$d/san.ext" -out "$d/$1.pem" 2>/dev/null
}

# The SHA-256 fingerprint of the certificate a new connection gets.
served_fingerprint() {
	openssl s_client -connect "${BERTH_SERVER#https://}" -CAfile "$BATS_FILE_TMPDIR/ca.pem" \
		</dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256
}

# A loopback port nobody listens on now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

setup_file() {
	local d=$BATS_FILE_TMPDIR
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=berth-test-ca \
		-keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
	make_cert first
	cp "$d/first.pem" "$d/cert.pem"
	cp "$d/first.key" "$d/key.pem"
	export CURL_CA_BUNDLE=$d/ca.pem BERTH_CACERT=$d/ca.pem NODE_EXTRA_CA_CERTS=$d/ca.pem
	free_port >"$d/redirect.port"
	start_berthd --tls-cert "$d/cert.pem" --tls-key "$d/key.pem" --base-domain berth.localhost \
		--http-redirect "127.0.0.1:$(cat "$d/redirect.port")" --ssh-listen "127.0.0.1:$(free_port)"
	load_berthd_env
	repo=$(make_repo tls)
	cp "$BATS_TEST_DIRNAME/fixtures/proxy-echo.pl" "$repo/"
	git -C "$repo" add -A
	git -C "$repo" -c user.name=T -c user.email=t@t commit -qm server
	"$BERTH" create "$repo" --name tls-ws >/dev/null
}

teardown_file() {
	kill_bg
	stop_berthd
}

setup() {
	load_berthd_env
}

@test "berthd serves https:// with a certificate curl verifies, and every answer says HSTS" {
	[[ $BERTH_SERVER == https://* ]]
	run curl -sS -D - -o /dev/null "$BERTH_SERVER/api/v1/health"
	assert_success
	assert_output_contains "200 OK"
	assert_output_contains "Strict-Transport-Security: max-age=31536000"
	run curl -sS -D - -o /dev/null "$BERTH_SERVER/"
	assert_output_contains "Strict-Transport-Security: max-age=31536000"
}

@test "berth refuses an https server whose certificate it cannot verify" {
	unset BERTH_CACERT
	run_berth ls
	assert_failure
	assert_output_contains "certificate"
}

@test "berth trusts an https server signed by the CA in BERTH_CACERT" {
	run_berth ls
	assert_success
	assert_output_contains "tls-ws"
}

@test "a missing BERTH_CACERT file is a clear error, not a fallback to no verification" {
	BERTH_CACERT=$BATS_FILE_TMPDIR/nonexistent.pem run_berth ls
	assert_failure
	assert_output_contains "nonexistent.pem"
}

# login_cookies: logs the admin in as a browser does; the answer's headers
# go to $BATS_TEST_TMPDIR/login.headers, the cookies to .../jar.
login_cookies() {
	curl -sS -D "$BATS_TEST_TMPDIR/login.headers" -c "$BATS_TEST_TMPDIR/jar" -o /dev/null \
		-X POST -H 'Content-Type: application/json' \
		--data-binary "$(jq -cn --arg p "$BERTH_ADMIN_PASSWORD" '{username: "admin", password: $p, mode: "cookie"}')" \
		"$BERTH_SERVER/api/v1/auth/login"
}

# The value of cookie $1 in the jar.
jar_cookie() {
	awk -v n="$1" '$6 == n {print $7}' "$BATS_TEST_TMPDIR/jar"
}

@test "a browser login over https gets Secure __Host- cookies that then work" {
	login_cookies
	run grep -i '^set-cookie:' "$BATS_TEST_TMPDIR/login.headers"
	assert_output_contains "Set-Cookie: __Host-berth_session="
	assert_output_contains "Set-Cookie: __Host-berth_csrf="
	[ "$(grep -ci '^set-cookie:.*; Secure' "$BATS_TEST_TMPDIR/login.headers")" = 2 ]
	! grep -qi 'Domain=' "$BATS_TEST_TMPDIR/login.headers"
	session=$(jar_cookie __Host-berth_session)
	csrf=$(jar_cookie __Host-berth_csrf)
	[ -n "$session" ] && [ -n "$csrf" ]
	run curl -s -o /dev/null -w '%{http_code}' -b "$BATS_TEST_TMPDIR/jar" "$BERTH_SERVER/api/v1/me"
	assert_equal "$output" 200
	# without the prefix the same session is not taken over https
	run curl -s -o /dev/null -w '%{http_code}' -H "Cookie: berth_session=$session" "$BERTH_SERVER/api/v1/me"
	assert_equal "$output" 401
	# a change with the CSRF header: logging out clears both cookies
	run curl -sS -D - -o /dev/null -X POST -b "$BATS_TEST_TMPDIR/jar" -H "X-Berth-CSRF: $csrf" \
		"$BERTH_SERVER/api/v1/auth/logout"
	assert_output_contains "204"
	assert_output_contains "Set-Cookie: __Host-berth_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure"
}

@test "a terminal over wss:// takes the __Host- session cookie from Berth's own origin" {
	login_cookies
	session=$(jar_cookie __Host-berth_session)
	ORIGIN=$BERTH_SERVER run timeout 90 node --experimental-websocket --no-warnings \
		"$BATS_TEST_DIRNAME/ws-client.mjs" \
		"${BERTH_SERVER/https:/wss:}/api/v1/workspaces/tls-ws/terminal?cols=80&rows=24" \
		"cookie:__Host-berth_session=$session" $'echo cookie-$((6*7))\n' $'exit\n'
	assert_success
	assert_output_contains "cookie-42"
}

@test "a workspace made over https runs berth exec" {
	run_berth exec tls-ws -- sh -c 'echo "over-tls $(pwd)"'
	assert_success
	assert_equal "$output" "over-tls /workspaces/tls"
}

@test "berth shell over https relays a session without a terminal and gives its exit status" {
	run timeout 120 "$BERTH" shell tls-ws <<<'echo "shell-over-tls $((40+2))"; exit 3'
	assert_equal "$status" 3
	assert_output_contains "shell-over-tls 42"
}

@test "berth shell over https carries a large output whole" {
	# Z (octal 132) is not in the command, which the terminal echoes
	run timeout 120 "$BERTH" shell tls-ws <<<'head -c 3000000 /dev/zero | tr "\0" "\132"; echo; exit 0'
	assert_success
	assert_equal "$(tr -cd Z <<<"$output" | wc -c)" 3000000
}

# other_ca: a CA berthd's certificate does not come from; prints its file.
other_ca() {
	local d=$BATS_FILE_TMPDIR
	[ -f "$d/other-ca.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
		-subj /CN=berth-other-ca -keyout "$d/other-ca.key" -out "$d/other-ca.pem" 2>/dev/null
	echo "$d/other-ca.pem"
}

@test "berth shell refuses an https server whose certificate another CA signed, and says so" {
	BERTH_CACERT=$(other_ca) run timeout 60 "$BERTH" shell tls-ws <<<'echo not-run'
	assert_failure
	assert_output_contains "certificate verify failed"
	assert_output_contains "$BERTH_SERVER"
	[[ $output != *not-run* ]]
}

@test "berth shell checks that the certificate names the host it was asked for" {
	local d=$BATS_FILE_TMPDIR
	# a certificate from the test CA for another name only, served by openssl
	openssl req -newkey rsa:2048 -nodes -subj /CN=other.example \
		-keyout "$d/other.key" -out "$d/other.csr" 2>/dev/null
	printf 'subjectAltName=DNS:other.example\n' >"$d/other.ext"
	openssl x509 -req -in "$d/other.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
		-CAcreateserial -days 2 -extfile "$d/other.ext" -out "$d/other.pem" 2>/dev/null
	bg_on_free_port 'bash -c "echo >/dev/tcp/127.0.0.1/{port}"' \
		openssl s_server -quiet -accept '127.0.0.1:{port}' -cert "$d/other.pem" -key "$d/other.key"
	run timeout 60 "$BERTH" shell --server "https://127.0.0.1:$PORT" tls-ws <<<'echo not-run'
	kill_bg
	assert_failure
	assert_output_contains "certificate verify failed: IP address mismatch"
	assert_output_contains "https://127.0.0.1:$PORT"
	# berthd's certificate names localhost: by that name (sent as SNI) it works
	run timeout 120 "$BERTH" shell --server "https://localhost:${BERTH_SERVER##*:}" tls-ws \
		<<<'echo by-name; exit 0'
	assert_success
	assert_output_contains "by-name"
}

@test "berth shell names a BERTH_CACERT file that does not load" {
	BERTH_CACERT=$BATS_FILE_TMPDIR/nonexistent.pem run timeout 60 "$BERTH" shell tls-ws </dev/null
	assert_failure
	assert_output_contains "nonexistent.pem"
}

@test "berth port-forward relays a local port over https, uploads and downloads included" {
	"$BERTH" exec tls-ws -- sh -c "setsid perl proxy-echo.pl 8205 127.0.0.1 </dev/null >/dev/null 2>&1 &"
	for i in $(seq 1 100); do
		curl -sf -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/w/tls-ws/ports/8205/" >/dev/null && break
		sleep 0.2
	done
	bg_on_free_port 'curl -sf -o /dev/null http://127.0.0.1:{port}/' "$BERTH" port-forward tls-ws '{port}:8205'
	run curl -sS "http://127.0.0.1:$PORT/forwarded"
	assert_equal "$output" "hello from port 8205 at /forwarded"
	head -c 8000000 /dev/urandom >"$BATS_TEST_TMPDIR/up"
	run timeout 60 curl -sS --data-binary "@$BATS_TEST_TMPDIR/up" "http://127.0.0.1:$PORT/sum"
	assert_equal "$output" "bytes 8000000 sha1 $(sha1sum <"$BATS_TEST_TMPDIR/up" | cut -d' ' -f1)"
	run timeout 60 curl -sS -o /dev/null -w '%{size_download}' "http://127.0.0.1:$PORT/big/32"
	assert_equal "$output" $((32 * 1024 * 1024))
	# several connections at once, each its own tunnel
	local pids=()
	for i in 1 2 3 4; do
		curl -sS -o "$BATS_TEST_TMPDIR/big.$i" "http://127.0.0.1:$PORT/big/4" &
		pids+=($!)
	done
	wait "${pids[@]}"
	for i in 1 2 3 4; do
		assert_equal "$(stat -c %s "$BATS_TEST_TMPDIR/big.$i")" $((4 * 1024 * 1024))
	done
	kill_bg
}

@test "berth port-forward refuses an https server whose certificate another CA signed" {
	BERTH_CACERT=$(other_ca) run timeout 60 "$BERTH" port-forward tls-ws "$((12000 + RANDOM % 8000)):8205"
	assert_failure
	assert_output_contains "certificate"
}

@test "berth ssh-proxy carries ssh over https" {
	ssh-keygen -q -t ed25519 -N '' -C tls@test -f "$BATS_TEST_TMPDIR/key"
	curl -sf -X POST -H "Authorization: Bearer $BERTH_TOKEN" -H 'Content-Type: application/json' \
		--data-binary "$(jq -cn --rawfile k "$BATS_TEST_TMPDIR/key.pub" '{key: $k}')" \
		"$BERTH_SERVER/api/v1/ssh-keys" >/dev/null
	run timeout 60 ssh -F /dev/null -o ProxyCommand="'$BERTH' ssh-proxy --server '$BERTH_SERVER' tls-ws" \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes \
		-o BatchMode=yes -i "$BATS_TEST_TMPDIR/key" tls-ws@berth 'echo via-tls-proxy; exit 4'
	assert_equal "$status" 4
	assert_output_contains via-tls-proxy
}

@test "a large output streams whole over https" {
	run_berth exec tls-ws -- sh -c 'head -c 20000000 /dev/zero | tr "\\0" x'
	assert_success
	assert_equal "${#output}" 20000000
}

@test "a request body of almost 1 MiB arrives whole over https" {
	head -c 900000 /dev/zero | tr '\0' p | jq -Rc '{username: "admin", password: .}' >"$BATS_TEST_TMPDIR/big.json"
	run curl -sS -X POST -H 'Content-Type: application/json' --data-binary "@$BATS_TEST_TMPDIR/big.json" \
		"$BERTH_SERVER/api/v1/auth/login"
	assert_output_contains "password or token_name is too long"
}

@test "a terminal works over wss://" {
	run timeout 90 node --experimental-websocket --no-warnings "$BATS_TEST_DIRNAME/ws-client.mjs" \
		"${BERTH_SERVER/https:/wss:}/api/v1/workspaces/tls-ws/terminal?cols=80&rows=24" \
		"$BERTH_TOKEN" $'echo wss-$((40+2))\n' $'exit 3\n'
	assert_success
	assert_output_contains "wss-42"
	assert_output_contains "EXIT 3"
}

@test "a port subdomain is served under the wildcard certificate" {
	local hostport=${BERTH_SERVER#https://}
	local port=${hostport##*:}
	# an anonymous browser is sent to the exchange on the main origin
	run curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' \
		--resolve "3000-tls-ws.berth.localhost:$port:127.0.0.1" \
		"https://3000-tls-ws.berth.localhost:$port/app/"
	assert_success
	assert_output_contains "302 https://berth.localhost:$port/api/v1/port-auth?ws=tls-ws&port=3000"
	# the exchange there, with the session, gives the subdomain a Secure __Host- pass
	login_cookies
	session=$(jar_cookie __Host-berth_session)
	run curl -sS -o /dev/null -w '%{redirect_url}' -H "Cookie: __Host-berth_session=$session" \
		--resolve "berth.localhost:$port:127.0.0.1" \
		"https://berth.localhost:$port/api/v1/port-auth?ws=tls-ws&port=3000&next=/app/"
	assert_output_contains "https://3000-tls-ws.berth.localhost:$port/.berth/auth?code="
	run curl -sS -D - -o /dev/null --resolve "3000-tls-ws.berth.localhost:$port:127.0.0.1" "$output"
	assert_output_contains "Set-Cookie: __Host-berth_port="
	assert_output_contains "; Secure"
}

@test "a forwarded port over https: bodies both ways, a WebSocket over wss://, both URL forms" {
	"$BERTH" exec tls-ws -- sh -c "setsid perl proxy-echo.pl 8204 127.0.0.1 </dev/null >/dev/null 2>&1 &"
	local url=$BERTH_SERVER/w/tls-ws/ports/8204 auth=(-H "Authorization: Bearer $BERTH_TOKEN")
	for i in $(seq 1 100); do
		curl -sf "${auth[@]}" "$url/" >/dev/null && break
		sleep 0.2
	done
	head -c 5000000 /dev/urandom >"$BATS_TEST_TMPDIR/up"
	run curl -sS "${auth[@]}" --data-binary "@$BATS_TEST_TMPDIR/up" "$url/sum"
	assert_equal "$output" "bytes 5000000 sha1 $(sha1sum <"$BATS_TEST_TMPDIR/up" | cut -d' ' -f1)"
	run curl -sS "${auth[@]}" -o /dev/null -w '%{size_download}' "$url/big/8"
	assert_equal "$output" $((8 * 1024 * 1024))
	# the app's answers carry berthd's HSTS, once
	run curl -sS "${auth[@]}" -D - -o /dev/null "$url/"
	assert_equal "$(grep -ci '^strict-transport-security: max-age=31536000' <<<"$output")" 1
	run timeout 60 node --experimental-websocket --no-warnings "$BATS_TEST_DIRNAME/ws-client.mjs" \
		"${url/https:/wss:}/ws" "$BERTH_TOKEN" "echoed-over-wss"
	assert_success
	assert_output_contains "echoed-over-wss"
	# the subdomain, and the app is told the scheme
	local port=${BERTH_SERVER##*:}
	run curl -sS "${auth[@]}" --resolve "8204-tls-ws.berth.localhost:$port:127.0.0.1" \
		"https://8204-tls-ws.berth.localhost:$port/echo-headers"
	grep -qi '^x-forwarded-proto: https' <<<"${output//$'\r'/}"
}

@test "VS Code is served over https" {
	local code auth=(-H "Authorization: Bearer $BERTH_TOKEN")
	for i in $(seq 1 120); do
		code=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "$BERTH_SERVER/w/tls-ws/ide/")
		[ "$code" = 302 ] || [ "$code" = 200 ] && break
		sleep 0.5
	done
	[ "$code" = 302 ] || [ "$code" = 200 ]
	run curl -sS "${auth[@]}" "$BERTH_SERVER/w/tls-ws/ide/?folder=/workspaces/tls"
	assert_output_contains "workbench"
}

@test "--http-redirect answers plain HTTP with 308 to the same path and query on https://" {
	local http=http://127.0.0.1:$(cat "$BATS_FILE_TMPDIR/redirect.port")
	run curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "$http/w/tls-ws/ide/?folder=/workspaces/tls&x=%20y"
	assert_equal "$output" "308 $BERTH_SERVER/w/tls-ws/ide/?folder=/workspaces/tls&x=%20y"
	# the host the browser asked for, at the HTTPS port
	run curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' -H "Host: berth.localhost:80" "$http/"
	assert_equal "$output" "308 https://berth.localhost:${BERTH_SERVER##*:}/"
	# a POST stays a POST at the new address, and following it arrives
	run curl -sS -L -X POST -H 'Content-Type: application/json' --data '{}' "$http/api/v1/auth/login"
	assert_output_contains "invalid request"
	run curl -sS -D - -o /dev/null "$http/api/v1/health"
	! grep -qi strict-transport-security <<<"$output"
}

@test "plain HTTP to the HTTPS port gets a plain 400, and berthd serves on" {
	run curl -sS -o /dev/null -w '%{http_code}' "${BERTH_SERVER/https:/http:}/api/v1/health"
	assert_equal "$output" 400
	run curl -sS "${BERTH_SERVER/https:/http:}/api/v1/health"
	assert_output_contains "this port speaks HTTPS"
	# bytes that are neither TLS nor HTTP
	(head -c 4096 /dev/urandom >"/dev/tcp/127.0.0.1/${BERTH_SERVER##*:}") 2>/dev/null || true
	run curl -sf "$BERTH_SERVER/api/v1/health"
	assert_success
}

@test "SIGHUP loads a new certificate for new connections; a broken one is logged and the old kept" {
	local d=$BATS_FILE_TMPDIR
	before=$(served_fingerprint)
	[ -n "$before" ]
	make_cert second
	cp "$d/second.pem" "$d/cert.pem"
	cp "$d/second.key" "$d/key.pem"
	kill -HUP "$BERTHD_PID"
	want=$(openssl x509 -in "$d/second.pem" -noout -fingerprint -sha256)
	for i in $(seq 1 50); do
		[ "$(served_fingerprint)" = "$want" ] && break
		sleep 0.1
	done
	assert_equal "$(served_fingerprint)" "$want"
	[ "$want" != "$before" ]
	# a file that does not load
	echo "not a certificate" >"$d/cert.pem"
	kill -HUP "$BERTHD_PID"
	for i in $(seq 1 50); do
		grep -q "the certificate in use stays" "$d/berthd.log" && break
		sleep 0.1
	done
	run grep "cannot load the certificate" "$d/berthd.log"
	assert_output_contains "cert.pem"
	assert_equal "$(served_fingerprint)" "$want"
	run curl -sf "$BERTH_SERVER/api/v1/health"
	assert_success
	cp "$d/second.pem" "$d/cert.pem"
}

# proxied_berthd ARGS...: a second, plain berthd (its own data dir) with ARGS;
# sets PROXIED to its URL.
proxied_berthd() {
	local port
	port=$(free_port)
	mkdir -p "$BATS_TEST_TMPDIR/data"
	bg "$BERTHD" --data "$BATS_TEST_TMPDIR/data" --listen "127.0.0.1:$port" --ssh-listen none \
		--engine "$BERTH_TEST_ENGINE" "$@"
	PROXIED=http://127.0.0.1:$port
	for i in $(seq 1 100); do
		curl -sf "$PROXIED/api/v1/health" >/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# proxied_login [CURL ARGS...]: a browser login at $PROXIED; prints the headers.
proxied_login() {
	curl -sS -D - -o /dev/null -X POST -H 'Content-Type: application/json' "$@" \
		--data-binary "$(jq -cn --arg p "$BERTH_ADMIN_PASSWORD" '{username: "admin", password: $p, mode: "cookie"}')" \
		"$PROXIED/api/v1/auth/login"
}

@test "--behind-proxy: the proxy's X-Forwarded-Proto https makes cookies Secure, its X-Forwarded-For names the client" {
	proxied_berthd --behind-proxy 127.0.0.1
	run proxied_login -H 'X-Forwarded-Proto: https' -H 'X-Forwarded-For: 198.51.100.1, 203.0.113.9'
	assert_output_contains "Set-Cookie: __Host-berth_session="
	assert_output_contains "; Secure"
	assert_output_contains "Strict-Transport-Security: max-age=31536000"
	token=$(curl -sf -X POST -H 'Content-Type: application/json' -H 'X-Forwarded-For: 203.0.113.9' \
		--data-binary "$(jq -cn --arg p "$BERTH_ADMIN_PASSWORD" '{username: "admin", password: $p, mode: "token"}')" \
		"$PROXIED/api/v1/auth/login" | jq -r .token)
	run curl -sf -H "Authorization: Bearer $token" "$PROXIED/api/v1/audit"
	assert_equal "$(jq -r '[.events[] | select(.action == "login") | .address] | unique | join(" ")' <<<"$output")" "203.0.113.9"
	# the proxy's own plain requests stay plain
	run proxied_login
	assert_output_contains "Set-Cookie: berth_session="
	[[ $output != *Secure* && $output != *Strict-Transport-Security* ]]
}

@test "--behind-proxy: X-Forwarded-* from any other address are ignored" {
	proxied_berthd --behind-proxy 127.0.0.1
	# the same headers, from 127.0.0.2: not the proxy
	run proxied_login --interface 127.0.0.2 -H 'X-Forwarded-Proto: https' -H 'X-Forwarded-For: 203.0.113.9'
	assert_output_contains "Set-Cookie: berth_session="
	[[ $output != *Secure* && $output != *__Host-* && $output != *Strict-Transport-Security* ]]
	token=$(curl -sf -X POST -H 'Content-Type: application/json' -H 'X-Forwarded-For: 203.0.113.9' \
		--interface 127.0.0.2 \
		--data-binary "$(jq -cn --arg p "$BERTH_ADMIN_PASSWORD" '{username: "admin", password: $p, mode: "token"}')" \
		"$PROXIED/api/v1/auth/login" | jq -r .token)
	run curl -sf -H "Authorization: Bearer $token" "$PROXIED/api/v1/audit"
	assert_equal "$(jq -r '[.events[] | select(.action == "login") | .address] | unique | join(" ")' <<<"$output")" "127.0.0.2"
	# and without --behind-proxy, from anyone
	proxied_berthd
	run proxied_login -H 'X-Forwarded-Proto: https'
	[[ $output != *Secure* && $output != *__Host-* ]]
}
