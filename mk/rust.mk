# The Rust suites (part of `make test`): the workspace's tests, the build
# without the http feature, the loom models, the portable wait, macOS, the
# header. Included by the Makefile.

test-rust: build-rust run-rust

.PHONY: build-rust run-rust
build-rust:
	$(CARGO) build --workspace --all-targets

run-rust:
	$(CARGO) nextest run --workspace --lib --tests --examples
	$(CARGO) test --workspace --doc

# The property tests of what a client controls (the hub's request path
# over real sockets, its request reading, its tokens: every test named
# fuzz_*), with FUZZ_CASES cases each instead of make test's (proptest's
# 256; 128 over sockets). 10,000 each: about 35 s here.
FUZZ_CASES ?= 10000
.PHONY: fuzz
fuzz: setup
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) nextest run --workspace --lib --tests -E 'test(/fuzz_/)'

# The library without its HTTP listeners (`default-features = false`: no
# tokio, no hyper): its unit tests run (here, where the dev-dependencies
# are built), and it builds in a target of its own, so that its
# liblast_call.so does not replace the one the C tests link (a small
# build: no dev-dependencies).
NO_HTTP_CARGO := CARGO_TARGET_DIR=$(CURDIR)/target/no-http $(CARGO)
test-no-http:
	$(CARGO) test --no-default-features --lib
	$(NO_HTTP_CARGO) build --no-default-features
	@if $(NO_HTTP_CARGO) tree --no-default-features -e normal --prefix none | grep -qE '^(tokio|hyper) '; then \
	  echo "test-no-http: tokio or hyper is in the build without the http feature"; exit 1; fi

# The loom models build the core crate alone (crates/core: no tokio, no
# hyper), with the one switch `--cfg loom`, in a target of their own.
LOOM_CARGO := RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=$(CURDIR)/target/loom \
  $(CARGO) test --release -p last-call-core --test loom_stream_counter --test loom_delivery

loom:
	LOOM_MAX_PREEMPTIONS=$(LOOM_MAX_PREEMPTIONS) $(LOOM_CARGO)

loom-full:
	$(LOOM_CARGO)

# The portable wait primitive (std Mutex + Condvar, the one used off Linux)
# forced on Linux by the `portable-wait` feature: the suites of the two
# crates that wait on it (crates/core's wait word, counter, phase and
# delivery; crates/runtime's sequence, hooks, watchdog and signals) and the
# loom model run over it. The crates above wait only through the runtime's
# API, whose tests these are; rebuilding them for the feature cost two
# minutes of `make test` and tested the futex-free path no further.
PORTABLE_CRATES := -p last-call-core -p last-call-runtime
test-portable:
	$(CARGO) clippy $(PORTABLE_CRATES) --all-targets --features portable-wait -- -D warnings
	$(CARGO) nextest run $(PORTABLE_CRATES) --features portable-wait --lib --tests
	LOOM_MAX_PREEMPTIONS=$(LOOM_MAX_PREEMPTIONS) $(LOOM_CARGO) --features portable-wait

# check-macos is in packaging.mk: it needs the packaging venv's zig.

# BENCHMARKS.md's rows for the portable wait primitive, beside the futex's:
# the single-thread hot-path rows and the wake latency.
bench-portable:
	$(CARGO) bench --features portable-wait --bench hot_path -- '1 thread'
	$(CARGO) bench --features portable-wait --bench wake_latency

header:
	GS_UPDATE_HEADER=1 $(CARGO) test --test header_is_fresh
