# The Python package and its suites (part of `make test`), the lint of
# both languages, and the rolling-update harness. Included by the Makefile.

# The Python package: mypy --strict and ruff (settings in its pyproject.toml),
# and ruff on the example app and the Python tests.
PY_LINT_CONFIG := bindings/python/pyproject.toml
PY_LINT_PATHS := bindings/python examples/flask_app examples/asgi_app examples/django_app tests/readme

lint: python
	$(PYTHON) -m mypy --config-file $(PY_LINT_CONFIG) bindings/python/src/last_call
	$(PYTHON) -m ruff check --config $(PY_LINT_CONFIG) $(PY_LINT_PATHS)
	$(PYTHON) -m ruff format --check --config $(PY_LINT_CONFIG) bindings/python/src
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet

# The Python package, built by pip (setuptools-rust compiles the library),
# with the examples' frameworks and servers (Flask, Waitress, Starlette,
# uvicorn, gunicorn, Django), prometheus_client, pytest and httpx, in .venv.
$(PYTHON):
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip

# pip builds in bindings/python/build, which keeps modules deleted since the
# last build: cleared first, so that none is installed again.
python: $(PYTHON)
	rm -rf bindings/python/build
	$(PYTHON) -m pip install -q ./bindings/python -r bindings/python/requirements-test.txt -r examples/flask_app/requirements.txt -r examples/asgi_app/requirements.txt -r examples/django_app/requirements.txt -r tests/requirements.txt

# The package's tests (in random order: the package's own pytest plugin
# isolates them), the legacy app's tests once more in file order, the
# example app's, the end-to-end contract tests and the demo's picture,
# the manifests with their dashboard and alert rules (promtool), and one
# round of the rolling update behind HAProxy, its report page opened in
# headless Chromium; then the README's quick starts. The suites run on PYTEST_WORKERS processes (pytest-xdist): their
# tests mostly wait on real servers, signals and timers, so four share two
# cores well.
PYTEST_WORKERS ?= 4
test-python: python
	$(MAKE) --no-print-directory python-suites readme-suite

# The suites on an installed package (`make python`), without the README's
# quick starts (they build the package, and `make test` runs them in the
# lane that builds).
.PHONY: python-suites
python-suites:
	$(PYTHON) -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) bindings/python/tests examples/flask_app/tests
	$(PYTHON) -m pytest -q -p no:cacheprovider -p no:randomly \
	  bindings/python/tests/test_legacy_manager.py bindings/python/tests/test_legacy_health.py
	$(PYTHON) -m pytest -q -p no:cacheprovider -p no:randomly -n $(PYTEST_WORKERS) tests/e2e tests/kubernetes tests/rolling

# The README's quick starts, run as written (tests/readme): each Python one
# in a fresh venv with a real SIGTERM, the Rust one built and run, the C one
# built against `make install` into a temporary prefix. (readme-suite: on
# the package `make python` installed; `make test` runs it so, because a
# second `make python` would reinstall the package under the suites running
# in the other lane.)
.PHONY: readme-suite
test-readme: python
	$(MAKE) --no-print-directory readme-suite

readme-suite:
	$(PYTHON) -m pytest -q -p no:cacheprovider -p no:randomly tests/readme

# Rolling updates where things go wrong (tools/rolling.py): every scenario,
# every host in tools/hosts.py, each beside its baseline, run by the kubelet
# stand-in from examples/kubernetes/deployment.yaml (as root: PID namespaces
# and cgroups); the tables go to BENCHMARKS.md. `make test` runs the short
# version (tests/rolling). The handoff scenario runs on the hub host only
# (3 replicas, one round, no baseline; about 45 s).
# One round keeps the whole run near 21 minutes on two cores (seven hosts).
# Beside the tables (target/rolling.md) it writes the report page,
# target/rolling.html (tools/rolling_report.py), and prints its path last.
ROLLING_ROUNDS ?= 1
rolling: setup python
	$(CARGO) build --release --features axum --example sse_server
	$(PYTHON) tools/rolling.py --rounds $(ROLLING_ROUNDS) --replicas 2 --json target/rolling.json --markdown target/rolling.md

# The README's picture of the report page (docs/rolling-report.png): the
# saturated scenario on the Rust server beside its baseline, on the
# manifest's clock (about 2 minutes, as root), its section of the page
# captured by headless Chromium (tools/headless_page.py, which checks the
# page first).
SCREENSHOT_RUN := target/report-screenshot
.PHONY: report-screenshot
report-screenshot: setup python
	$(CARGO) build --release --features axum --example sse_server
	@mkdir -p $(SCREENSHOT_RUN)
	$(PYTHON) tools/rolling.py --rounds 1 --replicas 2 --scenario saturated --host rust --no-browsers \
	  --json $(SCREENSHOT_RUN)/rolling.json --markdown $(SCREENSHOT_RUN)/rolling.md
	$(PYTHON) tools/headless_page.py $(SCREENSHOT_RUN)/rolling.html docs/rolling-report.png --element saturated-rust
