# kaswatch: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
CARGO ?= cargo
BUILD_DEPS := libpcap-dev pkg-config
TEST_DEPS := $(BUILD_DEPS) tshark tcpreplay prometheus tcpdump iproute2 curl systemd docker-compose util-linux chromium
BENCH_DEPS := $(BUILD_DEPS) tshark hyperfine time python3-cryptography gcc valgrind

.PHONY: demo test build lint bench deps-build deps-test clean

demo: deps-build
	$(CARGO) build --release --quiet
	./target/release/kaswatch read captures/demo.pcapng

build: deps-build
	$(CARGO) build --release

deps-build:
	@tools/deps.sh $(BUILD_DEPS)

deps-test:
	@tools/deps.sh $(TEST_DEPS)
	@tools/pydeps.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --quiet -- -D warnings

# Every test: unit, integration, differential vs tshark, live end-to-end.
test: deps-test lint
	mkdir -p target
	$(CARGO) test --all-targets 2>&1 | tee target/test.log; exit $${PIPESTATUS[0]}

# Three mixes vs the libpcap floor (exact host set asserted first), then table floods vs ordinary
# traffic (fails when a flood takes more than 2x); both always run, either failing fails the target.
bench: deps-build
	@tools/deps.sh $(BENCH_DEPS)
	rc=0; bench/run.sh || rc=1; bench/floods.sh || rc=1; exit $$rc

clean:
	$(CARGO) clean
