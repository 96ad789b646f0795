"""Shared fixtures for the artifact checks: where `make wheel` / `make
sdist` put the distributions (LAST_CALL_DIST), and the one of each kind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _only(pattern: str) -> Path:
    dist = Path(os.environ.get("LAST_CALL_DIST", "target/packaging/dist"))
    found = sorted(dist.glob(pattern))
    if len(found) != 1:
        pytest.fail(
            f"expected one {pattern} in {dist}, found {found}: run make wheel / make sdist"
        )
    return found[0]


@pytest.fixture(scope="session")
def wheel() -> Path:
    return _only("last_call-*.whl")


@pytest.fixture(scope="session")
def sdist() -> Path:
    return _only("last_call-*.tar.gz")
