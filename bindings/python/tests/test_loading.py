"""Lazy loading: the package, its enums, its errors and the no-op manager
work without the native library; the first real call loads it, and a
missing or wrong-version library is one clear ImportError."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import last_call
import pytest

NO_LIBRARY_SCRIPT = textwrap.dedent(
    """
    import last_call
    from last_call import (GracefulShutdownError, InvalidStateError, NoActiveStreamError,
                           NoopGracefulShutdownManager, Phase, SecondSignal, Status)
    from last_call import flask, wsgi, testing          # importable too
    noop = NoopGracefulShutdownManager()
    noop.increment_active_streams()
    noop.begin_shutdown()
    assert noop.phase is Phase.DRAINING and noop.is_draining()
    noop.decrement_active_streams()
    assert noop.wait_for_phase(Phase.STOPPED, 1)
    try:
        noop.decrement_active_streams()
    except NoActiveStreamError as error:
        assert isinstance(error, GracefulShutdownError) and error.status == Status.NO_ACTIVE_STREAM
    testing.reset()                                     # nothing loaded: nothing to reset
    try:
        last_call.GracefulShutdownManager()
    except ImportError as error:
        print("IMPORT ERROR:", type(error).__name__, error)
    """
)


def run_python(code: str, library: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "LAST_CALL_LIBRARY": library},
    )


def test_import_and_the_noop_manager_work_without_the_library(tmp_path):
    missing = tmp_path / "nowhere" / "liblast_call.so"
    result = run_python(NO_LIBRARY_SCRIPT, str(missing))
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("IMPORT ERROR: LibraryLoadError")
    assert str(missing) in line, "the error must say what was searched"
    assert last_call.__version__ in line


def test_a_file_that_is_not_a_library_is_an_import_error(tmp_path):
    wrong = tmp_path / "liblast_call.so"
    wrong.write_text("not a shared library")
    result = run_python("import last_call; last_call.GracefulShutdownManager()", str(wrong))
    assert result.returncode != 0
    assert "LibraryLoadError" in result.stderr and "cannot load" in result.stderr


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs the system C compiler")
def test_a_library_of_another_version_names_both_versions(tmp_path):
    source = tmp_path / "old.c"
    source.write_text('const char *gs_version(void) { return "0.0.1"; }\n')
    old = tmp_path / "liblast_call.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(old), str(source)], check=True, timeout=60)
    result = run_python("import last_call; last_call.native_version()", str(old))
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("last_call.errors.LibraryLoadError")
    assert "version 0.0.1" in message and f"version {last_call.__version__}" in message
    assert "gs_increment_active_streams" in message, "it says which functions are missing"
    assert "AttributeError" not in result.stderr


def test_the_error_is_an_import_error_and_a_package_error():
    assert issubclass(last_call.LibraryLoadError, ImportError)
    assert issubclass(last_call.LibraryLoadError, last_call.GracefulShutdownError)


def test_the_native_version_matches_the_package():
    assert last_call.native_version() == last_call.__version__
