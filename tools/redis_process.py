"""A real redis-server in a child process, for the Python tests, the
benchmarks and the rolling harness: a free port of 127.0.0.1, no
persistence, a directory of its own, and killed by whoever started it
(``with RedisProcess() as redis:``; ``close()`` on every path).

Readiness is asked of ``redis-cli ping`` (installed with redis-server by
``scripts/setup.sh``), not by speaking the protocol here."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time

from server_process import free_port


class RedisProcess:
    def __init__(self, extra: list[str] | None = None, timeout: float = 20.0) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not on PATH (make setup installs it)")
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="last-call-redis-")
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", *(extra or [])]
        self.process = subprocess.Popen(
            command, cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.cli("ping") == "PONG":
                return
            time.sleep(0.05)
        self.close()
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> str:
        """``redis-cli`` against this server: its answer, stripped ("" if
        it did not answer)."""
        try:
            done = subprocess.run(
                ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=10, check=False
            )
        except subprocess.TimeoutExpired:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
