"""Hostile and careless paths of the Flask example in hub mode (issue 27):
a task whose channel the hub refuses, readers of the event feed that would
hold the app's threads, and its start-up errors."""

from __future__ import annotations

import json
import threading
import time

import hosts
import httpx
from server_process import ServerProcess


def start_flask_hub(env: dict[str, str]) -> ServerProcess:
    command, cwd = hosts.command("flask-hub")
    base = dict(item.split("=", 1) for item in hosts.FLASK_HUB_ENV)
    return ServerProcess(command, {"GS_EXIT_WATCHDOG_SECONDS": "2", **base, **env}, cwd=cwd)


def test_a_task_whose_channel_the_hub_refuses_is_503_and_nothing_leaks():
    server = start_flask_hub(
        {
            # Two tasks' channels and the event feed's.
            "GS_STREAM_MAX_CHANNELS": "3",
            "GS_STREAM_IDLE_SECONDS": "1",
            "MAX_TASKS": "3",
            "TASK_KEEP_SECONDS": "1",
        }
    )
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:

            def post() -> httpx.Response:
                return client.post("/api/tasks", json={"steps": 1, "step_seconds": 0})

            assert [post().status_code for _ in range(2)] == [202, 202]
            # The hub holds three channels, none idle yet: each new task is
            # refused as a whole (it was a 500, and the task stayed in the
            # table for ever, until every task was refused).
            for _ in range(6):
                refused = post()
                assert refused.status_code == 503, refused.text
                assert refused.headers.get("retry-after"), refused.headers
            # Once the hub forgets the finished tasks' idle channels, tasks
            # are accepted again: nothing was left behind.
            deadline = time.monotonic() + 15
            while post().status_code != 202:
                assert time.monotonic() < deadline, "no task accepted again: the refused ones leaked"
                time.sleep(0.2)
    finally:
        server.close()


def test_readers_of_the_event_feed_hold_no_waitress_thread_in_hub_mode():
    """8 readers of ``GET /api/events`` with THREADS=8: each held a
    Waitress thread, and ``POST /api/tasks`` went unanswered (5 s, three
    times) while the probes said all was well. The feed is now the hub's:
    the app answers a redirect to its subscription and holds nothing, and
    every reader gets the new task's events from the hub."""
    server = start_flask_hub({"THREADS": "8"})
    readers = 8
    connected = threading.Semaphore(0)
    stop = threading.Event()
    seen: list[list[dict]] = [[] for _ in range(readers)]
    served_by: list[str] = [""] * readers

    def read(index: int) -> None:
        # As EventSource does: the redirect followed, Last-Event-ID kept.
        with httpx.Client(base_url=server.url, timeout=httpx.Timeout(10, read=30), follow_redirects=True) as client:
            try:
                with client.stream("GET", "/api/events") as response:
                    served_by[index] = f"{response.status_code} {response.url}"
                    connected.release()
                    for line in response.iter_lines():
                        if line.startswith("data: "):
                            seen[index].append(json.loads(line[6:]))
                        if stop.is_set():
                            return
            except httpx.HTTPError:
                connected.release()

    threads = [threading.Thread(target=read, args=(n,), daemon=True) for n in range(readers)]
    try:
        for thread in threads:
            thread.start()
        for _ in range(readers):
            assert connected.acquire(timeout=20), served_by
        assert all(s.startswith("200 ") for s in served_by), served_by
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for _ in range(3):
                response = client.post("/api/tasks", json={"steps": 1, "step_seconds": 0})
                assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]

        def every_reader_saw_the_task() -> bool:
            return all(
                any(e.get("task_id") == task_id and e.get("event_type") == "task_completed" for e in events)
                for events in seen
            )

        deadline = time.monotonic() + 15
        while not every_reader_saw_the_task():
            assert time.monotonic() < deadline, [len(events) for events in seen]
            time.sleep(0.05)
        # Held by the hub, on its own port, not by the app.
        assert all(f":{server.port}/" not in s for s in served_by), served_by
    finally:
        stop.set()
        server.close()
        for thread in threads:
            thread.join(10)


def run_to_exit(env: dict[str, str | bytes]) -> tuple[int, str]:
    """The Flask example in hub mode, started with ``env`` over the GS_*-free
    environment; its exit status and its output."""
    import os
    import subprocess

    from server_process import GS_VARIABLES

    # The plain command with the hub's settings in its environment, so
    # that ``env`` may override them (env(1)'s arguments would win).
    command, cwd = hosts.command("flask")
    child: dict[str | bytes, str | bytes] = {k: v for k, v in os.environ.items() if k not in GS_VARIABLES}
    child.update(item.split("=", 1) for item in hosts.FLASK_HUB_ENV)
    child.update({"HOST": "127.0.0.1", "PORT": "0"})
    child.update(env)
    done = subprocess.run(command, cwd=cwd, env=child, capture_output=True, timeout=30)
    return done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")


def test_a_bad_value_exits_2_with_one_line_naming_it():
    for variable, value in [
        ("GS_STREAM_HEARTBEAT_SECONDS", "soon"),
        ("GS_STREAM_QUEUE_EVENTS", "18446744073709551615"),
        ("GS_STREAM_SECRET", "ab"),
        ("GS_PROBE_ADDR", ""),
        ("GS_PROBE_ADDR", b"127.0.0.1:\xff"),
        ("GS_DRAIN_TOKEN", b"tok\xffen"),
        ("GS_DRAIN_TOKEN", "token "),
    ]:
        status, output = run_to_exit({variable: value})
        assert status == 2, f"{variable}={value!r}: status {status}\n{output}"
        assert "Traceback" not in output, f"{variable}={value!r}\n{output}"
        assert variable in output, f"{variable}={value!r}\n{output}"


def test_a_sigterm_during_start_up_never_kills_the_host():
    """SIGTERMs sent a few milliseconds after the hub announced itself, in
    the middle of ``serve()``'s start (create_server, the probe listener):
    24 of 30 killed the host (-15), delivered to the hub's thread while the
    main thread held the signal. Now each one is held until the sequence
    takes it, and the host exits 0."""
    import os
    import signal
    import subprocess

    from server_process import GS_VARIABLES

    command, cwd = hosts.command("flask")
    env = {k: v for k, v in os.environ.items() if k not in GS_VARIABLES}
    env.update(item.split("=", 1) for item in hosts.FLASK_HUB_ENV)
    env.update({"HOST": "127.0.0.1", "PORT": "0", "GS_PROBE_ADDR": "127.0.0.1:0", "GS_DRAIN_DELAY_SECONDS": "0"})
    statuses = []
    for attempt in range(8):
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert child.stdout is not None
            deadline = time.monotonic() + 30
            for line in child.stdout:
                if b"streams on http://" in line:
                    break
                assert time.monotonic() < deadline, "no hub announced"
            time.sleep(0.0005 * attempt)
            child.send_signal(signal.SIGTERM)
            statuses.append(child.wait(timeout=30))
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(5)
    assert statuses == [0] * len(statuses), statuses
