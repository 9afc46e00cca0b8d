#!/usr/bin/env bash
# tests/browser/run.sh: start a berthd of its own, run the browser test
# (dashboard.test.mjs) against it with node's test runner, stop berthd. With
# BERTH_BROWSER_TLS=1 it serves HTTPS instead, with a certificate from a test
# CA that chromium trusts through its NSS database, and runs https.test.mjs.
# Prints node's TAP (its summary has "# pass N" and "# fail N"); exits with
# node's status. Needs scripts/web.sh to have run (playwright-core in
# tests/browser/node_modules, xterm in DATA/web-vendor) and Debian's chromium.
#
# Environment (all optional):
#   BERTH_BIN           directory with daemon/berthd and agent/berth-agent
#                       (default: build/src)
#   BERTH_TEST_ENGINE   engine URL for berthd (default: berthd's embedded one)
#   BERTH_SETUP_DATA    the set-up data directory holding ide/ and web-vendor/
#                       (default: .berth-data)
#   BERTH_ARTIFACTS     screenshots and berthd's log (default: tests/artifacts)
#   BERTH_TEST_REPO     a git repository with README.md (default: one made here)
#   BERTH_BROWSER_TLS   1: the HTTPS test (needs openssl and certutil)
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${BERTH_BIN:-$ROOT/build/src}"
SETUP_DATA="${BERTH_SETUP_DATA:-$ROOT/.berth-data}"
export BERTH_ARTIFACTS="${BERTH_ARTIFACTS:-$ROOT/tests/artifacts}"
mkdir -p "$BERTH_ARTIFACTS"

fail() {
	# A failure node never got to report: count it as one failed test.
	echo "browser: $*" >&2
	printf '# pass 0\n# fail 1\n'
	exit 1
}

[ -x "$BIN/daemon/berthd" ] || fail "no berthd in $BIN/daemon (build first)"
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is missing (Debian package chromium; scripts/setup.sh installs it)"
[ -d "$HERE/node_modules/playwright-core" ] || fail "playwright-core is missing: run scripts/web.sh"
[ -f "$SETUP_DATA/web-vendor/node_modules/@xterm/xterm/lib/xterm.js" ] ||
	fail "xterm.js is missing from $SETUP_DATA/web-vendor: run scripts/web.sh $SETUP_DATA"

TLS=${BERTH_BROWSER_TLS:-0}
if [ "$TLS" = 1 ]; then
	command -v certutil >/dev/null || fail "certutil is missing (Debian package libnss3-tools; scripts/setup.sh installs it)"
	command -v openssl >/dev/null || fail "openssl is missing"
fi

WORK="$(mktemp -d /tmp/berth-browser.XXXXXX)"
BERTHD_PID=
cleanup() {
	if [ -n "$BERTHD_PID" ] && kill -0 "$BERTHD_PID" 2>/dev/null; then
		remove_workspaces
		kill "$BERTHD_PID" 2>/dev/null
		for _ in $(seq 1 100); do
			kill -0 "$BERTHD_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$BERTHD_PID" 2>/dev/null
		wait "$BERTHD_PID" 2>/dev/null
	fi
	cp "$WORK/berthd.log" "$BERTH_ARTIFACTS/browser-berthd.log" 2>/dev/null
	rm -rf "$WORK" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# A test that failed half-way may leave a workspace: delete every one, and
# wait (bounded) until they are gone so no container outlives berthd.
remove_workspaces() {
	local token ids id
	token="$(curl -sf -X POST -H 'Content-Type: application/json' \
		--data-binary "{\"username\":\"admin\",\"password\":\"$BERTH_ADMIN_PASSWORD\",\"mode\":\"token\"}" \
		"$API/api/v1/auth/login" | jq -r '.token // empty')" || return 0
	[ -n "$token" ] || return 0
	for id in $(curl -sf -H "Authorization: Bearer $token" "$API/api/v1/prebuilds" |
		jq -r '.prebuilds[].id' 2>/dev/null); do
		curl -sf -X DELETE -H "Authorization: Bearer $token" "$API/api/v1/prebuilds/$id" >/dev/null
	done
	for _ in $(seq 1 120); do
		ids="$(curl -sf -H "Authorization: Bearer $token" "$API/api/v1/workspaces?all=1" |
			jq -r '.workspaces[] | select(.state != "deleting") | .id' 2>/dev/null)"
		for id in $ids; do
			curl -sf -X DELETE -H "Authorization: Bearer $token" "$API/api/v1/workspaces/$id" >/dev/null
		done
		[ "$(curl -sf -H "Authorization: Bearer $token" "$API/api/v1/workspaces?all=1" |
			jq '.workspaces | length' 2>/dev/null)" = 0 ] && return 0
		sleep 0.5
	done
	echo "browser: some workspaces were not deleted in 60 s" >&2
}

# The repository the test opens: README.md on main, and a task (a terminal
# of its own that the dashboard links to).
if [ -z "${BERTH_TEST_REPO:-}" ]; then
	export BERTH_TEST_REPO="$WORK/repo"
	mkdir -p "$BERTH_TEST_REPO/.devcontainer"
	printf '# Browser test repository\n\nOpened by tests/browser/dashboard.test.mjs.\n' >"$BERTH_TEST_REPO/README.md"
	printf '{"image": "localhost/berth/base:bookworm",\n "customizations": {"berth": {"tasks": {"hello": "echo hello-from-task-$((6*7))"}}}}\n' \
		>"$BERTH_TEST_REPO/.devcontainer/devcontainer.json"
	if ! { git -C "$BERTH_TEST_REPO" init -q -b main &&
		git -C "$BERTH_TEST_REPO" add README.md .devcontainer &&
		git -C "$BERTH_TEST_REPO" -c user.name=berth -c user.email=berth@localhost commit -qm 'README'; }; then
		fail "cannot make the test repository"
	fi
fi

# make_tls: a test CA, berthd's certificate from it for berth.localhost, its
# port subdomains and the loopback address, an NSS database (chromium's
# trust store, in a HOME of its own) that trusts the CA, and a pair for the
# same names from another CA that nothing trusts.
make_tls() {
	local d=$WORK/tls
	mkdir -p "$d" "$WORK/home/.pki/nssdb"
	printf 'subjectAltName=DNS:berth.localhost,DNS:*.berth.localhost,IP:127.0.0.1\n' >"$d/san.ext"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=berth-test-ca \
		-keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null &&
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=berth-other-ca \
			-keyout "$d/other-ca.key" -out "$d/other-ca.pem" 2>/dev/null || return 1
	local ca
	for ca in ca other-ca; do
		openssl req -newkey rsa:2048 -nodes -subj /CN=berth.localhost \
			-keyout "$d/$ca-server.key" -out "$d/$ca-server.csr" 2>/dev/null &&
			openssl x509 -req -in "$d/$ca-server.csr" -CA "$d/$ca.pem" -CAkey "$d/$ca.key" \
				-CAcreateserial -days 2 -extfile "$d/san.ext" -out "$d/$ca-server.pem" 2>/dev/null || return 1
	done
	certutil -N -d "sql:$WORK/home/.pki/nssdb" --empty-password &&
		certutil -A -d "sql:$WORK/home/.pki/nssdb" -n berth-test-ca -t C,, -i "$d/ca.pem"
}

tls_args=()
if [ "$TLS" = 1 ]; then
	make_tls || fail "cannot make the test CA and certificates"
	export BERTH_TLS_HOME="$WORK/home" NODE_EXTRA_CA_CERTS="$WORK/tls/ca.pem" CURL_CA_BUNDLE="$WORK/tls/ca.pem"
	export BERTH_OTHER_CERT="$WORK/tls/other-ca-server.pem" BERTH_OTHER_KEY="$WORK/tls/other-ca-server.key"
	tls_args=(--tls-cert "$WORK/tls/ca-server.pem" --tls-key "$WORK/tls/ca-server.key" --base-domain berth.localhost)
fi

export BERTH_ADMIN_PASSWORD="admin-pass-$RANDOM$RANDOM"
engine=(--engine "${BERTH_TEST_ENGINE:-embedded}")
agent=()
[ -x "$BIN/agent/berth-agent" ] && agent=(--agent "$BIN/agent/berth-agent")
started=0
for _ in $(seq 1 20); do
	port=$((20000 + RANDOM % 20000))
	redirect=()
	if [ "$TLS" = 1 ]; then
		rport=$((20000 + RANDOM % 20000))
		redirect=(--http-redirect "127.0.0.1:$rport")
		export BERTH_SERVER="https://berth.localhost:$port" BERTH_API="https://127.0.0.1:$port"
		export BERTH_REDIRECT="http://berth.localhost:$rport"
	else
		export BERTH_SERVER="http://127.0.0.1:$port" BERTH_API="http://127.0.0.1:$port"
	fi
	API=$BERTH_API
	"$BIN/daemon/berthd" --data "$WORK/data" --listen "127.0.0.1:$port" "${engine[@]}" "${agent[@]}" \
		"${tls_args[@]}" "${redirect[@]}" \
		--ide "$SETUP_DATA/ide" --web "$ROOT/web" --web-vendor "$SETUP_DATA/web-vendor/node_modules" \
		--test-idle-minute 1000 >>"$WORK/berthd.log" 2>&1 &
	BERTHD_PID=$!
	for _ in $(seq 1 600); do
		kill -0 "$BERTHD_PID" 2>/dev/null || break
		if curl -sf "$API/api/v1/health" 2>/dev/null | grep -q '"engine":"ok"'; then
			started=1
			break
		fi
		sleep 0.1
	done
	[ "$started" = 1 ] && break
	kill -9 "$BERTHD_PID" 2>/dev/null
	wait "$BERTHD_PID" 2>/dev/null
	BERTHD_PID=
done
if [ "$started" != 1 ]; then
	tail -n 30 "$WORK/berthd.log" >&2
	fail "berthd did not start"
fi

# An idle minute lasts a second here (the VS Code idle step); the admin's
# workspaces default to "never" so that no other step meets an idle stop.
token="$(curl -sf -X POST -H 'Content-Type: application/json' \
	--data-binary "{\"username\":\"admin\",\"password\":\"$BERTH_ADMIN_PASSWORD\",\"mode\":\"token\"}" \
	"$API/api/v1/auth/login" | jq -r '.token // empty')"
curl -sf -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
	--data-binary '{"idle_allow_never": 1}' "$API/api/v1/admin/settings" >/dev/null &&
	curl -sf -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
		--data-binary '{"idle_timeout": "never"}' "$API/api/v1/settings" >/dev/null ||
	fail "cannot set the idle defaults"

cd "$ROOT" || exit 1
if [ "$TLS" = 1 ]; then
	node --test --test-reporter=tap "$HERE/https.test.mjs"
else
	node --test --test-reporter=tap "$HERE/dashboard.test.mjs"
fi
