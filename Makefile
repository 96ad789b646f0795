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

.PHONY: help setup demo demo-c demo-rust bench rolling test test-rust test-python test-readme python loom loom-full lint header c-host
.PHONY: test-no-http test-portable bench-portable check-macos wheel sdist install lint-packaging test-packaging test-wheel test-sdist test-install

help:
	@echo "make demo   - set up and run the demonstration"
	@echo "make test   - set up and run every test"
	@echo "make demo-rust - the same demonstration on the Rust server"
	@echo "make demo-c - the C host's demonstration"
	@echo "make bench  - run the benchmarks (BENCHMARKS.md)"
	@echo "make rolling - rolling updates behind HAProxy, with and without the runtime (tables, report page)"
	@echo "make report-screenshot - the README's picture of the report page (docs/rolling-report.png)"
	@echo "make header - regenerate include/last_call.h"
	@echo "make wheel  - the manylinux wheel (target/packaging/dist)"
	@echo "make sdist  - the source distribution (target/packaging/dist)"
	@echo "make install PREFIX=/usr/local - header, libraries, pkg-config file"
	@echo "make lint   - rustfmt, clippy, rustdoc, mypy --strict, ruff"
	@echo "make fuzz   - the property tests of the hub's request path and tokens, FUZZ_CASES (10000) cases each"
	@echo "make test-rust, test-python, test-readme, test-packaging, loom - parts of make test"

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
# SSE, and a real SIGTERM mid-task, as a timeline (tools/demo_timeline.py),
# printed and drawn (target/demo-timeline-flask.svg).
demo: setup python
	$(PYTHON) tools/demo_timeline.py --host flask

# The same story told by the Rust example server (tokio + axum).
demo-rust: setup python
	$(CARGO) build --release --features axum --example sse_server
	$(PYTHON) tools/demo_timeline.py --host rust

# The C host drains its stream threads, then serves until a real SIGTERM.
demo-c: c-host
	@./scripts/demo_c_host.sh $(BUILD)/c_host

# The Flask example under gunicorn: one gthread worker with THREADS threads
# and the last_call.gunicorn config module (docs/gunicorn.md).
.PHONY: flask-gunicorn
flask-gunicorn: python
	cd examples/flask_app && ../../$(PYTHON) serve_gunicorn.py

# Every test, from a fresh clone (about 20 minutes on two cores, as the
# README says; more when the machine is shared). After a
# common start (the lint, which builds the Python package, and the Rust
# build), two lanes run at once, so that the suites that mostly wait on
# real servers, signals and timers overlap the ones that mostly compile:
#   lane-compile: no-http, loom, the portable wait, macOS, packaging
#                 (wheel, sdist, make install) and the README's quick starts;
#   lane-run:     the Rust suites' run and the Python suites.
# Each lane runs its parts in order; make prints a lane's output when the
# lane is done (--output-sync). The parts are in mk/: rust.mk, python.mk,
# packaging.mk.
test: setup lint build-rust
	$(MAKE) --no-print-directory -j2 --output-sync=recurse lane-compile lane-run

.PHONY: lane-compile lane-run
lane-compile:
	$(MAKE) --no-print-directory -j1 test-no-http loom test-portable check-macos test-packaging readme-suite
lane-run:
	$(MAKE) --no-print-directory -j1 run-rust python-suites

# Every row of BENCHMARKS.md (about 40 minutes on 2 cores).
bench: setup python
	# The hub's peers (nginx with nchan, Pushpin), for benches/peers.py.
	@./scripts/setup.sh --bench
	$(CARGO) build --release --features axum --examples
	$(CARGO) bench --bench hot_path
	$(CARGO) bench --bench wake_latency
	$(CARGO) bench --bench signal_to_exit
	# What axum's tracked Sse adds per event and per stream (issue 28).
	$(CARGO) bench --features axum --bench axum_stream
	$(MAKE) bench-portable
	$(PYTHON) benches/python_overhead.py
	$(PYTHON) benches/capacity.py --runs 3 --streams 10000
	$(PYTHON) benches/task_flood.py --posts 20000
	$(PYTHON) benches/probe_latency.py --probes 1000
	# The kubelet's probe through a flood of the probe port (issue 27).
	$(PYTHON) benches/probe_flood.py --held 10000
	# Each host's reconnect spread, 200 resumable streams, one run (issue 22).
	$(PYTHON) benches/reconnect_spread.py --streams 200
	# The stream hub (issue 18): capacity in the Flask app beside
	# thread-per-stream, publish cost, fan-out and disconnect detection.
	$(PYTHON) benches/hub_capacity.py --streams 10000
	$(PYTHON) benches/hub_publish.py
	# The publish call to 10,000 subscribers beside 1, from Rust (issue 25).
	target/release/examples/hub_publish_cost --subscribers 10000
	target/release/examples/hub_load --fanout 9000 --events 50 --disconnects 50
	# Where a hub stream's memory goes, by allocation size.
	target/release/examples/hub_memory --streams 10000
	# The shared store on Redis (issue 24): publish on pod A to receipt on
	# pod B, Redis's work and memory per event and channel, 2,000 resumes
	# at once and spread; a Python publish with Redis beside memory.
	target/release/examples/hub_store_bench --rates 1000,10000 --seconds 10
	$(PYTHON) benches/hub_publish_store.py
	# The hub beside nchan (1 and 2 workers) and Pushpin, the same client
	# against each in turn, 3 rounds (issue 25; about 12 minutes).
	$(PYTHON) benches/peers.py --rounds 3

include mk/rust.mk mk/python.mk mk/packaging.mk mk/install.mk
