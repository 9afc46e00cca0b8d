#!/usr/bin/env bash
# scripts/run.sh --data DIR --listen ADDR:PORT: start berthd in the foreground
# and tell the user how to use it.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=.berth-data
LISTEN=127.0.0.1:7878
while [ $# -gt 0 ]; do
	case "$1" in
	--data) DATA="$2"; shift 2 ;;
	--listen) LISTEN="$2"; shift 2 ;;
	*) echo "usage: $0 [--data DIR] [--listen ADDR:PORT]" >&2; exit 2 ;;
	esac
done
BIN="$PWD/build/src"
cat <<MSG

  berthd is starting on http://$LISTEN (data: $DATA).

  Log in as 'admin' with the password berthd prints below on its first start
  (or set BERTH_ADMIN_PASSWORD before the first start):
    - in a browser: http://$LISTEN/  (dashboard, terminal, VS Code, ports)
    - or in another terminal:

    export PATH="$BIN/cli:\$PATH"
    export BERTH_SERVER=http://$LISTEN
    berth login --username admin
    berth create /path/to/repo --branch main     # or an http(s)://, ssh://, file:// URL
    berth ls
    berth exec <workspace> -- git log -1
    berth shell <workspace>
    berth stop <workspace>; berth start <workspace>; berth rm <workspace>

  Stop berthd with Ctrl-C; workspaces and their files are kept in $DATA.

MSG
exec "$BIN/daemon/berthd" --data "$DATA" --listen "$LISTEN"
