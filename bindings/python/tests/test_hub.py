"""last_call.hub: a real Waitress child process (apps/hub_app.py) publishes
through the runtime's stream hub; the tests subscribe over 127.0.0.1 with
httpx, as a browser's EventSource would. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from last_call import hub
from last_call.errors import InvalidArgumentError, InvalidStateError
from redis_process import RedisProcess
from server_process import eventually

HUB_ENV = {
    "GS_STREAM_ADDR": "127.0.0.1:0",
    "GS_STREAM_SECRET": "a secret the tests share, 32 bytes or more",
    "THREADS": "4",
}


def start_hub_app(start_app, env: dict[str, str] | None = None):
    server = start_app({**HUB_ENV, **(env or {})}, script="hub_app.py")
    line = server.wait_for_log(r"streams on http://")
    return server, line.split("streams on ")[1].strip()


def url_for(server, channel: str) -> str:
    return server.client.get("/url", params={"channel": channel}).json()["url"]


def events(response: httpx.Response) -> Iterator[dict[str, str]]:
    """The events of an SSE response, as field dicts (comments skipped)."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            fields[name] = f"{fields[name]}\n{value}" if name in fields else value


@contextlib.contextmanager
def subscribed(server, url: str) -> Iterator[Iterator[dict[str, str]]]:
    """A subscription the hub has counted, its first event (the retry
    hint every subscription begins with) read: the events after it."""
    with httpx.stream("GET", url, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        stream = events(response)
        assert next(stream) == {"retry": "1000"}
        eventually(lambda: server.counts()["active"] == 1)
        yield stream


def test_publish_needs_a_started_hub_and_checks_its_arguments():
    with pytest.raises(InvalidStateError):
        hub.publish("c", "x")
    with pytest.raises(InvalidArgumentError):
        hub.publish("a/b", "x")
    with pytest.raises(InvalidArgumentError):
        hub.publish("c", "x", event="a\nb")
    with pytest.raises(InvalidStateError):
        hub.subscribe_url("c")
    # Data is passed to the runtime NUL-terminated: a NUL is refused, never
    # cut short.
    for data in ("a\0b", b"a\0b", "\0"):
        with pytest.raises(InvalidArgumentError, match="NUL"):
            hub.publish("c", data)


def test_events_published_from_python_arrive_in_order_with_their_ids(start_app):
    server, _ = start_hub_app(start_app)
    url = url_for(server, "orders")
    assert "/streams/orders?token=v1." in url
    with subscribed(server, url) as stream:
        published = server.client.post(
            "/publish", json={"channel": "orders", "data": [f"n={n}" for n in range(20)], "event": "step"}
        ).json()
        assert published["ids"] == [str(n) for n in range(1, 21)]
        for n in range(20):
            assert next(stream) == {"id": str(n + 1), "event": "step", "data": f"n={n}"}


def test_subscribe_url_keeps_every_allowed_channel_character_and_ttl_is_at_least_1_s(start_app):
    server, _ = start_hub_app(start_app)
    # `:` is allowed in a channel name: the URL must reach the channel (it
    # was escaped to %3A, which the hub answered 404).
    url = url_for(server, "ns:1~a")
    assert "/streams/ns:1~a?token=" in url
    with subscribed(server, url) as stream:
        server.client.post("/publish", json={"channel": "ns:1~a", "data": ["x"]}).raise_for_status()
        assert next(stream) == {"id": "1", "event": "message", "data": "x"}
    # Under a second, a token would be expired when given: refused.
    assert server.client.get("/url", params={"channel": "c", "ttl": 0.5}).status_code == 500
    assert server.client.get("/url", params={"channel": "c", "ttl": 1}).status_code == 200


def test_publish_returns_the_hosts_id_or_the_hubs_next_number(start_app):
    server, _ = start_hub_app(start_app)
    with subscribed(server, url_for(server, "mixed")) as stream:
        published = server.client.post(
            "/publish",
            json={
                "channel": "mixed",
                "data": ["a", "b", "c", "d", "e\nf"],
                "ids": [None, "note-1", "41", None, None],
                "as_bytes": True,
            },
        ).json()
        # A host's id is its own; a numeric one moves the hub's numbering
        # past it.
        assert published["ids"] == ["1", "note-1", "41", "42", "43"]
        got = [next(stream) for _ in range(5)]
    assert [(e["id"], e["data"]) for e in got] == [
        ("1", "a"),
        ("note-1", "b"),
        ("41", "c"),
        ("42", "d"),
        ("43", "e\nf"),
    ]
    bad = server.client.post("/publish", json={"channel": "mixed", "data": ["x"], "ids": ["a\nb"]})
    assert bad.status_code == 500


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    with RedisProcess() as server:
        yield server


def test_with_a_shared_store_publish_returns_no_id_and_the_store_numbers_each_event(redis, start_app):
    """A shared store gives every event the id valid on every pod when it
    writes it, and does not use a host's own: ``publish`` returns ``""``
    for both. It returned the host's id (``gs_hub_send`` answers 0 for a
    host's id and for a shared store alike), an id no subscriber ever saw."""
    server, _ = start_hub_app(start_app, {"GS_STREAM_STORE": redis.url})
    with subscribed(server, url_for(server, "shared")) as stream:
        published = server.client.post(
            "/publish", json={"channel": "shared", "data": ["a", "b"], "ids": [None, "note-1"]}
        ).json()
        assert published["ids"] == ["", ""]
        got = [next(stream) for _ in range(2)]
    assert [e["data"] for e in got] == ["a", "b"]
    # The store's ids, <epoch>-<ms>-<seq>, in publish order.
    assert all(e["id"].count("-") == 2 and e["id"] != "note-1" for e in got), got


def test_publishing_from_many_threads_loses_nothing(start_app):
    server, _ = start_hub_app(start_app)
    with subscribed(server, url_for(server, "busy")) as stream:
        server.client.post("/publish-from-threads", json={"channel": "busy", "threads": 8, "each": 8})
        got = [next(stream) for _ in range(64)]
    assert [int(e["id"]) for e in got] == list(range(1, 65))
    for worker in range(8):
        mine = [e["data"] for e in got if e["data"].startswith(f"{worker}:")]
        assert mine == [f"{worker}:{n}" for n in range(8)]


def test_close_sends_the_final_event_and_a_vanished_client_is_uncounted(start_app):
    server, _ = start_hub_app(start_app)
    with subscribed(server, url_for(server, "task-1")) as stream:
        server.client.post("/close", json={"channel": "task-1", "final": ["task_completed", '{"ok": true}']})
        assert next(stream) == {"id": "1", "event": "task_completed", "data": '{"ok": true}'}
        assert list(stream) == []
    eventually(lambda: server.counts()["active"] == 0)
    # A client that just goes away is uncounted without any event sent.
    with httpx.Client(timeout=10) as client:
        request = client.build_request("GET", url_for(server, "quiet"))
        response = client.send(request, stream=True)
        eventually(lambda: server.counts()["active"] == 1)
        response.close()
    eventually(lambda: server.counts()["active"] == 0, timeout=10)


def test_a_token_for_another_channel_or_none_opens_no_stream(start_app):
    server, base = start_hub_app(start_app)
    url = url_for(server, "mine")
    theirs = url.replace("/streams/mine?", "/streams/theirs?")
    answer = httpx.get(theirs, timeout=10)
    assert (answer.status_code, answer.json()["error"]) == (403, "token_wrong_channel")
    answer = httpx.get(f"{base}/streams/mine", timeout=10)
    assert (answer.status_code, answer.json()["error"]) == (401, "token_missing")
    assert server.counts()["active"] == 0


def test_subscribe_url_is_relative_to_a_public_base(start_app):
    server, _ = start_hub_app(start_app, {"GS_STREAM_PUBLIC_URL": "/hub"})
    url = url_for(server, "task-9")
    assert url.startswith("/hub/streams/task-9?token=v1."), url


def test_sigterm_ends_pod_bound_channels_with_their_final_event_and_exits_0(start_app):
    server, _ = start_hub_app(
        start_app,
        {"GS_DRAIN_DELAY_SECONDS": "0.3", "GS_SHUTDOWN_TIMEOUT_SECONDS": "5", "GS_CLOSE_NOTICE_SECONDS": "2"},
    )
    server.client.post("/final", json={"channel": "task-2", "event": "task_failed", "data": '{"reason": "shutdown"}'})
    server.client.post("/publish", json={"channel": "task-2", "data": ["1"], "kind": "pod_bound"})
    endings: dict[str, list[dict[str, str]]] = {}

    def read(channel: str, url: str) -> None:
        with httpx.stream("GET", url, timeout=15) as response:
            endings[channel] = list(events(response))

    readers = [
        threading.Thread(target=read, args=(channel, url_for(server, channel))) for channel in ("task-2", "feed")
    ]
    for reader in readers:
        reader.start()
    eventually(lambda: server.counts()["active"] == 2)
    server.signal(signal.SIGTERM)
    for reader in readers:
        reader.join(timeout=15)
    assert server.wait_exit(timeout=15) == 0
    assert endings["task-2"][-1]["event"] == "task_failed"
    assert endings["task-2"][-1]["data"] == '{"reason": "shutdown"}'
    assert endings["feed"][-1]["event"] == "reconnect"
    assert endings["feed"][-1]["retry"] == "1000"


def test_publish_is_cheap_enough_to_call_on_every_event(start_app):
    """Not a timing test (that is benches/hub_publish.py): publish returns
    without waiting for a subscriber that does not read."""
    server, _ = start_hub_app(start_app)
    with httpx.stream("GET", url_for(server, "stalled"), timeout=10):
        eventually(lambda: server.counts()["active"] == 1)
        started = time.monotonic()
        server.client.post("/publish", json={"channel": "stalled", "data": ["x" * 1000] * 500})
        assert time.monotonic() - started < 10


def test_the_hub_s_thread_is_born_with_sigterm_blocked():
    """Issue 27, the start-up window: a host that holds SIGTERM while it
    starts (blocked in its main thread, the default disposition set until
    the runtime's handling is installed, as examples/flask_app/run.py and
    serve() do) was killed (-15) when the signal reached the hub's thread
    before that thread had blocked it: the kernel hands a signal the main
    thread blocks to another thread that does not, and a thread not yet
    scheduled (a loaded machine) takes it, with the default disposition,
    before its first instruction (1 of 8 SIGTERMs sent just after "streams
    on", at load 42). Here that order is forced: the process on one CPU,
    its main thread first-in-first-out scheduled, so that the hub's new
    thread (of the same policy) runs only when the main thread sleeps, after
    it has blocked SIGTERM, sent it and set the default disposition. The
    signal must stay pending for the main thread, whose handler exits 0."""
    import os
    import subprocess
    import sys
    import textwrap

    program = textwrap.dedent(
        """
        import os, signal, sys, time
        from last_call import GracefulShutdownManager, hub

        GracefulShutdownManager()  # the runtime's own threads, started now
        time.sleep(0.2)
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except PermissionError:
            print("no SCHED_FIFO here", flush=True)
            sys.exit(3)
        hub.start()  # its thread is created, not yet run
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        os.kill(os.getpid(), signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        time.sleep(0.3)  # the hub's thread runs now
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        time.sleep(5)
        sys.exit(4)  # the signal was lost
        """
    )
    env = {**os.environ, **HUB_ENV}
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=30)
    if done.returncode == 3:
        pytest.skip("SCHED_FIFO needs CAP_SYS_NICE (CI runs as root)")
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
