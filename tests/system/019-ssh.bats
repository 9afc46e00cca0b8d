#!/usr/bin/env bats
# The SSH gateway in berthd, driven by OpenSSH's own clients.

load helpers

ssh_opts() {
	echo -F /dev/null -p "$(cat "$BATS_FILE_TMPDIR/ssh.port")" -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes \
		-o BatchMode=yes -o ConnectTimeout=30
}

wssh() { # wssh KEY WS ARGS...: ssh into WS with KEY
	local key=$1 ws=$2
	shift 2
	timeout 300 ssh $(ssh_opts) -i "$key" "$ws@127.0.0.1" "$@"
}

add_key() { # add_key TOKEN PUBFILE
	curl -s -X POST -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
		--data-binary "$(jq -cn --rawfile k "$2" '{key: $k}')" "$BERTH_SERVER/api/v1/ssh-keys"
}

setup_file() {
	local port
	port=$((32100 + RANDOM % 1000))
	echo "$port" >"$BATS_FILE_TMPDIR/ssh.port"
	start_berthd --ssh-listen "127.0.0.1:$port"
	make_user sshalice >"$BATS_FILE_TMPDIR/alice.token"
	make_user sshbob >"$BATS_FILE_TMPDIR/bob.token"
	for k in alice bob other; do
		ssh-keygen -q -t ed25519 -N '' -C "$k@test" -f "$BATS_FILE_TMPDIR/$k.key"
	done
	add_key "$(cat "$BATS_FILE_TMPDIR/alice.token")" "$BATS_FILE_TMPDIR/alice.key.pub" >/dev/null
	add_key "$(cat "$BATS_FILE_TMPDIR/bob.token")" "$BATS_FILE_TMPDIR/bob.key.pub" >/dev/null
	local repo
	repo=$(make_repo sshrepo)
	cp "$BATS_TEST_DIRNAME/fixtures/httpd.pl" "$repo/"
	git -C "$repo" add -A
	git -C "$repo" -c user.name=Test -c user.email=test@example.com commit -q -m httpd
	BERTH_TOKEN=$(cat "$BATS_FILE_TMPDIR/alice.token") timeout 300 "$BERTH" create "$repo" --name sshws >/dev/null
	BERTH_TOKEN=$(cat "$BATS_FILE_TMPDIR/bob.token") timeout 300 "$BERTH" create "$repo" --name sshbobws >/dev/null
}

teardown_file() {
	stop_berthd
}

setup() {
	load_berthd_env
	ALICE=$(cat "$BATS_FILE_TMPDIR/alice.token")
	KEY=$BATS_FILE_TMPDIR/alice.key
}

@test "berthd prints the SSH host key's fingerprint and keeps the key private" {
	grep -q "ssh gateway on 127.0.0.1:$(cat "$BATS_FILE_TMPDIR/ssh.port"), host key SHA256:" "$BATS_FILE_TMPDIR/berthd.log"
	assert_equal "$(stat -c %a "$BERTH_DATA/ssh_host_ed25519_key")" 600
}

@test "ssh WS true succeeds and exit codes come back" {
	run wssh "$KEY" sshws true
	assert_success
	run wssh "$KEY" sshws 'exit 7'
	assert_equal "$status" 7
	run wssh "$KEY" sshws 'echo out; echo err >&2; pwd'
	assert_success
	assert_output_contains out
	assert_output_contains /workspaces/sshrepo
}

@test "stdin reaches the command" {
	out=$(printf 'hello\nworld\n' | wssh "$KEY" sshws 'wc -l')
	assert_equal "$(echo "$out" | tr -d ' ')" 2
}

@test "ssh -t gives a terminal with the client's TERM" {
	run env TERM=vt100 timeout 60 ssh $(ssh_opts) -tt -i "$KEY" sshws@127.0.0.1 'echo $TERM; tty'
	assert_success
	assert_output_contains vt100
	assert_output_contains /dev/pts
}

@test "ssh -t under tmux: an interactive shell that follows the window's size" {
	sock=berth-ssh-$$
	pane() { tmux -L "$sock" capture-pane -p -t t; }
	wait_pane() { # wait_pane TEXT: until the pane shows it (60 s)
		local i
		for i in $(seq 1 300); do
			pane | grep -q "$1" && return 0
			sleep 0.2
		done
		pane >&2
		return 1
	}
	tmux -L "$sock" new-session -d -s t -x 100 -y 30 \
		"ssh $(ssh_opts) -t -i '$KEY' sshws@127.0.0.1"
	tmux -L "$sock" send-keys -t t 'PS1=ready\$\ ; stty size | sed s/^/size:/' Enter
	wait_pane "size:30 100" || { tmux -L "$sock" kill-server; return 1; }
	tmux -L "$sock" resize-window -t t -x 120 -y 40
	tmux -L "$sock" send-keys -t t 'stty size | sed s/^/size:/' Enter
	wait_pane "size:40 120" || { tmux -L "$sock" kill-server; return 1; }
	tmux -L "$sock" send-keys -t t 'exit' Enter
	tmux -L "$sock" kill-server 2>/dev/null || true
}

@test "scp copies a 100 MB file both ways intact" {
	head -c 100000000 /dev/urandom >"$BATS_FILE_TMPDIR/big"
	run timeout 120 scp $(ssh_opts | sed 's/-p /-P /') -i "$KEY" "$BATS_FILE_TMPDIR/big" sshws@127.0.0.1:/tmp/big
	assert_success
	run wssh "$KEY" sshws 'sha256sum /tmp/big'
	assert_equal "${output%% *}" "$(sha256sum "$BATS_FILE_TMPDIR/big" | cut -d' ' -f1)"
	run timeout 120 scp $(ssh_opts | sed 's/-p /-P /') -i "$KEY" sshws@127.0.0.1:/tmp/big "$BATS_FILE_TMPDIR/back"
	assert_success
	cmp "$BATS_FILE_TMPDIR/big" "$BATS_FILE_TMPDIR/back"
}

@test "sftp -b runs a batch" {
	printf 'mkdir /tmp/sftpdir\nput %s /tmp/sftpdir/readme\nls /tmp/sftpdir\n' "$BATS_FILE_TMPDIR/alice.key.pub" >"$BATS_FILE_TMPDIR/batch"
	run timeout 60 sftp $(ssh_opts | sed 's/-p /-P /') -i "$KEY" -b "$BATS_FILE_TMPDIR/batch" sshws@127.0.0.1
	assert_success
	assert_output_contains readme
}

@test "a wrong key, an unknown workspace and someone else's workspace are denied alike" {
	run wssh "$BATS_FILE_TMPDIR/other.key" sshws true
	assert_equal "$status" 255
	assert_output_contains "Permission denied"
	run wssh "$KEY" no-such-ws true
	assert_equal "$status" 255
	assert_output_contains "Permission denied"
	run wssh "$KEY" sshbobws true
	assert_equal "$status" 255
	assert_output_contains "Permission denied"
}

@test "malformed keys and weak RSA keys are refused with a reason" {
	echo "ssh-ed25519 AAAAnotbase64!!" >"$BATS_FILE_TMPDIR/bad.pub"
	run add_key "$ALICE" "$BATS_FILE_TMPDIR/bad.pub"
	assert_output_contains malformed
	ssh-keygen -q -t rsa -b 1024 -N '' -f "$BATS_FILE_TMPDIR/weak.key" 2>/dev/null || skip "no 1024-bit RSA keys here"
	run add_key "$ALICE" "$BATS_FILE_TMPDIR/weak.key.pub"
	assert_output_contains "2048"
	echo "ssh-dss AAAAB3NzaC1kc3M= x" >"$BATS_FILE_TMPDIR/dsa.pub"
	run add_key "$ALICE" "$BATS_FILE_TMPDIR/dsa.pub"
	assert_output_contains "not taken"
}

@test "a deleted key no longer logs in, and a stopped workspace starts on connect" {
	ssh-keygen -q -t ecdsa -N '' -f "$BATS_FILE_TMPDIR/tmp.key"
	id=$(add_key "$ALICE" "$BATS_FILE_TMPDIR/tmp.key.pub" | jq -r .id)
	BERTH_TOKEN=$ALICE run_berth stop sshws
	assert_success
	run wssh "$BATS_FILE_TMPDIR/tmp.key" sshws 'echo started'
	assert_success
	assert_output_contains started
	curl -sf -X DELETE -H "Authorization: Bearer $ALICE" "$BERTH_SERVER/api/v1/ssh-keys/$id"
	run wssh "$BATS_FILE_TMPDIR/tmp.key" sshws true
	assert_equal "$status" 255
}

@test "berth ssh-config output works with ssh -F and StrictHostKeyChecking=yes" {
	BERTH_TOKEN=$ALICE run_berth ssh-config sshws
	assert_success
	assert_output_contains "Host berth-sshws"
	echo "$output" >"$BATS_FILE_TMPDIR/ssh_config"
	run timeout 60 ssh -F "$BATS_FILE_TMPDIR/ssh_config" -i "$KEY" -o IdentitiesOnly=yes \
		-o BatchMode=yes -o StrictHostKeyChecking=yes berth-sshws 'echo via-config'
	assert_success
	assert_output_contains via-config
}

@test "berth ssh-key add, ls and rm" {
	ssh-keygen -q -t ed25519 -N '' -f "$BATS_FILE_TMPDIR/cli.key"
	BERTH_TOKEN=$ALICE run_berth ssh-key add "$BATS_FILE_TMPDIR/cli.key.pub" --name laptop
	assert_success
	assert_output_contains SHA256:
	BERTH_TOKEN=$ALICE run_berth ssh-key ls --json
	id=$(jq -r '.[] | select(.name == "laptop") | .id' <<<"$output")
	BERTH_TOKEN=$ALICE run_berth ssh-key rm "$id"
	assert_success
	run bash -c "echo 'not a key' | BERTH_TOKEN=$ALICE '$BERTH' ssh-key add -"
	assert_failure
	assert_output_contains "is not taken"
}

@test "ssh -L reaches a server bound to loopback in the workspace" {
	wssh "$KEY" sshws 'setsid perl httpd.pl 8301 127.0.0.1 </dev/null >/dev/null 2>&1 &'
	local lport=$((33200 + RANDOM % 1000)) i out=
	timeout 60 ssh $(ssh_opts) -i "$KEY" -N -L "$lport:localhost:8301" sshws@127.0.0.1 &
	for i in $(seq 1 50); do
		out=$(curl -s "http://127.0.0.1:$lport/" 2>/dev/null) && [ -n "$out" ] && break
		sleep 0.2
	done
	kill %1 2>/dev/null || true
	[[ "$out" == *hello* ]] || { echo "got: $out" >&2; return 1; }
}

@test "logins and failures are in the audit log" {
	run curl -sf -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_SERVER/api/v1/audit"
	assert_output_contains ssh.login
	assert_output_contains ssh.login-failed
}

@test "a command killed by a signal is reported as exit-signal, as OpenSSH's sshd does" {
	run timeout 60 ssh -F /dev/null -p "$(cat "$BATS_FILE_TMPDIR/ssh.port")" -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes -v \
		-i "$KEY" sshws@127.0.0.1 'kill -TERM $$'
	assert_equal "$status" 255
	assert_output_contains "rtype exit-signal"
}

@test "berth ssh-proxy carries ssh over the HTTP port, and still needs the owner's key" {
	proxy="'$BERTH' ssh-proxy --server '$BERTH_SERVER' sshws"
	run env BERTH_TOKEN="$ALICE" timeout 60 ssh -F /dev/null -o ProxyCommand="$proxy" \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes \
		-o BatchMode=yes -i "$KEY" sshws@berth 'echo via-proxy; exit 3'
	assert_equal "$status" 3
	assert_output_contains via-proxy
	# the token opens the way, the key logs in: another user's key is denied
	run env BERTH_TOKEN="$ALICE" timeout 60 ssh -F /dev/null -o ProxyCommand="$proxy" \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes \
		-o BatchMode=yes -i "$BATS_FILE_TMPDIR/bob.key" sshws@berth true
	assert_equal "$status" 255
	assert_output_contains "Permission denied"
	# a bad token never reaches the gateway
	run env BERTH_TOKEN=nope timeout 60 "$BERTH" ssh-proxy sshws </dev/null
	assert_failure
	assert_output_contains "token"
}

@test "berth ssh-config --install --proxy adds an Include once and the hosts work from it" {
	home=$BATS_TEST_TMPDIR/home
	mkdir -p "$home/.ssh"
	printf 'Host elsewhere\n    User me\n' >"$home/.ssh/config"
	for i in 1 2; do
		HOME=$home BERTH_TOKEN=$ALICE run_berth ssh-config --install --proxy sshws
		assert_success
	done
	assert_equal "$(grep -c '^Include ' "$home/.ssh/config")" 1
	assert_equal "$(head -1 "$home/.ssh/config")" "Include \"$home/.ssh/berth_config\""
	grep -q '^Host elsewhere' "$home/.ssh/config"
	assert_equal "$(stat -c %a "$home/.ssh/berth_config")" 600
	run env HOME="$home" BERTH_TOKEN="$ALICE" timeout 60 ssh -F "$home/.ssh/config" -i "$KEY" \
		-o IdentitiesOnly=yes -o BatchMode=yes berth-sshws 'echo via-install'
	assert_success
	assert_output_contains via-install
}

@test "ssh -A forwards the client's agent: ssh-add -l inside lists its key, and only the remote user may use it" {
	eval "$(ssh-agent -s)" >/dev/null
	ssh-add -q "$BATS_FILE_TMPDIR/other.key"
	fp=$(ssh-keygen -lf "$BATS_FILE_TMPDIR/other.key.pub" | cut -d' ' -f2)
	run timeout 60 ssh $(ssh_opts) -A -i "$KEY" sshws@127.0.0.1 \
		'ssh-add -l; stat -c "%a %U" "$SSH_AUTH_SOCK"'
	ssh-agent -k >/dev/null
	assert_success
	assert_output_contains "$fp"
	assert_output_contains "600 $(wssh "$KEY" sshws 'id -un')"
	# without -A there is no agent, and the socket went with the connection
	run wssh "$KEY" sshws 'echo "sock=${SSH_AUTH_SOCK:-none}"; ls /.berth/ide | grep -c ssh-agent || true'
	assert_output_contains "sock=none"
	assert_output_contains 0
}

@test "a stalled handshake and a 1 MB banner are cut off, and logins go on meanwhile" {
	port=$(cat "$BATS_FILE_TMPDIR/ssh.port")
	# a client that connects and says nothing, one that sends a 1 MB banner line
	python3 - "$port" >"$BATS_TEST_TMPDIR/abuse.out" 2>&1 <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
stall = socket.create_connection(("127.0.0.1", port))
big = socket.create_connection(("127.0.0.1", port))
big.settimeout(60)
t0 = time.monotonic()
try:
    big.sendall(b"SSH-2.0-" + b"A" * (1024 * 1024) + b"\r\n")
except OSError:
    pass
try:
    while big.recv(65536):
        pass
except OSError:
    pass
print("banner closed after %.1fs" % (time.monotonic() - t0), flush=True)
stall.settimeout(120)
t0 = time.monotonic()
try:
    while stall.recv(65536):
        pass
    print("stall closed after %.1fs" % (time.monotonic() - t0), flush=True)
except socket.timeout:
    print("stall still open", flush=True)
PY
	pid=$!
	run wssh "$KEY" sshws 'echo still-serving'
	assert_success
	assert_output_contains still-serving
	wait "$pid"
	cat "$BATS_TEST_TMPDIR/abuse.out"
	grep -q "banner closed" "$BATS_TEST_TMPDIR/abuse.out"
	grep -q "stall closed" "$BATS_TEST_TMPDIR/abuse.out"
}

@test "a connection that opens too many channels is refused the extra ones and others are unaffected" {
	ctl=$BATS_TEST_TMPDIR/ctl
	timeout 120 ssh $(ssh_opts) -i "$KEY" -o ControlMaster=yes -o ControlPath="$ctl" -N -f sshws@127.0.0.1
	pids=()
	for i in $(seq 1 40); do
		timeout 90 ssh -o ControlPath="$ctl" -o BatchMode=yes sshws@127.0.0.1 'sleep 15; echo done' \
			>"$BATS_TEST_TMPDIR/ch.$i" 2>&1 &
		pids+=($!)
	done
	ok=0 refused=0
	for i in $(seq 1 40); do
		if wait "${pids[$((i - 1))]}"; then ok=$((ok + 1)); else refused=$((refused + 1)); fi
	done
	ssh -o ControlPath="$ctl" -O exit sshws@127.0.0.1 2>/dev/null || true
	echo "ok=$ok refused=$refused" >&2
	[ "$ok" -ge 1 ] && [ "$ok" -le 32 ] && [ "$refused" -ge 8 ]
	run wssh "$KEY" sshws 'echo fresh-connection'
	assert_success
	assert_output_contains fresh-connection
}

# last: it blocks 127.0.0.1 for a minute
@test "repeated failures from one address block it for a while; the HTTP API is unaffected" {
	for i in $(seq 1 10); do
		wssh "$BATS_FILE_TMPDIR/other.key" sshws true 2>/dev/null || true
	done
	run wssh "$KEY" sshws 'echo should-not-run'
	assert_equal "$status" 255
	[[ "$output" != *should-not-run* ]]
	grep -q "ssh: refused 127.0.0.1: too many failed logins" "$BATS_FILE_TMPDIR/berthd.log"
	run curl -sf -H "Authorization: Bearer $ALICE" "$BERTH_SERVER/api/v1/workspaces"
	assert_success
	assert_output_contains sshws
}
