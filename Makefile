# kaswatch: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
CARGO ?= cargo
BUILD_DEPS := libpcap-dev pkg-config
TEST_DEPS := $(BUILD_DEPS) tshark tcpreplay prometheus tcpdump iproute2 curl
BENCH_DEPS := $(BUILD_DEPS) tshark hyperfine time python3-cryptography gcc valgrind

.PHONY: demo test build lint bench fuzz deps-build deps-test clean

demo: deps-build
	$(CARGO) build --release --quiet
	./target/release/kaswatch read captures/demo.pcapng

build: deps-build
	$(CARGO) build --release

deps-build:
	@tools/deps.sh $(BUILD_DEPS)

deps-test:
	@tools/deps.sh $(TEST_DEPS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --quiet -- -D warnings

# Every test: unit, integration, differential vs tshark, live end-to-end.
test: deps-test lint
	mkdir -p target
	$(CARGO) test --all-targets 2>&1 | tee target/test.log; exit $${PIPESTATUS[0]}

bench: deps-build
	@tools/deps.sh $(BENCH_DEPS)
	bench/run.sh

# Each cargo-fuzz target for FUZZ_SECONDS (default 60) in turn, on stable via
# RUSTC_BOOTSTRAP=1; fails on any crash (inputs in fuzz/artifacts/). See fuzz/README.md.
FUZZ_SECONDS ?= 60
fuzz: deps-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) tools/fuzz.sh run

clean:
	$(CARGO) clean
