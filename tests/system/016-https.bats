#!/usr/bin/env bats
# The CLI over https://: verified by default, a private CA named by
# $BERTH_CACERT. berthd's own TLS listener is not in yet, so a stand-in
# `openssl s_server` plays the https server here.

load helpers

setup_file() {
	local d=$BATS_FILE_TMPDIR
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=berth-test-ca \
		-keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
		-keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:*.localhost\n' >"$d/san.ext"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
		-CAcreateserial -days 2 -extfile "$d/san.ext" -out "$d/server.pem" 2>/dev/null
	# -WWW serves files under the working directory by path.
	mkdir -p "$d/www/api/v1"
	echo '{"workspaces": []}' >"$d/www/api/v1/workspaces"
	cd "$d/www" || return 1
	bg_on_free_port "curl -s --cacert '$d/ca.pem' https://127.0.0.1:{port}/api/v1/workspaces" \
		openssl s_server -quiet -accept "127.0.0.1:{port}" -cert "$d/server.pem" \
		-key "$d/server.key" -WWW
	echo "$PORT" >"$d/port"
}

teardown_file() {
	kill_bg
}

setup() {
	BERTH_SERVER=https://127.0.0.1:$(cat "$BATS_FILE_TMPDIR/port")
	export BERTH_SERVER
	export BERTH_TOKEN=test-token
	unset BERTH_CACERT
}

@test "berth refuses an https server whose certificate it cannot verify" {
	run_berth ls
	assert_failure
	assert_output_contains "certificate"
}

@test "berth trusts an https server signed by the CA in BERTH_CACERT" {
	BERTH_CACERT=$BATS_FILE_TMPDIR/ca.pem run_berth ls
	assert_success
}

@test "a missing BERTH_CACERT file is a clear error, not a fallback to no verification" {
	BERTH_CACERT=$BATS_FILE_TMPDIR/nonexistent.pem run_berth ls
	assert_failure
	assert_output_contains "nonexistent.pem"
}
