"""A kubelet stand-in: runs the example servers the way
``examples/kubernetes/deployment.yaml`` tells a cluster to, on this machine.

What it takes from the manifest (``load``):

* the container's command is replaced by the host's (``hosts.command``), its
  ``env`` is passed through (a ``secretKeyRef`` becomes a random value, as
  no secret store exists here), with the pod's network replaced by loopback:
  ``0.0.0.0`` becomes ``127.0.0.1`` and a container port (``8080``,
  ``0.0.0.0:8081``) becomes ``0`` so that each pod gets free ports, which it
  announces (``serving on …``, ``probes on …``);
* the readiness probe (path, port, period, timeout, thresholds): the load
  balancer's health checks are configured from it (``rolling.HAProxy``);
* the liveness probe, run here the kubelet's way: every ``periodSeconds``
  an HTTP GET with ``timeoutSeconds``; ``failureThreshold`` consecutive
  failures (a timeout, a refused connection or a status outside 200-399)
  restart the container (preStop, SIGTERM, SIGKILL at the probe's
  ``terminationGracePeriodSeconds`` or the pod's), and the restart is counted;
* the ``preStop`` hook (``exec``, ``sleep`` or ``httpGet``), run before
  SIGTERM, its time counted against the grace period;
* ``terminationGracePeriodSeconds``: SIGKILL when it has passed since the
  termination began;
* the memory limit (a memory cgroup: going over it is a real OOM kill,
  counted from the cgroup's ``oom_kill`` counter) and a PID limit (a pids
  cgroup, ``DEFAULT_PIDS_MAX``; clusters commonly set one, the manifest
  cannot);
* the Deployment's replicas and ``RollingUpdate`` strategy (``maxSurge``,
  ``maxUnavailable``), which ``rolling.py`` follows.

Each container runs as PID 1 of a PID namespace of its own (``unshare --pid
--fork --mount-proc --kill-child``, root needed), as in a pod: a PID 1 without a SIGTERM
handler ignores SIGTERM, and only SIGKILL ends it. Signals go to that PID 1
(the container runtime's way), not to ``unshare``, which ignores them.

Without root (or without the cgroup v1 memory and pids controllers) a
``Container`` refuses to start rather than run something that is not a
container.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import httpx
import yaml
from server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "examples" / "kubernetes" / "deployment.yaml"
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: The PID limit when the cluster sets one (the manifest cannot): 1,024 is a
#: common setting of the kubelet's podPidsLimit.
DEFAULT_PIDS_MAX = 1024
#: Kubernetes' defaults where the manifest says nothing.
DEFAULT_GRACE_SECONDS = 30.0
#: Which environment variable makes a host announce which port: the example
#: servers' contract (docs/examples.md) — PORT for the HTTP server, GS_PROBE_ADDR for
#: the runtime's probe listener, GS_STREAM_ADDR for its stream hub.
ANNOUNCED_BY = {"PORT": "serving", "GS_PROBE_ADDR": "probes", "GS_STREAM_ADDR": "streams"}


class ManifestError(ValueError):
    """The manifest has something this stand-in cannot apply."""


@dataclass(frozen=True)
class Probe:
    path: str
    port: str  # a port name ("probes") or number ("8081")
    period: float = 10.0
    timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1
    initial_delay: float = 0.0
    grace_seconds: float | None = None  # the probe's own terminationGracePeriodSeconds


@dataclass(frozen=True)
class PreStop:
    kind: str  # "exec", "sleep" or "httpGet"
    command: tuple[str, ...] = ()
    seconds: float = 0.0
    path: str = "/"
    port: str = ""


@dataclass(frozen=True)
class PodSpec:
    name: str
    env: dict[str, str]
    ports: dict[str, int]  # name -> containerPort
    readiness: Probe | None
    liveness: Probe | None
    pre_stop: PreStop | None
    grace_seconds: float
    memory_limit_bytes: int | None
    replicas: int
    max_surge: int
    max_unavailable: int
    pids_max: int = DEFAULT_PIDS_MAX
    #: What a scenario changed, "name: manifest value -> value", for the report.
    overrides: tuple[str, ...] = ()

    def override(self, label: str = "", **changes: Any) -> PodSpec:
        """A copy with `changes` applied and recorded (each note prefixed
        with `label`, when given); `env` changes merge."""
        notes = list(self.overrides)
        prefix = f"{label}: " if label else ""
        if "env" in changes:
            merged = dict(self.env)
            for key, value in changes["env"].items():
                notes.append(f"{prefix}{key}: {self.env.get(key, 'unset')} -> {value or 'unset'}")
                merged[key] = value
            changes["env"] = merged
        for key, value in changes.items():
            if key != "env":
                notes.append(f"{prefix}{key}: {getattr(self, key)} -> {value}")
        return replace(self, overrides=tuple(notes), **changes)

    def resolve_port(self, port: str) -> int:
        if port.isdigit():
            return int(port)
        if port not in self.ports:
            raise ManifestError(f"probe port {port!r} is not a named container port ({sorted(self.ports)})")
        return self.ports[port]


_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T)?$")
_UNITS = {
    None: 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def memory_bytes(quantity: Any) -> int:
    """A Kubernetes memory quantity ("512Mi", "1G", 1048576) in bytes."""
    found = _QUANTITY.match(str(quantity).strip())
    if not found:
        raise ManifestError(f"unreadable memory quantity {quantity!r}")
    return int(float(found.group(1)) * _UNITS[found.group(2)])


def _count(value: Any, replicas: int, round_up: bool, name: str) -> int:
    """maxSurge / maxUnavailable: an integer or a percentage of replicas
    (surge rounds up, unavailable down, as the Deployment controller does)."""
    text = str(value).strip()
    if text.endswith("%"):
        share = float(text[:-1]) * replicas / 100
        return math.ceil(share) if round_up else math.floor(share)
    if not text.isdigit():
        raise ManifestError(f"unreadable {name} {value!r}")
    return int(text)


def _probe(raw: dict | None) -> Probe | None:
    if raw is None:
        return None
    if "httpGet" not in raw:
        raise ManifestError(f"only httpGet probes are run here, not {sorted(raw)}")
    get = raw["httpGet"]
    grace = raw.get("terminationGracePeriodSeconds")
    return Probe(
        path=get.get("path", "/"),
        port=str(get["port"]),
        period=float(raw.get("periodSeconds", 10)),
        timeout=float(raw.get("timeoutSeconds", 1)),
        failure_threshold=int(raw.get("failureThreshold", 3)),
        success_threshold=int(raw.get("successThreshold", 1)),
        initial_delay=float(raw.get("initialDelaySeconds", 0)),
        grace_seconds=float(grace) if grace is not None else None,
    )


def _pre_stop(raw: dict | None) -> PreStop | None:
    hook = (raw or {}).get("preStop")
    if hook is None:
        return None
    if "exec" in hook:
        return PreStop("exec", command=tuple(str(part) for part in hook["exec"]["command"]))
    if "sleep" in hook:
        return PreStop("sleep", seconds=float(hook["sleep"]["seconds"]))
    if "httpGet" in hook:
        return PreStop("httpGet", path=hook["httpGet"].get("path", "/"), port=str(hook["httpGet"]["port"]))
    raise ManifestError(f"unknown preStop handler {sorted(hook)}")


def parse(document: dict) -> PodSpec:
    """The PodSpec of a Deployment document (its first container)."""
    if document.get("kind") != "Deployment":
        raise ManifestError(f"expected a Deployment, got {document.get('kind')!r}")
    spec = document["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "valueFrom" in item:
            env[item["name"]] = secrets.token_hex(16)  # no secret store here
    replicas = int(spec.get("replicas", 1))
    strategy = spec.get("strategy", {})
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        raise ManifestError(f"only the RollingUpdate strategy is followed, not {strategy.get('type')!r}")
    rolling = strategy.get("rollingUpdate", {})
    surge = _count(rolling.get("maxSurge", "25%"), replicas, True, "maxSurge")
    unavailable = _count(rolling.get("maxUnavailable", "25%"), replicas, False, "maxUnavailable")
    if surge == 0 and unavailable == 0:
        raise ManifestError("maxSurge and maxUnavailable cannot both be 0")
    limit = container.get("resources", {}).get("limits", {}).get("memory")
    return PodSpec(
        name=document.get("metadata", {}).get("name", "pod"),
        env=env,
        ports={p.get("name", str(p["containerPort"])): int(p["containerPort"]) for p in container.get("ports", [])},
        readiness=_probe(container.get("readinessProbe")),
        liveness=_probe(container.get("livenessProbe")),
        pre_stop=_pre_stop(container.get("lifecycle")),
        grace_seconds=float(pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)),
        memory_limit_bytes=memory_bytes(limit) if limit is not None else None,
        replicas=replicas,
        max_surge=surge,
        max_unavailable=unavailable,
    )


def load(path: Path = MANIFEST) -> PodSpec:
    """The Deployment in the manifest file at `path`."""
    for document in yaml.safe_load_all(path.read_text()):
        if document and document.get("kind") == "Deployment":
            return parse(document)
    raise ManifestError(f"no Deployment in {path}")


def loopback_env(spec: PodSpec) -> dict[str, str]:
    """The container's environment with the pod network mapped to loopback
    and every container port to a free one (0)."""
    env = {}
    numbers = {str(port) for port in spec.ports.values()}
    for key, value in spec.env.items():
        host, _, port = value.rpartition(":")
        if value in numbers:
            value = "0"
        elif host and port in numbers:
            value = "127.0.0.1:0"
        elif value == "0.0.0.0":
            value = "127.0.0.1"
        env[key] = value
    return env


# --- the container -----------------------------------------------------------


def _cgroup(controller: str, name: str) -> Path:
    path = CGROUP_ROOT / controller / "last-call" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Termination:
    """How one container ended."""

    reason: str  # "rollout", "liveness", "end of run"
    exit_code: int | None  # None when killed by a signal
    killed_by: str | None  # "SIGKILL (grace period)", "OOM", None
    seconds_to_exit: float  # from the start of the termination (preStop or SIGTERM)
    pre_stop_seconds: float
    grace_seconds: float
    watchdog_line: bool  # the runtime's exit watchdog said it ended the process
    hook_left_running: bool  # the runtime said a shutdown hook overran and was left behind
    output_tail: list[str] = field(default_factory=list)
    #: time.monotonic() of the termination's start (preStop, or SIGTERM
    #: without one), of SIGTERM and of the exit (or the SIGKILL): the
    #: rolling report's marks.
    started_at: float = 0.0
    sigterm_at: float = 0.0
    exited_at: float = 0.0


class Container:
    """One example server as PID 1 of a PID namespace, in memory and pids
    cgroups of its own, with the liveness probe run against it."""

    _serial = 0
    _serial_lock = threading.Lock()

    def __init__(
        self,
        spec: PodSpec,
        command: list[str],
        cwd: Path | None = None,
        extra_env: dict[str, str] | None = None,
        on_restart: Callable[[Container], None] | None = None,
        liveness: bool = True,
    ) -> None:
        if os.geteuid() != 0:
            raise PermissionError("a container needs root (unshare --pid, cgroups)")
        with Container._serial_lock:
            Container._serial += 1
            self.name = f"{spec.name}-{os.getpid()}-{Container._serial}"
        self.spec = spec
        self.command = command
        self.cwd = cwd
        self.env = {**loopback_env(spec), **(extra_env or {})}
        self.on_restart = on_restart
        self.restarts = 0
        self.oom_kills = 0
        self.terminations: list[Termination] = []
        self.liveness_failures = 0
        self._lock = threading.Lock()
        self._terminating = threading.Event()
        self._memory = _cgroup("memory", self.name)
        self._pids = _cgroup("pids", self.name)
        if spec.memory_limit_bytes is not None:
            (self._memory / "memory.limit_in_bytes").write_text(str(spec.memory_limit_bytes))
        (self._pids / "pids.max").write_text(str(spec.pids_max))
        self.process = self._start()
        self._liveness_stop = threading.Event()
        self._liveness_thread: threading.Thread | None = None
        if liveness and spec.liveness is not None:
            self._liveness_thread = threading.Thread(target=self._run_liveness, daemon=True)
            self._liveness_thread.start()

    # The container's process tree: sh joins the cgroups, then becomes
    # unshare, whose child is PID 1 of the new namespace.
    def _start(self) -> ServerProcess:
        join = (
            f"echo $$ > {self._memory}/cgroup.procs && echo $$ > {self._pids}/cgroup.procs && "
            'exec unshare --pid --fork --mount-proc --kill-child -- "$@"'
        )
        # Counted before the start: an OOM kill may come before the
        # process announces itself.
        self._oom_before = self._oom_count()
        return ServerProcess(["sh", "-c", join, "container", *self.command], self.env, cwd=self.cwd)

    @property
    def pid1(self) -> int:
        """The host PID of the container's PID 1 (unshare's only child)."""
        unshare = self.process.process.pid
        children = Path(f"/proc/{unshare}/task/{unshare}/children").read_text().split()
        if not children:
            raise ProcessLookupError("the container's PID 1 is gone")
        return int(children[0])

    def port(self, name: str) -> int:
        """The free port a named container port is served on."""
        number = str(self.spec.ports[name]) if not name.isdigit() else name
        for key, value in self.spec.env.items():
            if value == number or value.endswith(":" + number):
                announced = ANNOUNCED_BY.get(key)
                if announced == "serving":
                    return self.process.port
                if announced == "probes" and self.process.probe_url:
                    return int(self.process.probe_url.rsplit(":", 1)[1].rstrip("/"))
                if announced == "streams" and self.process.stream_url:
                    return int(self.process.stream_url.rsplit(":", 1)[1].rstrip("/"))
        raise ManifestError(f"container port {name} is not announced by this host (no probe listener or hub?)")

    def _oom_count(self) -> int:
        for line in (self._memory / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def _run_liveness(self) -> None:
        probe = self.spec.liveness
        assert probe is not None
        if self._liveness_stop.wait(probe.initial_delay):
            return
        failures = 0
        with httpx.Client(timeout=probe.timeout) as http:
            while not self._liveness_stop.wait(probe.period):
                if self._terminating.is_set():
                    continue  # the kubelet does not restart a pod it is terminating
                try:
                    url = f"http://127.0.0.1:{self.port(probe.port)}{probe.path}"
                    healthy = 200 <= http.get(url).status_code < 400
                except (httpx.HTTPError, ManifestError, OSError):
                    healthy = False
                failures = 0 if healthy else failures + 1
                if not healthy:
                    self.liveness_failures += 1
                if failures >= probe.failure_threshold and not self._terminating.is_set():
                    failures = 0
                    grace = probe.grace_seconds if probe.grace_seconds is not None else self.spec.grace_seconds
                    self._stop("liveness", grace)
                    with self._lock:
                        if self._liveness_stop.is_set():
                            return  # closed meanwhile: start nothing
                        self.restarts += 1
                        self.process = self._start()
                    if self.on_restart is not None:
                        self.on_restart(self)

    def _run_pre_stop(self, deadline: float) -> None:
        hook = self.spec.pre_stop
        if hook is None:
            return
        left = max(0.0, deadline - time.monotonic())
        if hook.kind == "sleep":
            time.sleep(min(hook.seconds, left))
        elif hook.kind == "exec":
            # Inside the container: its namespaces and cgroups.
            try:
                subprocess.run(
                    ["nsenter", "-t", str(self.pid1), "-p", "-m", "--", *hook.command],
                    timeout=left,
                    cwd=self.cwd,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        else:
            try:
                httpx.get(f"http://127.0.0.1:{self.port(hook.port)}{hook.path}", timeout=max(left, 0.001))
            except httpx.HTTPError:
                pass

    def _stop(self, reason: str, grace: float) -> Termination:
        """preStop, SIGTERM to PID 1, SIGKILL at `grace` from the start."""
        started = time.monotonic()
        deadline = started + grace
        self._run_pre_stop(deadline)
        pre_stop_seconds = time.monotonic() - started
        sigterm_at = time.monotonic()
        try:
            os.kill(self.pid1, signal.SIGTERM)
        except (ProcessLookupError, FileNotFoundError):
            pass  # exited during preStop
        killed_by = None
        try:
            code: int | None = self.process.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.kill(self.pid1, signal.SIGKILL)  # the whole namespace goes with its PID 1
            except (ProcessLookupError, FileNotFoundError):
                pass
            self.process.process.wait(timeout=10)
            code, killed_by = None, "SIGKILL (grace period)"
        exited_at = time.monotonic()
        seconds = exited_at - started
        self.process.wait_exit(timeout=5)  # collects the rest of its output
        oom = self._oom_count() - self._oom_before
        if oom > 0:
            self.oom_kills += oom
            code, killed_by = None, "OOM"
        ending = Termination(
            reason=reason,
            exit_code=code,
            killed_by=killed_by,
            seconds_to_exit=round(seconds, 3),
            pre_stop_seconds=round(pre_stop_seconds, 3),
            grace_seconds=grace,
            watchdog_line=any("watchdog" in line.lower() for line in self.process.lines),
            hook_left_running=any("left running" in line for line in self.process.lines),
            output_tail=self.process.lines[-15:],
            started_at=started,
            sigterm_at=sigterm_at,
            exited_at=exited_at,
        )
        self.process.close()
        self.terminations.append(ending)
        return ending

    def terminate(self, reason: str = "rollout", grace: float | None = None) -> Termination:
        """The pod's deletion: preStop, SIGTERM, SIGKILL at the grace period."""
        self._terminating.set()
        self._liveness_stop.set()
        with self._lock:
            return self._stop(reason, self.spec.grace_seconds if grace is None else grace)

    def _kill(self) -> None:
        if self.process.process.poll() is None:
            try:
                os.kill(self.pid1, signal.SIGKILL)
            except (ProcessLookupError, FileNotFoundError):
                pass
        self.process.close()

    def close(self) -> None:
        """Kills whatever still runs and removes the cgroups (bounded)."""
        self._liveness_stop.set()
        self._kill()
        if self._liveness_thread is not None:
            self._liveness_thread.join(timeout=60)  # ends its restart, if any
        self._kill()
        # Whatever is left in the cgroup (nothing, unless a restart raced
        # with the close) goes too: the cgroup knows every process.
        for pid in (self._pids / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        for group in (self._memory, self._pids):
            for _ in range(50):
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # the last task is still leaving
