#!/usr/bin/env bash
# Installs one built distribution of last-call (a wheel or an sdist) into a
# fresh venv per interpreter and runs the smoke suite (tests/packaging/smoke)
# against it. Usage: package_smoke.sh DISTRIBUTION WORKDIR PYTHON...
set -euo pipefail

distribution=$1
workdir=$2
shift 2
if (($# == 0)); then
  echo "package_smoke: no Python interpreter given" >&2
  exit 2
fi

# The same test tools in every venv; the package itself comes only from
# the distribution (--no-index for it would also bar its dependencies,
# of which it has none today, so plain install from the file is enough).
smoke_requirements=(flask pytest pytest-timeout)

for python in "$@"; do
  version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv="$workdir/py$version"
  echo "package_smoke: $(basename "$distribution") on Python $version"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$distribution" "${smoke_requirements[@]}"
  "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/packaging/smoke
done
