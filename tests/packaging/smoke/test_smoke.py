"""Smoke suite for an installed last-call (a wheel or the sdist), run by
`make test` in a fresh venv per Python (scripts/package_smoke.sh). It uses
only the installed package: nothing from the repository is importable."""

from __future__ import annotations

import importlib.metadata
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import last_call
import pytest
from last_call import GracefulShutdownManager

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parents[2]


@pytest.fixture
def manager() -> Iterator[GracefulShutdownManager]:
    manager = GracefulShutdownManager()
    yield manager
    while manager.active_streams:
        manager.decrement_active_streams()


def test_the_installed_package_and_its_library_are_imported() -> None:
    package = Path(last_call.__file__).resolve().parent
    # From the venv's site-packages, not from the repository's sources.
    assert REPOSITORY / "bindings" not in package.parents, (
        f"imported from the sources: {package}"
    )
    assert Path(sys.prefix).resolve() in package.parents, package
    library = package / "liblast_call.so"
    assert library.is_file()
    # The library is loaded lazily, by the first real call.
    last_call.native_version()
    loaded = {Path(path).resolve() for path in _mapped_files()}
    assert library.resolve() in loaded, (
        "the package's own library is not the one loaded"
    )


def test_one_version_everywhere() -> None:
    distribution = importlib.metadata.version("last-call")
    assert last_call.native_version() == distribution
    assert last_call.__version__ == distribution


def test_begin_and_end(manager: GracefulShutdownManager) -> None:
    started, finished = manager.streams_started_total, manager.streams_finished_total
    manager.increment_active_streams()
    manager.increment_active_streams()
    assert manager.active_streams == 2
    manager.decrement_active_streams()
    manager.decrement_active_streams()
    assert manager.active_streams == 0
    assert manager.streams_started_total == started + 2
    assert manager.streams_finished_total == finished + 2
    with pytest.raises(ValueError):
        manager.decrement_active_streams()
    assert manager.active_streams == 0


def test_a_wait_times_out_while_a_stream_is_open(
    manager: GracefulShutdownManager,
) -> None:
    manager.increment_active_streams()
    began = time.monotonic()
    assert manager.wait_for_streams(timeout=0.2) is False
    assert time.monotonic() - began >= 0.2
    assert manager.active_streams == 1


def test_a_wait_is_woken_by_the_last_end(manager: GracefulShutdownManager) -> None:
    manager.increment_active_streams()
    ender = threading.Timer(0.2, manager.decrement_active_streams)
    ender.start()
    began = time.monotonic()
    try:
        assert manager.wait_for_streams(timeout=30) is True
    finally:
        ender.join(30)
    # Woken by the end, not by the 30 s timeout (bounded generously).
    assert time.monotonic() - began < 15
    assert manager.active_streams == 0


def test_sigterm_drains_a_child_and_it_exits_zero() -> None:
    child = _spawn(HERE / "sigterm_child.py")
    try:
        assert _line(child) == "ready"
        child.send_signal(signal.SIGTERM)
        assert _line(child) == "draining"
        assert _line(child) == "stopped after 1 stream(s)"
        assert child.wait(30) == 0
    finally:
        _kill(child)


def test_the_flask_blueprint_serves_the_probes_and_flips_on_sigterm() -> None:
    child = _spawn(HERE / "flask_child.py")
    try:
        port = int(_line(child).removeprefix("port "))
        base = f"http://127.0.0.1:{port}"
        assert _get(base + "/readyz") == (200, "ok")
        assert _get(base + "/healthz") == (200, "alive")
        status, metrics = _get(base + "/metrics")
        assert status == 200 and "gs_phase" in metrics

        child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _get(base + "/readyz")[0] != 503:
            assert time.monotonic() < deadline, "readiness never flipped"
            time.sleep(0.02)
        # Still alive while draining: the liveness probe must not restart it.
        assert _get(base + "/healthz") == (200, "alive")
        assert _line(child) == "stopped"
        assert child.wait(30) == 0
    finally:
        _kill(child)


def test_a_malformed_duration_in_the_environment_is_an_error_naming_it() -> None:
    install = "from last_call import GracefulShutdownManager as M; M().install_signal_handlers()"
    result = subprocess.run(
        [sys.executable, "-c", install],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "GS_DRAIN_DELAY_SECONDS": "soon"},
    )
    assert result.returncode != 0
    assert "ConfigError" in result.stderr and "GS_DRAIN_DELAY_SECONDS" in result.stderr


# ----- helpers -----


def _mapped_files() -> list[str]:
    with open("/proc/self/maps") as maps:
        return [line.split()[-1] for line in maps if line.rstrip().endswith(".so")]


def _spawn(script: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )


def _line(child: subprocess.Popen[str], timeout: float = 30) -> str:
    """The child's next line of stdout, waited for at most `timeout` s."""
    stdout = child.stdout
    assert stdout is not None
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.append(stdout.readline()), daemon=True
    )
    reader.start()
    reader.join(timeout)
    assert lines and lines[0], (
        f"no line from the child within {timeout} s (exit: {child.poll()})"
    )
    return lines[0].strip()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode().strip()


def _kill(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.kill()
    child.wait(30)
    if child.stdout is not None:
        child.stdout.close()
