"""The stream hub under multi-process hosts, on a real redis-server: gunicorn
``-w 2`` and ``uvicorn --workers 2``, one hub port per pod shared by the
workers (``last_call.workers``). An event published by either worker
reaches every subscriber, whichever worker holds it; what cannot work is
refused by name."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from redis_process import RedisProcess
from server_process import ServerProcess, eventually, free_port

from .conftest import APPS, GUNICORN

SECRET = "a secret every worker shares, 32 b"
SHUTDOWN = {
    "GS_DRAIN_DELAY_SECONDS": "0.5",
    "GS_SHUTDOWN_TIMEOUT_SECONDS": "6",
    "GS_CLOSE_NOTICE_SECONDS": "1",
    "GS_HOOK_BUDGET_SECONDS": "1",
}


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisProcess]:
    with RedisProcess() as server:
        yield server


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.close()


def _gunicorn(servers: list[ServerProcess], env: dict[str, str], *options: str) -> ServerProcess:
    server = ServerProcess([*GUNICORN, "-w", "2", "--threads", "8", *options, "hub_workers_wsgi:app"], env, cwd=APPS)
    servers.append(server)
    return server


def _uvicorn(servers: list[ServerProcess], env: dict[str, str]) -> ServerProcess:
    env = {**env, "PORT": str(free_port())}
    server = ServerProcess([sys.executable, str(APPS / "hub_workers_asgi.py"), "2"], env, cwd=APPS)
    servers.append(server)
    return server


def _follow(url: str, into: list[str], ready: threading.Event) -> None:
    with httpx.Client(timeout=30) as client, client.stream("GET", url) as response:
        ready.set()
        for line in response.iter_lines():
            if line.startswith("data: "):
                into.append(line[len("data: ") :])


def _each_subscriber_gets_both_workers_events(server: ServerProcess, hub_port: int, channel: str) -> None:
    # Both workers hold a hub on the one port.
    server.wait_for_logs(rf"streams on http://127\.0\.0\.1:{hub_port}\b", 2, timeout=30)
    token = server.client.get("/token", params={"channel": channel}).json()["token"]
    received: list[list[str]] = [[] for _ in range(8)]
    for into in received:
        ready = threading.Event()
        url = f"http://127.0.0.1:{hub_port}/streams/{channel}?token={token}"
        threading.Thread(target=_follow, args=(url, into, ready), daemon=True).start()
        assert ready.wait(10), "a subscriber was not answered"
    # Publish on new connections until both workers have published.
    published: list[str] = []
    publishers: set[int] = set()
    for n in range(200):
        answer = httpx.post(f"{server.url}/publish", json={"channel": channel, "data": f"event-{n}"}, timeout=10)
        assert answer.status_code == 200, answer.text
        publishers.add(answer.json()["pid"])
        published.append(f"event-{n}")
        if len(publishers) == 2 and n >= 5:
            break
    assert len(publishers) == 2, "both workers published"
    # Whichever worker holds a subscriber, the other one published some of
    # these: every subscriber got every event, once.
    eventually(lambda: all(len(into) >= len(published) for into in received), timeout=15)
    for into in received:
        assert sorted(into) == sorted(published)
    sent = server.signal(signal.SIGTERM)
    assert server.wait_exit(20) == 0
    assert time.monotonic() - sent < 15


def test_gunicorn_two_workers_share_the_hub_port_and_every_subscriber_gets_both_workers_events(redis, servers):
    hub_port = free_port()
    env = {**SHUTDOWN, "GS_STREAM_ADDR": f"127.0.0.1:{hub_port}", "GS_STREAM_SECRET": SECRET}
    server = _gunicorn(servers, {**env, "GS_STREAM_STORE": redis.url})
    _each_subscriber_gets_both_workers_events(server, hub_port, "gunicorn-jobs")


def test_uvicorn_two_workers_share_the_hub_port_and_every_subscriber_gets_both_workers_events(redis, servers):
    hub_port = free_port()
    env = {**SHUTDOWN, "GS_STREAM_ADDR": f"127.0.0.1:{hub_port}", "GS_STREAM_SECRET": SECRET}
    server = _uvicorn(servers, {**env, "GS_STREAM_STORE": redis.url})
    _each_subscriber_gets_both_workers_events(server, hub_port, "uvicorn-jobs")


def test_two_workers_on_the_in_process_store_are_refused_by_name(servers):
    env = {**SHUTDOWN, "GS_STREAM_ADDR": f"127.0.0.1:{free_port()}", "GS_STREAM_SECRET": SECRET}
    server = _gunicorn(servers, {**env, "GS_STREAM_STORE": "memory:"})
    assert server.wait_exit(30) != 0
    assert "GS_STREAM_STORE" in "\n".join(server.lines), server.lines


def test_a_hub_started_in_the_master_by_preload_is_refused(servers):
    env = {**SHUTDOWN, "GS_STREAM_ADDR": f"127.0.0.1:{free_port()}", "GS_STREAM_SECRET": SECRET}
    with pytest.raises(AssertionError, match="started in gunicorn's master"):
        _gunicorn(servers, {**env, "GS_STREAM_STORE": "memory:"}, "--preload")
