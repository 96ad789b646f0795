"""`make install PREFIX=...` into a temporary prefix: the header, the shared
library with its versioned soname and symlinks, the static library and the
pkg-config file; the C host example built from the prefix with pkg-config
(shared and static) and run, with a real SIGTERM."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
C_HOST = REPOSITORY / "examples/c_host/c_host.c"
CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread", "-O2"]


def _version() -> str:
    manifest = (REPOSITORY / "Cargo.toml").read_text()
    found = re.search(r'^version = "([^"]+)"', manifest, re.MULTILINE)
    assert found
    return found.group(1)


VERSION = _version()
MAJOR, MINOR, _ = VERSION.split(".")
SOVERSION = f"{MAJOR}.{MINOR}" if MAJOR == "0" else MAJOR


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("prefix")
    subprocess.run(
        ["make", "-C", str(REPOSITORY), "install", f"PREFIX={prefix}"],
        check=True,
        timeout=600,
    )
    return prefix


def _pkg_config(prefix: Path, *args: str) -> list[str]:
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib/pkgconfig"))
    output = subprocess.run(
        ["pkg-config", *args, "last_call"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return shlex.split(output)


def _readelf(*args: str) -> str:
    return subprocess.run(
        ["readelf", *args], check=True, capture_output=True, text=True
    ).stdout


def _dynamic(path: Path, tag: str) -> list[str]:
    return re.findall(rf"\({tag}\)\s+.*\[(.+)\]", _readelf("-d", str(path)))


def test_the_prefix_holds_the_header_libraries_links_and_pkg_config_file(
    prefix: Path,
) -> None:
    lib = prefix / "lib"
    assert (prefix / "include/last_call.h").read_text() == (
        REPOSITORY / "include/last_call.h"
    ).read_text()
    real = lib / f"liblast_call.so.{VERSION}"
    assert real.is_file() and not real.is_symlink()
    assert os.readlink(lib / f"liblast_call.so.{SOVERSION}") == real.name
    assert os.readlink(lib / "liblast_call.so") == f"liblast_call.so.{SOVERSION}"
    assert (lib / "liblast_call.a").is_file()
    assert _pkg_config(prefix, "--modversion") == [VERSION]


def test_the_shared_library_has_a_versioned_soname_and_no_debug_info(
    prefix: Path,
) -> None:
    library = prefix / f"lib/liblast_call.so.{VERSION}"
    assert _dynamic(library, "SONAME") == [f"liblast_call.so.{SOVERSION}"]
    sections = _readelf("-S", "-W", str(library))
    assert ".debug_info" not in sections
    assert "gs_wait_for_streams" in _readelf("--dyn-syms", "-W", str(library))


def test_the_pkg_config_file_carries_the_run_path_outside_system_dirs(
    prefix: Path,
) -> None:
    assert f"-Wl,-rpath,{prefix / 'lib'}" in _pkg_config(prefix, "--libs")
    # A system directory gets none (what distribution packagers expect).
    for prefix_dir, rpath in (("/usr", ""), ("/opt/x", "-Wl,-rpath,${libdir}")):
        planned = subprocess.run(
            [
                "make",
                "-s",
                "-C",
                str(REPOSITORY),
                "-n",
                "install",
                f"PREFIX={prefix_dir}",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert f"s|@RPATH@|{rpath}|" in planned, planned


def _build_c_host(prefix: Path, output: Path, static: bool) -> Path:
    if static:
        # The archive itself, and what it needs from the system (Libs.private).
        libs = [str(prefix / "lib/liblast_call.a")] + [
            flag
            for flag in _pkg_config(prefix, "--static", "--libs-only-l")
            if flag != "-llast_call"
        ]
    else:
        # As a user writes it: the .pc file carries the run-time path.
        libs = _pkg_config(prefix, "--libs")
    command = [
        "cc",
        *CFLAGS,
        *_pkg_config(prefix, "--cflags"),
        str(C_HOST),
        *libs,
        "-lm",
        "-o",
        str(output),
    ]
    subprocess.run(command, check=True, timeout=120)
    return output


@pytest.mark.parametrize("static", [False, True], ids=["shared", "static"])
def test_the_c_host_builds_from_the_prefix_and_drains(
    prefix: Path, tmp_path: Path, static: bool
) -> None:
    host = _build_c_host(prefix, tmp_path / "c_host", static)
    needed = _dynamic(host, "NEEDED")
    if static:
        assert not [n for n in needed if "last_call" in n], needed
    else:
        # Linked by soname: the host needs liblast_call.so.<soversion>.
        assert f"liblast_call.so.{SOVERSION}" in needed
    result = subprocess.run(
        [str(host), "drain", "4", "200"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all streams ended: active=0 started=4 finished=4" in result.stdout


def test_the_c_host_from_the_prefix_exits_zero_after_sigterm(
    prefix: Path, tmp_path: Path
) -> None:
    host = _build_c_host(prefix, tmp_path / "c_host", static=False)
    env = {
        "PATH": "/usr/bin:/bin",
        "GS_DRAIN_DELAY_SECONDS": "0.2",
        "GS_SHUTDOWN_TIMEOUT_SECONDS": "20",
    }
    child = subprocess.Popen(
        [str(host), "serve", "2", "500"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None
        for _ in range(100):
            line = child.stdout.readline()
            assert line, "the C host exited before serving"
            if "serving: pid" in line:
                break
        child.send_signal(signal.SIGTERM)
        rest, _ = child.communicate(timeout=60)
        assert child.returncode == 0, rest
        assert "stopped: exiting 0" in rest
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
