"""A setting given as a keyword, as an app config key and as an environment
variable, on each host, as a real server: it takes effect, the precedence
holds (keyword, then app config, then environment), and a misspelt name is
reported. Two settings are watched, from outside the process:

* ``GS_DRAIN_TOKEN``, read by the native probe listener: which token
  ``POST /drain`` on the probe port accepts tells which value it has;
* ``GS_DRAIN_DELAY_SECONDS``, read by the shutdown sequence: the
  environment says 20 s, the app 1 s; an idle server that exits between 1
  and 12 s after SIGTERM ran with the app's (the bounds are generous: the
  two candidates are 19 s apart).

And one that gunicorn's master derives from them with ``--preload``:
``graceful_timeout``, from the app's ``GS_SHUTDOWN_TIMEOUT_SECONDS``, seen
by when the master SIGKILLs a worker that outlives its sequence.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
from server_process import ServerProcess, eventually

from .conftest import APPS, GUNICORN

ENV = {
    "GS_PROBE_ADDR": "127.0.0.1:0",
    "GS_DRAIN_TOKEN": "env-token",
    "GS_DRAIN_DELAY_SECONDS": "20",
    "GS_SHUTDOWN_TIMEOUT_SECONDS": "25",
    "GS_EXIT_WATCHDOG_SECONDS": "2",
}
TOKENS = ("env-token", "config-token", "keyword-token")


@pytest.fixture
def servers():
    started: list[ServerProcess] = []

    def start(command: list[str], env: dict[str, str]) -> ServerProcess:
        server = ServerProcess(command, {**ENV, **env}, cwd=APPS)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def _accepted_token(server: ServerProcess) -> str:
    """The one token the probe port's /drain accepts (it then drains)."""
    assert server.probe_url, server.lines
    accepted = []
    with httpx.Client(base_url=server.probe_url, timeout=10) as probe:
        for token in TOKENS:
            answer = probe.post("/drain", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code in (200, 401), answer
            if answer.status_code == 200:
                accepted.append(token)
    assert len(accepted) == 1, accepted
    return accepted[0]


def _exits_after_the_apps_drain_delay(server: ServerProcess) -> None:
    sent = server.signal(signal.SIGTERM)
    code = server.wait_exit(30)
    took = time.monotonic() - sent
    assert code == 0, "\n".join(server.lines)
    assert 1.0 <= took < 12.0, f"exited {took:.1f} s after SIGTERM: the drain delay was not the app's 1 s"


def _waitress(config: dict, keywords: dict) -> tuple[list[str], dict[str, str]]:
    env = {"APP_CONFIG": json.dumps(config), "SERVE_KEYWORDS": json.dumps(keywords)}
    return [sys.executable, str(APPS / "settings_app.py"), "waitress"], env


@pytest.mark.parametrize(
    ("config", "keywords", "winner"),
    [
        ({}, {}, "env-token"),
        ({"GS_DRAIN_TOKEN": "config-token"}, {}, "config-token"),
        ({"GS_DRAIN_TOKEN": "config-token"}, {"drain_token": "keyword-token"}, "keyword-token"),
    ],
    ids=["environment", "app-config", "keyword"],
)
def test_waitress_takes_the_keyword_then_app_config_then_the_environment(servers, config, keywords, winner):
    command, env = _waitress({**config, "GS_DRAIN_DELAY_SECONDS": 1}, keywords)
    server = servers(command, env)
    assert _accepted_token(server) == winner
    _exits_after_the_apps_drain_delay(server)


def test_waitress_reports_a_misspelt_app_config_key_and_environment_variable(servers):
    command, env = _waitress({"GS_DRAIN_DELAY": 3, "GS_DRAIN_DELAY_SECONDS": 1}, {})
    server = servers(command, {**env, "GS_SHUTDOWN_TIMEOUT": "5"})
    output = "\n".join(server.lines)
    assert "app.config['GS_DRAIN_DELAY'] is not a setting" in output, output
    assert "did you mean GS_DRAIN_DELAY_SECONDS?" in output, output
    assert "GS_SHUTDOWN_TIMEOUT is not a setting" in output and "GS_SHUTDOWN_TIMEOUT_SECONDS?" in output, output
    _exits_after_the_apps_drain_delay(server)


@pytest.mark.parametrize(("name", "value"), [("GS_DRAIN_TOKEN", "config-token"), ("GS_SHUTDOWN_LOG", "0")])
def test_gunicorn_refuses_an_app_value_its_master_read_before_the_app_loaded(servers, name, value):
    """Without --preload the master reads the pod's settings before any
    worker loads the app: the app's GS_DRAIN_TOKEN could not reach the
    probe port the master answers, its GS_SHUTDOWN_LOG=0 would silence the
    workers' shutdown log and not the master's. The worker's start fails,
    naming gunicorn, the setting and the fix."""
    env = {"APP_CONFIG": json.dumps({name: value})}
    # The master announces itself before it forks; the worker then fails.
    server = servers([*GUNICORN, "-w", "1", "--threads", "4", "settings_app:app"], env)
    assert server.wait_exit(30) != 0
    output = "\n".join(server.lines)
    assert f"app.config['{name}']" in output, output
    assert "gunicorn's master" in output and "--preload" in output and "environment" in output, output


def test_gunicorn_with_preload_takes_the_apps_settings_in_the_master_too(servers):
    env = {"APP_CONFIG": json.dumps({"GS_DRAIN_TOKEN": "config-token", "GS_DRAIN_DELAY_SECONDS": 1})}
    server = servers([*GUNICORN, "--preload", "-w", "2", "--threads", "4", "settings_app:app"], env)
    assert _accepted_token(server) == "config-token"
    _exits_after_the_apps_drain_delay(server)


def test_gunicorn_workers_take_the_settings_of_their_own_sequence_from_the_app(servers):
    """The close notice and the hooks' budget shape each worker's own
    sequence, which the worker configures after loading the app: accepted
    without --preload."""
    env = {"APP_CONFIG": json.dumps({"GS_CLOSE_NOTICE_SECONDS": 2, "GS_HOOK_BUDGET_SECONDS": 1})}
    env["GS_DRAIN_DELAY_SECONDS"] = "0.5"
    server = servers([*GUNICORN, "-w", "2", "--threads", "4", "settings_app:app"], env)
    assert _accepted_token(server) == "env-token"
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0, "\n".join(server.lines)


#: The environment's timeout, and so the graceful_timeout this module
#: derives when imported, before the app is loaded.
ENV_TIMEOUT = 60
#: The app's: the master's deadline and its graceful_timeout.
APP_TIMEOUT = 6
#: The master's Stopping, once SIGTERM came: the hooks' budget before its
#: deadline (by default a quarter of the timeout, at most 3 s).
MASTER_STOPPING = APP_TIMEOUT * 3 / 4
#: How long the worker outlives its sequence (which ends at 0.5 s): past
#: the master's kill at 4.5 + 6 s by far, well within the environment's 60 s.
LINGER_SECONDS = 30


def _running(pid: int) -> bool:
    """Whether the process is alive (a zombie has ended; once its parent
    is gone nobody may reap it here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize(
    ("config", "keywords"),
    [
        ({"GS_SHUTDOWN_TIMEOUT_SECONDS": APP_TIMEOUT, "GS_DRAIN_DELAY_SECONDS": 0.5}, {}),
        ({}, {"shutdown_timeout_seconds": APP_TIMEOUT, "drain_delay_seconds": 0.5}),
    ],
    ids=["app-config", "keyword"],
)
def test_gunicorn_with_preload_derives_graceful_timeout_from_the_apps_timeout(servers, config, keywords):
    """With --preload the master loads the app before on_starting, and its
    graceful_timeout follows the app's timeout, not the environment's that
    the config module saw when imported. Seen from outside: gunicorn's
    master SIGKILLs the workers still alive graceful_timeout seconds after
    its own Stopping. The worker here outlives its sequence by 30 s (a
    non-daemon thread its hook started); the master's sequence runs on the
    app's 6 s, so it halts at 4.5 s (its Stopping), kills the worker 6 s
    later, at about 10.5 s, and exits. With the environment's 60 s it would
    wait for the worker to finish lingering (about 30.5 s), killing none."""
    env = {
        "APP_CONFIG": json.dumps(config),
        "SETTINGS_KEYWORDS": json.dumps(keywords),
        "LINGER_SECONDS": str(LINGER_SECONDS),
        "GS_SHUTDOWN_TIMEOUT_SECONDS": str(ENV_TIMEOUT),
        # Counted from Stopped: neither process's watchdog may end it first.
        "GS_EXIT_WATCHDOG_SECONDS": "120",
    }
    server = servers([*GUNICORN, "--preload", "-w", "1", "--threads", "4", "lingering_app:app"], env)
    ready = server.wait_for_log(r"last_call: worker \d+ ready", timeout=30)
    worker = int(re.search(r"last_call: worker (\d+) ready", ready).group(1))
    try:
        sent = server.signal(signal.SIGTERM)
        server.wait_for_log(rf"lingering {worker} for", timeout=20)
        code = server.wait_exit(LINGER_SECONDS + 60)
        took = time.monotonic() - sent
        output = "\n".join(server.lines)
        assert code == 0, output
        assert f"lingered {worker}" not in output, f"the master waited {took:.1f} s for the worker:\n{output}"
        # Not before the app's graceful_timeout from the master's Stopping
        # (half a second to spare for clocks; load only makes it later).
        earliest = MASTER_STOPPING + APP_TIMEOUT - 0.5
        assert earliest <= took < LINGER_SECONDS, f"exited {took:.1f} s after SIGTERM:\n{output}"
        # Killed by the master before it exited, not left behind.
        eventually(lambda: not _running(worker), timeout=10)
    finally:
        if _running(worker):
            os.kill(worker, signal.SIGKILL)


@pytest.mark.parametrize(
    ("keywords", "winner"), [({}, "env-token"), ({"drain_token": "keyword-token"}, "keyword-token")]
)
def test_uvicorn_takes_the_lifespans_keywords_over_the_environment(servers, keywords, winner):
    env = {"LIFESPAN_KEYWORDS": json.dumps({**keywords, "drain_delay_seconds": 1}), "GS_SHUTDOWN_TIMEOUT": "5"}
    server = servers([sys.executable, str(APPS / "settings_asgi.py")], env)
    output = "\n".join(server.lines)
    assert "GS_SHUTDOWN_TIMEOUT is not a setting" in output, output
    assert _accepted_token(server) == winner
    _exits_after_the_apps_drain_delay(server)


def test_a_plain_wsgi_server_with_the_sequence_installed_takes_the_apps_settings(servers):
    env = {"APP_CONFIG": json.dumps({"GS_DRAIN_DELAY_SECONDS": 1})}
    server = servers([sys.executable, str(APPS / "settings_app.py"), "wsgiref-installed"], env)
    assert server.client.get("/pid").status_code == 200
    _exits_after_the_apps_drain_delay(server)
    assert "stopped" in server.lines, server.lines
    assert "nothing in this process installed" not in "\n".join(server.lines)


def test_a_plain_wsgi_server_without_the_sequence_is_reported_naming_it_and_the_settings(servers):
    env = {"APP_CONFIG": json.dumps({"GS_DRAIN_DELAY_SECONDS": 1})}
    server = servers([sys.executable, str(APPS / "settings_app.py"), "wsgiref"], env)
    assert server.client.get("/pid").status_code == 200
    line = server.wait_for_log(r"nothing in this process installed the runtime's SIGTERM handling", timeout=10)
    assert "served by WSGIServer/" in line, line
    assert "GS_DRAIN_DELAY_SECONDS from the app take no effect" in line, line
    assert "install_signal_handlers" in line and "last_call.waitress.serve" in line, line


def _django(settings_py: dict, keywords: dict | None = None) -> tuple[list[str], dict[str, str]]:
    env = {"DJANGO_SETTINGS_JSON": json.dumps(settings_py), "LIFESPAN_KEYWORDS": json.dumps(keywords or {})}
    return [sys.executable, str(APPS / "settings_django.py")], env


@pytest.mark.parametrize(
    ("settings_py", "keywords", "winner"),
    [
        ({}, {}, "env-token"),
        ({"GS_DRAIN_TOKEN": "config-token"}, {}, "config-token"),
        ({"GS_DRAIN_TOKEN": "config-token"}, {"drain_token": "keyword-token"}, "keyword-token"),
    ],
    ids=["environment", "settings-py", "keyword"],
)
def test_django_under_uvicorn_takes_the_keyword_then_settings_py_then_the_environment(
    servers, settings_py, keywords, winner
):
    command, env = _django({**settings_py, "GS_DRAIN_DELAY_SECONDS": 1, "GS_DRAIN_DELAY": 2}, keywords)
    server = servers(command, env)
    output = "\n".join(server.lines)
    assert "settings.GS_DRAIN_DELAY is not a setting" in output and "GS_DRAIN_DELAY_SECONDS?" in output, output
    assert _accepted_token(server) == winner
    _exits_after_the_apps_drain_delay(server)


def test_django_under_gunicorn_takes_settings_py_with_preload_and_refuses_it_without(servers):
    settings_py = {"GS_DRAIN_TOKEN": "config-token", "GS_DRAIN_DELAY_SECONDS": 1}
    _, env = _django(settings_py)
    server = servers([*GUNICORN, "--preload", "-w", "1", "--threads", "4", "settings_django:application"], env)
    assert _accepted_token(server) == "config-token"
    _exits_after_the_apps_drain_delay(server)
    refused = servers([*GUNICORN, "-w", "1", "--threads", "4", "settings_django:application"], env)
    assert refused.wait_exit(30) != 0
    output = "\n".join(refused.lines)
    # The first of the two the master read that settings.py gives anew.
    assert "settings.GS_DRAIN_DELAY_SECONDS = '1' cannot take effect" in output, output
    assert "gunicorn's master" in output and "--preload" in output, output
