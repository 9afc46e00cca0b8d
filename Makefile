# The two README commands, and a few for developers. The build itself is Meson.
#   make        build (build/)
#   make run    set up the host, build, start berthd on http://127.0.0.1:7878
#   make test   set up the host, build (also with ASan+UBSan), run every test
DATA ?= $(CURDIR)/.berth-data
LISTEN ?= 127.0.0.1:7878

.PHONY: all setup build build-asan run test unit system bench bench-ports format clean test-cluster

all: build

setup:
	bash scripts/setup.sh --data "$(DATA)"

build:
	@test -f build/build.ninja || meson setup build --buildtype=debugoptimized >/dev/null
	ninja -C build

build-asan:
	@test -f build-asan/build.ninja || meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
	ninja -C build-asan

run: setup build
	bash scripts/run.sh --data "$(DATA)" --listen "$(LISTEN)"

test: setup build build-asan
	bash scripts/test.sh

unit: build-asan
	bash scripts/test.sh --unit-only

# A three-node Docker Swarm on this machine and the tests against it
# (tests/cluster/); prints "cluster tests skipped: REASON" where it cannot run.
# `make test` runs them too (BERTH_CLUSTER_TESTS=0 leaves them out).
test-cluster:
	bash tests/cluster/run.sh

bench: setup build
	bash bench/create.sh

bench-ports: setup build
	bash bench/ports.sh

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c')

clean:
	rm -rf build build-asan
