"""The README's quick starts, run as written.

Every code block between the README's two `<!-- quick-start` markers is
taken from the README itself, one `###` section per host. A block whose
first line is a comment naming a file (`# app.py`, `// src/main.rs`,
`/* app.c: ...`) is written to that file; a file from an earlier section
stays for the next (gunicorn serves the Flask section's `app.py`). The
shell blocks run in order, in bash, with the fresh venv first on PATH: every
command but the last runs to completion (a `make` command from the
repository's root, as the README says "from this repository"), and the
last one is the server, exec'd so that the SIGTERM reaches it as the
kubelet's reaches PID 1.

What is changed, and only this: the port 8080 becomes a free one;
`"last-call[...]"` in a `pip install` line becomes the same requirement
from a wheel built from this tree; the Rust `last-call = "0.1"` becomes a
path dependency on this tree (with the `[package]` header `cargo new`
writes); `$HOME`, where a section writes under it, is a temporary
directory. Then, as the README tells the
reader to check: a stream is opened, SIGTERM is sent while it runs, the
stream must still get all five events and end cleanly, and the server
must exit 0.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: Every wait is bounded; a build is the slowest step (cold: minutes).
BUILD_TIMEOUT = 900
START_TIMEOUT = 60
EXIT_TIMEOUT = 60
#: The README suggests it to "watch it exit sooner"; it keeps the test short.
SHORT_DRAIN = {"GS_DRAIN_DELAY_SECONDS": "1"}
FILE_COMMENT = re.compile(r"^(?:#|//|/\*)\s*([\w./-]+\.(?:py|rs|c|toml))\b")


@dataclass
class Section:
    title: str
    files: dict[str, str] = field(default_factory=dict)
    shell: list[str] = field(default_factory=list)
    #: Its files and those of the sections before it.
    available: dict[str, str] = field(default_factory=dict)


def quick_start_sections() -> list[Section]:
    text = README.read_text()
    start = text.index("<!-- quick-start:")
    end = text.index("<!-- quick-start: end -->")
    sections: list[Section] = []
    so_far: dict[str, str] = {}
    for chunk in re.split(r"^### ", text[start:end], flags=re.MULTILINE)[1:]:
        section = Section(chunk.splitlines()[0].strip())
        for language, body in re.findall(r"^```(\w+)\n(.*?)^```$", chunk, flags=re.MULTILINE | re.DOTALL):
            named = FILE_COMMENT.match(body)
            if language == "sh":
                section.shell.append(body)
            elif named:
                section.files[named.group(1)] = body
            else:
                pytest.fail(f"README quick start {section.title!r}: a {language} block names no file")
        so_far.update(section.files)
        section.available = dict(so_far)
        sections.append(section)
    return sections


SECTIONS = quick_start_sections()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as a wheel, built once from this tree (its library comes
    from target/python, already built by `make python`)."""
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT / "bindings/python")]
    run_to_end(build, ROOT)
    return next(out.glob("last_call-*.whl"))


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fresh venv that every Python quick start installs into."""
    path = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(path)
    return path


@dataclass
class Workspace:
    directory: Path
    home: Path
    env: dict[str, str]

    def env_for(self, section: Section) -> dict[str, str]:
        """A section that writes under `$HOME` gets a temporary one (the
        reader's own HOME otherwise: pip's cache and configuration, cargo)."""
        if any("$HOME" in block for block in section.shell):
            # The toolchain stays the reader's own: rustup finds it by HOME.
            env = dict(self.env, HOME=str(self.home))
            env.setdefault("RUSTUP_HOME", str(Path.home() / ".rustup"))
            env.setdefault("CARGO_HOME", str(Path.home() / ".cargo"))
            return env
        return self.env


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory, fresh_venv: Path) -> Workspace:
    home = tmp_path_factory.mktemp("home")
    env = dict(os.environ, **SHORT_DRAIN)
    # The Rust quick start builds in the tree's own target directory (with
    # the tree's Cargo.lock, copied in `prepare`): the dependencies the
    # tree's build already compiled are not compiled again, only the
    # reader's crate and what its features change. The build is the
    # reader's, as written.
    env["CARGO_TARGET_DIR"] = str(ROOT / "target")
    env["PATH"] = f"{fresh_venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(fresh_venv)
    # The tree's own settings must not leak into the reader's shell.
    for name in ("PYTHONPATH", "LAST_CALL_LIBRARY", "PKG_CONFIG_PATH"):
        env.pop(name, None)
    # Reuse this tree's Rust build; the lock file below pins the versions.
    env["CARGO_TARGET_DIR"] = str(ROOT / "target")
    env["CARGO_NET_OFFLINE"] = "true"
    return Workspace(tmp_path_factory.mktemp("quick-start"), home, env)


def adapt(text: str, port: int, wheel: Path) -> str:
    text = text.replace("8080", str(port))
    return re.sub(
        r'"last-call(\[[\w,-]*\])?"',
        lambda found: f'"last-call{found.group(1) or ""} @ {wheel.as_uri()}"',
        text,
    )


def adapt_cargo_toml(text: str) -> str:
    dependency = re.compile(r'^last-call = (?:"[^"]*"|\{ version = "[^"]*"(?P<rest>.*) \})$', re.MULTILINE)
    assert dependency.search(text), "the Rust quick start's Cargo.toml depends on last-call"
    header = '[package]\nname = "quick-start"\nversion = "0.1.0"\nedition = "2021"\n\n'

    def to_path(found: re.Match[str]) -> str:
        # The same features, from this tree.
        return f"last-call = {{ path = {str(ROOT)!r}{found.group('rest') or ''} }}"

    # Its own workspace: it lives under this repository's target/.
    return header + dependency.sub(to_path, text) + "\n[workspace]\n"


def run_to_end(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    """Runs `argv` in a process group of its own, bounded: on timeout the
    whole group (make's cargo, pip's build) is killed, not only its leader."""
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        output = stop(process)
        pytest.fail(f"{argv!r} still running after {BUILD_TIMEOUT} s:\n{output[-3000:]}")
    finally:
        stop(process)
    assert process.returncode == 0, f"{argv!r} failed:\n{output[-6000:]}"


def run(command: str, cwd: Path, env: dict[str, str]) -> None:
    run_to_end(["bash", "-euo", "pipefail", "-c", command], ROOT if command.startswith("make ") else cwd, env)


def start(script: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """The shell block's lines, the last one exec'd: its process is the server."""
    lines = [line for line in script.splitlines() if line.strip() and not line.startswith("#")]
    body = "\n".join([*lines[:-1], f"exec {lines[-1]}"])
    return subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", body],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[str]) -> str:
    """Kills what is left of the process's group (a server's workers too)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.stdout is None or process.stdout.closed:
        process.wait(timeout=EXIT_TIMEOUT)
        return ""
    output, _ = process.communicate(timeout=EXIT_TIMEOUT)
    return output


def wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited with {process.returncode}:\n{stop(process)}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing listens on {port} after {START_TIMEOUT} s:\n{stop(process)}")


def lines_until(process: subprocess.Popen[str], prefix: str) -> list[str]:
    """The process's output up to the first line starting with `prefix`,
    read on a thread so that the wait is bounded."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in stdout:
            lines.put(line)
            if line.startswith(prefix):
                return
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    while not seen or not seen[-1].startswith(prefix):
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no line {prefix!r} after {START_TIMEOUT} s:\n{''.join(seen)}")
        if line is None:
            pytest.fail(f"the program ended before {prefix!r}:\n{''.join(seen)}")
        seen.append(line)
    return seen


def stream_through_sigterm(port: int, process: subprocess.Popen[str]) -> None:
    """Opens /events, sends SIGTERM after the first event, and reads to the
    end: httpx raises if the body is cut, and all five events must come."""
    ticks: list[str] = []
    with httpx.stream("GET", f"http://127.0.0.1:{port}/events", timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                ticks.append(line[len("data: ") :])
                if len(ticks) == 1:
                    process.send_signal(signal.SIGTERM)
    assert ticks == [f"tick {n}" for n in range(5)]


def prepare(section: Section, directory: Path, workspace: Workspace, wheel: Path, port: int) -> None:
    for name, body in section.available.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        body = adapt(body, port, wheel)
        target.write_text(adapt_cargo_toml(body) if name == "Cargo.toml" else body)
    if "Cargo.toml" in section.files:
        shutil.copyfile(ROOT / "Cargo.lock", directory / "Cargo.lock")
        # The build, bounded here, so that the server command starts at once.
        run("cargo build --quiet", directory, workspace.env_for(section))
    for block in section.shell[:-1]:
        for command in block.splitlines():
            if command.strip() and not command.startswith("#"):
                run(adapt(command, port, wheel), directory, workspace.env_for(section))


@pytest.mark.timeout(BUILD_TIMEOUT + 300)
@pytest.mark.parametrize("section", SECTIONS, ids=[s.title for s in SECTIONS])
def test_the_quick_start_runs_as_written(section: Section, workspace: Workspace, wheel: Path) -> None:
    assert section.shell, f"{section.title!r} has no command to run"
    port = free_port()
    directory = workspace.directory / re.sub(r"\W+", "-", section.title)
    prepare(section, directory, workspace, wheel, port)
    process = start(adapt(section.shell[-1], port, wheel), directory, workspace.env_for(section))
    try:
        if "app.c" in section.files:
            lines = lines_until(process, "tick 0")
            process.send_signal(signal.SIGTERM)
            output = "".join(lines) + process.communicate(timeout=EXIT_TIMEOUT)[0]
            assert [line for line in output.splitlines() if line.startswith("tick")] == [f"tick {n}" for n in range(5)]
            assert output.index("stream ended") < output.index("stopped: exit 0"), output
        else:
            wait_for_port(port, process)
            stream_through_sigterm(port, process)
            output = process.communicate(timeout=EXIT_TIMEOUT)[0]
        assert process.returncode == 0, output
    finally:
        stop(process)


def test_the_rust_quick_start_is_the_axum_example_verbatim() -> None:
    """examples/axum_app.rs is built, linted and run by the Rust suites
    (tests/axum_app.rs): the README shows exactly that file."""
    rust = next(section for section in SECTIONS if "Rust" in section.title)
    assert rust.files["src/main.rs"] == (ROOT / "examples" / "axum_app.rs").read_text()


def test_every_host_has_a_quick_start() -> None:
    titles = " ".join(section.title for section in SECTIONS)
    for host in ("Waitress", "gunicorn", "uvicorn", "Django", "Rust", "C"):
        assert host in titles, titles
