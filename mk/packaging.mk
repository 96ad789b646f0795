# Packaging (part of `make test`): the wheel, the sdist, and their tests in
# fresh venvs; `make install`'s test. Included by the Makefile.

PACKAGING := target/packaging
# One release target for the shipped library, however it is built: the
# Python package (pip, `make python`), the sdist's smoke build and
# `make install` use the same profile (no debug info, stripped, as
# bindings/python/setup.py sets it), so the dependencies compile once for
# the three. (The wheel is built for glibc 2.17 by zig: a target of its
# own.)
RELEASE_TARGET := $(CURDIR)/target/python
RELEASE_PROFILE := --config profile.release.debug=false --config 'profile.release.strip="symbols"'

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

# The library builds for macOS (the portable wait, libc's names there).
# ring (rustls's cryptography, for TLS to Redis) compiles C for the target,
# which the system's gcc cannot do for macOS: cargo-zigbuild has zig do it,
# from the packaging venv. Needs rustup's darwin standard library; where it
# cannot be installed, says so.
check-macos: $(PACKAGING_TOOLS)
	@if rustup target add x86_64-apple-darwin >/dev/null 2>&1; then \
	  zig=$$($(PACKAGING_PYTHON) -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))'); \
	  PATH="$$zig:$(CURDIR)/$(PACKAGING_VENV)/bin:$$PATH" cargo-zigbuild check --lib --target x86_64-apple-darwin; \
	else \
	  echo "check-macos: SKIPPED, the x86_64-apple-darwin standard library cannot be installed here"; \
	fi

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
	CARGO_TARGET_DIR=$(RELEASE_TARGET) ./scripts/package_smoke.sh $(PACKAGING_PYTHON) $(DIST)/last_call-*.tar.gz \
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
