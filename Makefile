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
.PHONY: test-portable bench-portable check-macos wheel sdist install lint-packaging test-packaging test-wheel test-sdist test-install

help:
	@echo "make demo   - set up and run the demonstration"
	@echo "make test   - set up and run every test"
	@echo "make demo-rust - the same demonstration on the Rust server"
	@echo "make demo-c - the C host's demonstration"
	@echo "make bench  - run the benchmarks (BENCHMARKS.md)"
	@echo "make rolling - rolling updates behind HAProxy, with and without the runtime"
	@echo "make header - regenerate include/last_call.h"
	@echo "make wheel  - the manylinux wheel (target/packaging/dist)"
	@echo "make sdist  - the source distribution (target/packaging/dist)"
	@echo "make install PREFIX=/usr/local - header, libraries, pkg-config file"
	@echo "make lint   - rustfmt, clippy, rustdoc, mypy --strict, ruff"
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

# The Flask example under gunicorn: one gthread worker with THREADS threads
# and the last_call.gunicorn config module (docs/gunicorn.md).
.PHONY: flask-gunicorn
flask-gunicorn: python
	cd examples/flask_app && ../../$(PYTHON) serve_gunicorn.py

# The Python package: mypy --strict and ruff (settings in its pyproject.toml),
# and ruff on the example app and the Python tests.
PY_LINT_CONFIG := bindings/python/pyproject.toml
PY_LINT_PATHS := bindings/python examples/flask_app examples/asgi_app tests/readme

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

# The portable wait primitive (std Mutex + Condvar, the one used off Linux)
# forced on Linux by the `portable-wait` feature: the full Rust suite and
# the loom model run over it.
test-portable:
	$(CARGO) clippy --all-targets --features portable-wait -- -D warnings
	$(CARGO) build --all-targets --features portable-wait
	$(CARGO) nextest run --features portable-wait --lib --tests --examples
	LOOM_MAX_PREEMPTIONS=$(LOOM_MAX_PREEMPTIONS) $(LOOM_CARGO) --features portable-wait

# The core builds for macOS (the portable wait, libc's names there). Needs
# rustup's darwin standard library; where it cannot be installed, says so.
check-macos:
	@if rustup target add x86_64-apple-darwin >/dev/null 2>&1; then \
	  $(CARGO) check --lib --target x86_64-apple-darwin; \
	else \
	  echo "check-macos: SKIPPED, the x86_64-apple-darwin standard library cannot be installed here"; \
	fi

# BENCHMARKS.md's rows for the portable wait primitive, beside the futex's:
# the single-thread hot-path rows and the wake latency.
bench-portable:
	$(CARGO) bench --features portable-wait --bench hot_path -- '1 thread'
	$(CARGO) bench --features portable-wait --bench wake_latency

# The Python package, built by pip (setuptools-rust compiles the library),
# with flask, waitress, prometheus_client, pytest and httpx, in .venv.
$(PYTHON):
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip

# pip builds in bindings/python/build, which keeps modules deleted since the
# last build: cleared first, so that none is installed again.
python: $(PYTHON)
	rm -rf bindings/python/build
	$(PYTHON) -m pip install -q ./bindings/python -r bindings/python/requirements-test.txt -r examples/flask_app/requirements.txt -r examples/asgi_app/requirements.txt -r tests/requirements.txt

# The package's tests (in random order: the package's own pytest plugin
# isolates them), the legacy app's tests once more in file order, the
# example app's, the end-to-end contract tests, the README's quick starts,
# the manifests, and one round of the rolling update behind HAProxy.
test-python: python
	$(PYTHON) -m pytest -q -p no:cacheprovider bindings/python/tests examples/flask_app/tests
	$(PYTHON) -m pytest -q -p no:cacheprovider -p no:randomly \
	  bindings/python/tests/test_legacy_manager.py bindings/python/tests/test_legacy_health.py
	$(PYTHON) -m pytest -q -p no:cacheprovider -p no:randomly tests/e2e tests/readme tests/kubernetes tests/rolling

# The README's quick starts, run as written (tests/readme): each Python one
# in a fresh venv with a real SIGTERM, the Rust one built and run, the C one
# built against `make install` into a temporary prefix.
test-readme: python
	$(PYTHON) -m pytest -q -p no:cacheprovider -p no:randomly tests/readme

# Rolling updates where things go wrong (tools/rolling.py): every scenario,
# every host in tools/hosts.py, each beside its baseline, run by the kubelet
# stand-in from examples/kubernetes/deployment.yaml (as root: PID namespaces
# and cgroups); the tables go to BENCHMARKS.md. `make test` runs the short
# version (tests/rolling).
# One round keeps the whole run near 14 minutes on two cores (two: ~24).
ROLLING_ROUNDS ?= 1
rolling: setup python
	$(CARGO) build --release --example sse_server
	$(PYTHON) tools/rolling.py --rounds $(ROLLING_ROUNDS) --replicas 2 --json target/rolling.json --markdown target/rolling.md

test: setup lint test-rust loom test-portable check-macos test-packaging test-python

# Every row of BENCHMARKS.md (about 5 minutes on 2 cores).
bench: setup python
	$(CARGO) build --release --examples
	$(CARGO) bench --bench hot_path
	$(CARGO) bench --bench wake_latency
	$(CARGO) bench --bench signal_to_exit
	$(MAKE) bench-portable
	$(PYTHON) benches/python_overhead.py
	$(PYTHON) benches/capacity.py --runs 3 --streams 10000
	$(PYTHON) benches/task_flood.py --posts 20000
	$(PYTHON) benches/probe_latency.py --probes 1000
	# Each host's reconnect spread, 200 resumable streams, one run (issue 22).
	$(PYTHON) benches/reconnect_spread.py --streams 200
	# The stream hub (issue 18): capacity in the Flask app beside
	# thread-per-stream, publish cost, fan-out and disconnect detection.
	$(PYTHON) benches/hub_capacity.py --streams 10000
	$(PYTHON) benches/hub_publish.py
	target/release/examples/hub_load --fanout 9000 --events 50 --disconnects 50
	# Where a hub stream's memory goes, by allocation size.
	target/release/examples/hub_memory --streams 10000

header:
	GS_UPDATE_HEADER=1 $(CARGO) test --test header_is_fresh

# ----- Packaging: the wheel, the sdist, make install -----------------------

PACKAGING := target/packaging
PACKAGING_VENV := $(PACKAGING)/tools
PACKAGING_PYTHON := $(PACKAGING_VENV)/bin/python
# The venv's python is a link to an old file: make dates the venv by a stamp.
PACKAGING_TOOLS := $(PACKAGING_VENV)/installed
DIST := $(PACKAGING)/dist
# The wheel's library is linked by zig against glibc 2.17, the oldest that
# Rust's std supports, so that the wheel is manylinux2014 (manylinux_2_17):
# built natively against this machine's glibc 2.36 it would need
# manylinux_2_34 (pthread_* and dlsym moved into libc.so.6 in 2.34).
ARCH := $(shell uname -m)
WHEEL_TARGET := $(ARCH)-unknown-linux-gnu.2.17
WHEEL_PLATFORM := manylinux_2_17_$(ARCH)
# Every Python from 3.9 to 3.13 that pyenv provides here (python3 alone
# where there is no pyenv).
SMOKE_PYTHONS := $(shell if command -v pyenv >/dev/null 2>&1; then \
  root=$$(pyenv root); for v in $$(pyenv versions --bare --skip-aliases); do \
  case $$v in (3.9.*|3.1[0-3].*) echo "$$root/versions/$$v/bin/python";; esac; done; \
  else command -v python3; fi)

$(PACKAGING_TOOLS): bindings/python/requirements-build.txt
	rm -rf $(PACKAGING_VENV)
	python3 -m venv $(PACKAGING_VENV)
	$(PACKAGING_PYTHON) -m pip install -q --disable-pip-version-check -r $<
	touch $@

# One wheel for every Python 3 on x86_64 Linux: py3-none-manylinux2014.
wheel: $(PACKAGING_TOOLS)
	rm -rf $(PACKAGING)/raw $(DIST)/*.whl bindings/python/build
	zig=$$($(PACKAGING_PYTHON) -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))'); \
	PATH="$$zig:$(CURDIR)/$(PACKAGING_VENV)/bin:$$PATH" CARGO=$(CURDIR)/scripts/cargo-zig.sh \
	  CARGO_BUILD_TARGET=$(WHEEL_TARGET) CARGO_TARGET_DIR=$(CURDIR)/target/zig \
	  $(PACKAGING_PYTHON) -m build --wheel --outdir $(PACKAGING)/raw bindings/python
	PATH="$(CURDIR)/$(PACKAGING_VENV)/bin:$$PATH" $(PACKAGING_PYTHON) -m auditwheel repair \
	  --plat $(WHEEL_PLATFORM) -w $(DIST) $(PACKAGING)/raw/*.whl
	@ls -l $(DIST)/*.whl

sdist: $(PACKAGING_TOOLS)
	rm -f $(DIST)/*.tar.gz
	$(PACKAGING_PYTHON) -m build --sdist --outdir $(DIST) bindings/python
	@ls -l $(DIST)/*.tar.gz

# The wheel's tag, size and stripping; then that same wheel in a fresh venv
# per Python, with the smoke suite.
test-wheel: wheel
	LAST_CALL_DIST=$(DIST) $(PACKAGING_PYTHON) -m pytest -q -p no:cacheprovider tests/packaging/test_wheel.py
	./scripts/package_smoke.sh $(PACKAGING_PYTHON) $(DIST)/last_call-*.whl $(PACKAGING)/smoke-wheel $(SMOKE_PYTHONS)

# The sdist's contents; then `pip install` of it in a fresh venv (it builds
# the crate it carries) and the smoke suite, on the oldest Python found (its
# build reads Cargo.toml with tomli; the wheel's build covers tomllib).
test-sdist: sdist
	LAST_CALL_DIST=$(DIST) $(PACKAGING_PYTHON) -m pytest -q -p no:cacheprovider tests/packaging/test_sdist.py
	CARGO_TARGET_DIR=$(CURDIR)/target/sdist ./scripts/package_smoke.sh $(PACKAGING_PYTHON) $(DIST)/last_call-*.tar.gz \
	  $(PACKAGING)/smoke-sdist $(firstword $(SMOKE_PYTHONS))

# make install into a temporary prefix; the C host built from it with
# pkg-config, run, and its library's soname checked.
test-install: $(PACKAGING_TOOLS)
	$(PACKAGING_PYTHON) -m pytest -q -p no:cacheprovider tests/packaging/test_install.py

# The packaging code itself: setup.py and these tests.
lint-packaging: $(PACKAGING_TOOLS)
	$(PACKAGING_VENV)/bin/ruff check bindings/python/setup.py tests/packaging
	$(PACKAGING_VENV)/bin/ruff format --check bindings/python/setup.py tests/packaging
	$(PACKAGING_VENV)/bin/mypy --strict bindings/python/setup.py
	$(PACKAGING_VENV)/bin/mypy --strict tests/packaging/conftest.py tests/packaging/test_*.py

test-packaging: lint-packaging test-wheel test-sdist test-install

# ----- make install PREFIX=... (C users) -------------------------------------
# The header, the shared library with a versioned soname and its symlinks,
# the static library, and a pkg-config file (last_call.pc). Linux (ELF).

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# The ABI version in the soname: the major, or 0.minor before 1.0 (where a
# minor release may break the ABI), as Cargo's semver reads versions.
SOVERSION := $(shell echo $(VERSION) | awk -F. '{ print ($$1 == 0) ? $$1 "." $$2 : $$1 }')
INSTALL_TARGET_DIR := target/install
# A program linked with `pkg-config --libs last_call` must find the library
# at run time as built, with no ldconfig (which needs root, and does not
# cover a prefix outside ld.so.conf) and no LD_LIBRARY_PATH. So the .pc
# file's Libs carries `-Wl,-rpath,${libdir}` for any LIBDIR the dynamic
# loader does not search by itself (/usr/local/lib included: it is in
# ld.so.conf only through the cache that ldconfig writes). Packagers
# installing to a system directory get no rpath, or set PC_RPATH= to drop it.
SYSTEM_LIBDIRS := /lib /usr/lib /lib64 /usr/lib64 $(addprefix /usr/lib/,$(shell $(CC) -print-multiarch 2>/dev/null))
PC_RPATH ?= $(if $(filter $(abspath $(LIBDIR)),$(SYSTEM_LIBDIRS)),,-Wl,-rpath,$${libdir})

install:
	CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo \
	  $(CARGO) rustc --locked --release --lib --crate-type cdylib,staticlib \
	  --target-dir $(INSTALL_TARGET_DIR) -- -C link-arg=-Wl,-soname,liblast_call.so.$(SOVERSION)
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 include/last_call.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 755 $(INSTALL_TARGET_DIR)/release/liblast_call.so $(DESTDIR)$(LIBDIR)/liblast_call.so.$(VERSION)
	ln -sf liblast_call.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblast_call.so.$(SOVERSION)
	ln -sf liblast_call.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/liblast_call.so
	install -m 644 $(INSTALL_TARGET_DIR)/release/liblast_call.a $(DESTDIR)$(LIBDIR)/
	# The archive carries the debug info of std and the crates (22 MB; 13.6 MB without).
	strip --strip-debug $(DESTDIR)$(LIBDIR)/liblast_call.a
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	  -e 's|@VERSION@|$(VERSION)|' -e 's|@RPATH@|$(PC_RPATH)|' pkgconfig/last_call.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/last_call.pc
