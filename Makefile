# The README's commands:
#   make demo   set up and run the demonstration
#   make test   set up and run every test
#   make bench  run the benchmarks (see BENCHMARKS.md)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
CC ?= cc
BUILD := target/make
# The loom model explores every interleaving with up to this many
# preemptions (5: ~10 s here; unbounded takes ~7 minutes, `make loom-full`).
LOOM_MAX_PREEMPTIONS ?= 5

VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: help setup demo demo-c demo-rust bench rolling test test-rust test-python python loom loom-full lint header c-host

help:
	@echo "make demo   - set up and run the demonstration"
	@echo "make test   - set up and run every test"
	@echo "make demo-rust - the same demonstration on the Rust server"
	@echo "make demo-c - the C host's demonstration"
	@echo "make bench  - run the benchmarks (BENCHMARKS.md)"
	@echo "make rolling - rolling updates behind HAProxy, with and without the runtime"
	@echo "make header - regenerate include/last_call.h"

# Tools the project needs beyond the machine's Rust toolchain, installed by
# the project itself: cargo-nextest (test runner), valgrind, a C compiler.
setup:
	@./scripts/setup.sh

$(BUILD)/c_host: examples/c_host/c_host.c include/last_call.h
	$(CARGO) build --release --lib
	@mkdir -p $(BUILD)
	$(CC) -std=c11 -Wall -Wextra -Werror -pthread -O2 -Iinclude $< \
	  -Ltarget/release -Wl,-rpath,$(CURDIR)/target/release -llast_call -lm -o $@

c-host: setup $(BUILD)/c_host

# The demonstration: the Flask/Waitress example app, a task streaming over
# SSE, and a real SIGTERM mid-task, as a timeline (tools/demo_timeline.py).
demo: setup python
	$(PYTHON) tools/demo_timeline.py --host flask

# The same story told by the Rust example server (tokio + axum).
demo-rust: setup python
	$(CARGO) build --release --example sse_server
	$(PYTHON) tools/demo_timeline.py --host rust

# The C host drains its stream threads, then serves until a real SIGTERM.
demo-c: c-host
	@./scripts/demo_c_host.sh $(BUILD)/c_host

# The Python package: mypy --strict and ruff (settings in its pyproject.toml),
# and ruff on the example app and the Python tests.
PY_LINT_CONFIG := bindings/python/pyproject.toml
PY_LINT_PATHS := bindings/python examples/flask_app

lint: python
	$(PYTHON) -m mypy --config-file $(PY_LINT_CONFIG) bindings/python/src/last_call
	$(PYTHON) -m ruff check --config $(PY_LINT_CONFIG) $(PY_LINT_PATHS)
	$(PYTHON) -m ruff format --check --config $(PY_LINT_CONFIG) bindings/python/src
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --quiet

test-rust:
	$(CARGO) build --all-targets
	$(CARGO) nextest run --lib --tests --examples
	$(CARGO) test --doc

LOOM_CARGO := RUSTFLAGS="--cfg gs_loom" CARGO_TARGET_DIR=$(CURDIR)/target/loom \
  $(CARGO) test --release --manifest-path tests/loom/Cargo.toml --test loom_stream_counter --test loom_delivery

loom:
	LOOM_MAX_PREEMPTIONS=$(LOOM_MAX_PREEMPTIONS) $(LOOM_CARGO)

loom-full:
	$(LOOM_CARGO)

# The Python package, built by pip (setuptools-rust compiles the library),
# with flask, waitress, prometheus_client, pytest and httpx, in .venv.
$(PYTHON):
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip

python: $(PYTHON)
	$(PYTHON) -m pip install -q "./bindings/python[test]" -r examples/flask_app/requirements.txt -r tests/requirements.txt

# The package's tests (in random order: the package's own pytest plugin
# isolates them), the legacy app's tests once more in file order, the
# example app's, the end-to-end contract tests, the manifests, and one round
# of the rolling update behind HAProxy.
test-python: python
	$(PYTHON) -m pytest -q -p no:cacheprovider bindings/python/tests examples/flask_app/tests
	$(PYTHON) -m pytest -q -p no:cacheprovider -p no:randomly \
	  bindings/python/tests/test_legacy_manager.py bindings/python/tests/test_legacy_health.py
	$(PYTHON) -m pytest -q -p no:cacheprovider -p no:randomly tests/e2e tests/kubernetes tests/rolling

# Three rounds of rolling updates behind HAProxy, for both example servers,
# against the baseline (about 2 minutes); the table goes to BENCHMARKS.md.
rolling: setup python
	$(CARGO) build --release --example sse_server
	$(PYTHON) tools/rolling.py --rounds 3

test: setup lint test-rust loom test-python

# Every row of BENCHMARKS.md (about 5 minutes on 2 cores).
bench: setup python
	$(CARGO) build --release --examples
	$(CARGO) bench --bench hot_path
	$(CARGO) bench --bench wake_latency
	$(CARGO) bench --bench signal_to_exit
	$(PYTHON) benches/python_overhead.py
	$(PYTHON) benches/capacity.py --runs 3 --streams 10000
	$(PYTHON) benches/task_flood.py --posts 20000

header:
	GS_UPDATE_HEADER=1 $(CARGO) test --test header_is_fresh
