#!/usr/bin/env bats
# Dotfiles: a user's repository, cloned into every new workspace after
# postCreateCommand, its install script run as the remote user (or its
# dot-files linked into ~). Rebuild runs it again, start does not; whatever
# goes wrong is logged and the workspace is ready anyway. berthd runs with
# --test-idle-minute 1000, which makes the 10-minute time limit 10 s.

load helpers

setup_file() {
	start_berthd --test-idle-minute 1000
	load_berthd_env
	# postCreateCommand leaves a mark that the install script looks for
	export DOT_WS_REPO
	DOT_WS_REPO=$(make_repo dotws '{"image": "localhost/berth/base:bookworm",
		"postCreateCommand": "date +%s%N > /tmp/post-create-ran"}')
}

teardown_file() {
	stop_berthd
}

setup() {
	load_berthd_env
}

# dot_repo NAME FILE CONTENT [FILE CONTENT...]: a dotfiles repository.
dot_repo() {
	local dir=$BATS_FILE_TMPDIR/repos/$1
	shift
	rm -rf "$dir"
	mkdir -p "$dir"
	git -C "$dir" init -q -b main
	while [ $# -ge 2 ]; do
		mkdir -p "$(dirname "$dir/$1")"
		printf '%s\n' "$2" >"$dir/$1"
		case $1 in *.sh | install | bootstrap | setup | script/*) chmod +x "$dir/$1" ;; esac
		shift 2
	done
	git -C "$dir" add -A
	git -C "$dir" -c user.name=T -c user.email=t@t commit -qm dots
	echo "$dir"
}

@test "install.sh runs as the remote user after postCreateCommand; rebuild runs it again, start does not" {
	dots=$(dot_repo d-install install.sh '#!/bin/sh
echo "install as $(id -un) in $PWD"
test -f /tmp/post-create-ran && echo "postCreate was first"
echo run >> "$(ls -d /workspaces/*)/.dotfile-runs"
echo "export FROM_DOTFILES=1" > ~/.dot-env' .vimrc 'set nocompatible')
	run_berth settings dotfiles "$dots"
	assert_success
	assert_output_contains "dotfiles:  $dots"
	ws=$(ws_name)
	run_berth create "$DOT_WS_REPO" --name "$ws"
	assert_success
	wait_lifecycle "$ws" done
	run_berth logs "$ws"
	assert_output_contains "installing dotfiles from '$dots'"
	assert_output_contains "dotfiles: running install.sh"
	assert_output_contains "dotfiles: install as vscode in /home/vscode/dotfiles"
	assert_output_contains "dotfiles: postCreate was first"
	assert_output_contains "dotfiles installed"
	run_berth exec "$ws" -- sh -c 'cat ~/.dot-env; ls -a ~/dotfiles; cat "$(ls -d /workspaces/*)/.dotfile-runs" | wc -l'
	assert_success
	assert_output_contains "export FROM_DOTFILES=1"
	assert_output_contains ".vimrc"
	assert_equal "$(tail -1 <<<"$output")" 1
	run_berth stop "$ws"
	run_berth start "$ws"
	assert_success
	run_berth exec "$ws" -- sh -c 'wc -l < "$(ls -d /workspaces/*)/.dotfile-runs"'
	assert_equal "$output" 1
	run_berth rebuild "$ws"
	assert_success
	wait_lifecycle "$ws" done
	run_berth exec "$ws" -- sh -c 'wc -l < "$(ls -d /workspaces/*)/.dotfile-runs"; cat ~/.dot-env'
	assert_output_contains "2"
	assert_output_contains "FROM_DOTFILES"
}

@test "without an install script the dot-files are linked into ~; --install and --target are honoured" {
	dots=$(dot_repo d-link .vimrc 'set number' .gitconfig.local '[user]' README.md 'not a dot-file')
	run_berth settings dotfiles "$dots"
	assert_success
	ws=$(ws_name)
	run_berth create "$DOT_WS_REPO" --name "$ws"
	assert_success
	wait_lifecycle "$ws" done
	run_berth exec "$ws" -- sh -c 'readlink ~/.vimrc; cat ~/.vimrc; ls -a ~ | grep -c "^.git$"; test -e ~/README.md || echo no-readme'
	assert_success
	assert_output_contains "/home/vscode/dotfiles/.vimrc"
	assert_output_contains "set number"
	assert_output_contains "no-readme"
	assert_equal "$(sed -n 3p <<<"$output")" 0
	dots=$(dot_repo d-custom bin/go.sh '#!/bin/sh
echo "custom install in $PWD"')
	run_berth settings dotfiles "$dots" --install "sh bin/go.sh" --target "~/.config/dots"
	assert_success
	assert_output_contains "install: sh bin/go.sh"
	assert_output_contains "target:  ~/.config/dots"
	ws2=$(ws_name)
	run_berth create "$DOT_WS_REPO" --name "$ws2"
	assert_success
	wait_lifecycle "$ws2" done
	run_berth logs "$ws2"
	assert_output_contains "dotfiles: custom install in /home/vscode/.config/dots"
}

@test "a dotfiles failure is logged and shown, and the workspace is ready all the same" {
	# does not clone
	run_berth settings dotfiles "http://127.0.0.1:9/nobody/dotfiles.git"
	assert_success
	ws=$(ws_name)
	run_berth create "$DOT_WS_REPO" --name "$ws"
	assert_success
	wait_lifecycle "$ws" done
	assert_equal "$(ws_field "$ws" state)" running
	run_berth events "$ws"
	assert_output_contains "dotfiles failed:"
	assert_output_contains "the workspace is ready without them"
	# exits 1; prints 100 MB (cut in the log); deletes ~; hangs (stopped at 10 s)
	for script in 'echo going to fail; exit 1' \
		'head -c 100000000 /dev/zero | tr "\0" "x" | fold -w 100' \
		'rm -rf "$HOME"; echo home gone' \
		'echo hanging; sleep 3600'; do
		dots=$(dot_repo d-bad install.sh "#!/bin/sh
$script")
		run_berth settings dotfiles "$dots"
		assert_success
		ws=$(ws_name)
		start=$(date +%s)
		run_berth create "$DOT_WS_REPO" --name "$ws"
		assert_success
		wait_lifecycle "$ws" done
		assert_equal "$(ws_field "$ws" state)" running
		run_berth events "$ws"
		case $script in
		*"exit 1"*) assert_output_contains "the dotfiles' install exited 1" ;;
		*/dev/zero*)
			run_berth logs "$ws"
			assert_output_contains "(output cut at 1048576 bytes: the rest is not logged)"
			# the log holds about the cap, not 100 MB
			[ "$(wc -c <<<"$output")" -lt 3000000 ]
			;;
		*"rm -rf"*)
			run_berth exec "$ws" -- sh -c 'cat "$(ls -d /workspaces/*)/README.md"'
			assert_success
			assert_output_contains "# dotws"
			;;
		*sleep*)
			assert_output_contains "dotfiles failed: the command did not finish in 10 s: stopped"
			[ $(($(date +%s) - start)) -lt 60 ]
			;;
		esac
	done
}

@test "a private dotfiles repository: without credentials a clear failure and no prompt; with the user's own, it clones" {
	dots=$(dot_repo d-private install.sh '#!/bin/sh
echo private-dots-ran > ~/private-dots')
	git -C "$dots" update-server-info
	port=$((12000 + RANDOM % 8000))
	bg python3 "$BATS_TEST_DIRNAME/fixtures/authserver.py" $port "$BATS_FILE_TMPDIR/repos" dotuser:dot-pass-789
	for i in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
	run_berth settings dotfiles "http://127.0.0.1:$port/d-private/.git"
	assert_success
	ws=$(ws_name)
	start=$(date +%s)
	run_berth create "$DOT_WS_REPO" --name "$ws"
	assert_success
	wait_lifecycle "$ws" done
	# no credential prompt to hang on: it fails at once, and says why
	[ $(($(date +%s) - start)) -lt 60 ]
	assert_equal "$(ws_field "$ws" state)" running
	run_berth events "$ws"
	assert_output_contains "dotfiles failed:"
	run_berth exec "$ws" -- sh -c 'test ! -e ~/private-dots && echo not-installed'
	assert_output_contains not-installed
	# the user's own git credentials for that host make it clone
	run api POST /api/v1/git-credentials "{\"url\": \"http://127.0.0.1:$port\", \"username\": \"dotuser\", \"password\": \"dot-pass-789\"}"
	assert_output_contains "201 "
	ws=$(ws_name)
	run_berth create "$DOT_WS_REPO" --name "$ws"
	assert_success
	wait_lifecycle "$ws" done
	run_berth exec "$ws" -- sh -c 'cat ~/private-dots'
	assert_equal "$output" private-dots-ran
	run_berth logs "$ws"
	[[ "$output" != *dot-pass-789* ]]
	run_berth settings dotfiles --off
}

@test "dotfiles settings are checked: the URL as a repository, the target as a folder; --off removes them" {
	run api PUT /api/v1/settings '{"dotfiles": {"url": "ftp://example.com/dots"}}'
	assert_output_contains "400 "
	assert_output_contains "dotfiles:"
	run api PUT /api/v1/settings '{"dotfiles": {"url": "https://example.com/d.git", "target": "~/../../etc"}}'
	assert_output_contains "400 "
	assert_output_contains "without '..'"
	run api PUT /api/v1/settings '{"dotfiles": {"url": "https://example.com/d.git", "install": "a\nb"}}'
	assert_output_contains "400 "
	# a user who is not an admin may not name a folder of the server
	tok=$(make_user dotpeer)
	API_TOKEN=$tok run api PUT /api/v1/settings '{"dotfiles": {"url": "/etc"}}'
	assert_output_contains "400 "
	run_berth settings dotfiles --off
	assert_success
	assert_output_contains "dotfiles:  off"
	run_berth settings dotfiles
	assert_failure
	assert_output_contains "usage: berth settings dotfiles URL"
}
