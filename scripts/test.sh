#!/usr/bin/env bash
# scripts/test.sh [--unit-only]: run every test and print one closing line
# "N passed, N failed" (cmocka and bats counts added up). Exits non-zero on
# any failure. Expects `make build build-asan` and scripts/setup.sh to have run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
UNIT_ONLY=0
[ "${1:-}" = "--unit-only" ] && UNIT_ONLY=1

passed=0
failed=0
ARTIFACTS="$ROOT/tests/artifacts"
mkdir -p "$ARTIFACTS"

# ---- format: one .clang-format for the tree (STYLE.md) ----
if command -v clang-format >/dev/null; then
	# shellcheck disable=SC2046 # one argument per file
	if clang-format --dry-run --Werror $(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c') >"$ARTIFACTS/format.log" 2>&1; then
		echo "format: ok"
	else
		echo "format: files differ from .clang-format (run 'make format'):"
		head -20 "$ARTIFACTS/format.log"
		failed=$((failed + 1))
	fi
fi

# ---- unit tests (cmocka, under ASan+UBSan) ----
for t in build-asan/tests/unit/test-*; do
	[ -x "$t" ] || continue
	case "$t" in *.p) continue ;; esac
	out=$("$t" 2>&1)
	rc=$?
	echo "$out"
	p=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
	f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	if [ $rc -ne 0 ] && [ -z "$f" ]; then
		echo "unit: $t crashed (exit $rc)"
		failed=$((failed + 1))
	fi
done

# ---- fuzzing (libFuzzer, ASan+UBSan), a bounded time per target ----
if command -v clang >/dev/null && [ -z "${BERTH_BATS:-}" ]; then
	FUZZ_DIR=build-fuzz
	mkdir -p "$FUZZ_DIR"
	FUZZ_FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -std=gnu11 -Isrc"
	declare -A FUZZ_SRC=(
		[http]="tests/fuzz/fuzz-http.c src/http/server.c src/http/tls.c src/util/buf.c src/util/strv.c src/util/err.c src/util/xalloc.c src/util/log.c -ljansson -luv -lhttp_parser -lssl -lcrypto -lpthread"
		[json]="tests/fuzz/fuzz-json.c src/devcontainer/devcontainer.c src/devcontainer/gitpod.c src/git/git.c src/util/buf.c src/util/strv.c src/util/err.c src/util/xalloc.c src/util/run.c src/util/fs.c src/util/path.c src/util/size.c -lm -ljansson -lyaml -lpthread"
		[yaml]="tests/fuzz/fuzz-yaml.c src/devcontainer/devcontainer.c src/devcontainer/gitpod.c src/util/buf.c src/util/strv.c src/util/err.c src/util/xalloc.c src/util/fs.c src/util/path.c src/util/size.c -lm -ljansson -lyaml -lpthread"
	)
	for t in http json yaml; do
		# shellcheck disable=SC2086
		if ! clang $FUZZ_FLAGS -o "$FUZZ_DIR/fuzz-$t" ${FUZZ_SRC[$t]} 2>"$ARTIFACTS/fuzz-$t.build.log"; then
			echo "not ok fuzz-$t: does not build"
			failed=$((failed + 1))
			continue
		fi
		mkdir -p "$FUZZ_DIR/corpus-$t"
		cp tests/fuzz/seeds/$t/* "$FUZZ_DIR/corpus-$t/" 2>/dev/null
		if (cd "$FUZZ_DIR" && ./fuzz-$t -max_total_time="${BERTH_FUZZ_SECONDS:-20}" -rss_limit_mb=2048 \
			-artifact_prefix="$ARTIFACTS/fuzz-$t-" "corpus-$t") >"$ARTIFACTS/fuzz-$t.log" 2>&1; then
			echo "ok fuzz-$t: $(grep -o 'Done [0-9]* runs' "$ARTIFACTS/fuzz-$t.log")"
			passed=$((passed + 1))
		else
			echo "not ok fuzz-$t: a crash; see tests/artifacts/fuzz-$t.log"
			tail -30 "$ARTIFACTS/fuzz-$t.log"
			failed=$((failed + 1))
		fi
	done
fi

# ---- system tests (bats, against a real Podman service) ----
if [ $UNIT_ONLY -eq 0 ]; then
	export BERTH_ROOT="$ROOT"
	export BERTH_BIN="$ROOT/build-asan/src"
	export BERTH_AGENT="$ROOT/build-asan/src/agent/berth-agent"
	export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:quarantine_size_mb=8"
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
	SUITE=$(mktemp -d /tmp/berth-test.XXXXXX)
	export BERTH_TEST_SUITE="$SUITE"
	# one podman service for the suite; berthd's own supervised service is
	# tested separately
	mkdir -m 0700 "$SUITE/engine"
	podman system service --time=0 "unix://$SUITE/engine/podman.sock" >"$SUITE/podman.log" 2>&1 &
	PODMAN_PID=$!
	for _ in $(seq 1 300); do
		curl -sf --unix-socket "$SUITE/engine/podman.sock" http://d/_ping >/dev/null && break
		sleep 0.1
	done
	export BERTH_TEST_ENGINE="unix://$SUITE/engine/podman.sock"

	tap="$SUITE/bats.tap"
	# a file BERTH_BATS names that is not there would make bats run nothing
	# (and "0 failed" would read as green)
	missing=0
	for b in ${BERTH_BATS:-}; do
		if [ ! -e "$b" ]; then
			echo "system: $b: no such test file"
			missing=$((missing + 1))
		fi
	done
	failed=$((failed + missing))
	# shellcheck disable=SC2086 # BERTH_BATS may name several files
	bats --tap ${BERTH_BATS_FILTER:+-f "$BERTH_BATS_FILTER"} ${BERTH_BATS:-tests/system} 2>&1 | tee "$tap"
	p=$(grep -c '^ok ' "$tap")
	f=$(grep -c '^not ok ' "$tap")
	passed=$((passed + p))
	failed=$((failed + f))
	planned=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$tap" | head -1)
	if [ -z "$planned" ] && [ "$missing" = 0 ]; then
		echo "system: bats reported no plan"
		failed=$((failed + 1))
	fi
	if [ -n "$planned" ] && [ $((p + f)) -lt "$planned" ]; then
		echo "system: only $((p + f)) of $planned tests reported"
		failed=$((failed + planned - p - f))
	fi
	# ---- browser tests (Playwright driving Debian's Chromium): over HTTP,
	# then over HTTPS with a test CA the browser trusts ----
	for tls in 0 1; do
		[ -z "${BERTH_BATS:-}" ] || break
		btap="$SUITE/browser-$tls.tap"
		BERTH_BIN="$ROOT/build/src" BERTH_ARTIFACTS="$ARTIFACTS" BERTH_BROWSER_TLS=$tls \
			bash tests/browser/run.sh 2>&1 | tee "$btap"
		p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$btap" | tail -1)
		f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$btap" | tail -1)
		# node's runner counts a step that ran past its time as cancelled
		c=$(sed -n 's/^# cancelled \([0-9]*\)$/\1/p' "$btap" | tail -1)
		[ -z "$c" ] || f=$((${f:-0} + c))
		if [ -z "$p" ] && [ -z "$f" ]; then
			echo "browser: the test reported nothing"
			f=1
		fi
		passed=$((passed + ${p:-0}))
		failed=$((failed + ${f:-0}))
	done

	# ---- cluster tests (a three-node Docker Swarm made here; skipped with the
	# reason when the machine cannot host it); BERTH_CLUSTER_TESTS=0 leaves them
	# out; `make test-cluster` runs them on their own. ----
	if [ -z "${BERTH_BATS:-}" ] && [ "${BERTH_CLUSTER_TESTS:-1}" = 0 ]; then
		echo "cluster tests skipped: BERTH_CLUSTER_TESTS=0"
	elif [ -z "${BERTH_BATS:-}" ]; then
		ctap="$SUITE/cluster.out"
		bash tests/cluster/run.sh 2>&1 | tee "$ctap"
		line=$(grep '^cluster: up .* passed, .* failed$' "$ctap" | tail -1)
		if [ -n "$line" ]; then
			p=$(sed 's/.*; \([0-9]*\) passed, \([0-9]*\) failed$/\1/' <<<"$line")
			f=$(sed 's/.*; \([0-9]*\) passed, \([0-9]*\) failed$/\2/' <<<"$line")
			passed=$((passed + p))
			failed=$((failed + f))
		elif ! grep -q '^cluster tests skipped: ' "$ctap"; then
			echo "cluster: the tests reported nothing"
			failed=$((failed + 1))
		fi
	fi

	kill "$PODMAN_PID" 2>/dev/null
	wait "$PODMAN_PID" 2>/dev/null
	cp "$SUITE"/*.log "$ARTIFACTS"/ 2>/dev/null
	rm -rf "$SUITE"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
