#!/usr/bin/env bash
# Installs one built distribution of last-call (a wheel or an sdist) into a
# fresh venv per interpreter and runs the smoke suite (tests/packaging/smoke)
# against it. Usage: package_smoke.sh PIP DISTRIBUTION WORKDIR PYTHON...
# PIP is a python with pip (the packaging tools venv's): it installs into
# each venv with `pip --python`, so that the venvs need no pip of their own
# (creating one with pip costs ~10 s per interpreter).
set -euo pipefail

pip_python=$1
distribution=$2
workdir=$3
shift 3
if (($# == 0)); then
  echo "package_smoke: no Python interpreter given" >&2
  exit 2
fi

# One interpreter's venv, install and smoke suite; its output to a log.
smoke() {
  local python=$1 version venv
  version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv="$workdir/py$version"
  echo "package_smoke: $(basename "$distribution") on Python $version"
  rm -rf "$venv"
  "$python" -m venv --without-pip "$venv"
  "$pip_python" -m pip --python "$venv/bin/python" install -q --disable-pip-version-check \
    "$distribution" flask pytest pytest-timeout
  "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/packaging/smoke
}

# The interpreters at once (each mostly waits on pip and on its suite's
# servers); their logs in order, then the first failure's status.
mkdir -p "$workdir"
pids=()
for python in "$@"; do
  log="$workdir/$(basename "$(dirname "$(dirname "$python")")").log"
  smoke "$python" >"$log" 2>&1 &
  pids+=("$!:$log")
done
status=0
for entry in "${pids[@]}"; do
  pid=${entry%%:*}
  log=${entry#*:}
  if ! wait "$pid"; then
    status=1
  fi
  cat "$log"
done
exit "$status"
