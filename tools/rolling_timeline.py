"""The time series of one rolling run, for the report page
(``rolling_report.py``): every pod's life and, for each old pod, its
termination and shutdown phases; every stream connection the clients held
(``stream_log.py``); the windows in which the runtime spreads its
reconnect hints. Recorded from what happened, nothing derived for looks:

* **open streams per pod**: the clients' own record of each connection
  (when it opened, on which pod, when and how it closed). The same
  measure with and without the runtime (the baseline has no probe
  listener to ask);
* **the pods' own count** beside it, for the pods with the runtime:
  ``gs_active_streams`` from the probe listener's ``/metrics``, sampled
  every ``SAMPLE_SECONDS``, a terminating pod's every
  ``TERMINATING_SAMPLE_SECONDS`` (``PodSampler``);
* **the phases** of an old pod with the runtime: Draining at the runtime's
  own stamp of the signal (``gs_shutdown_started_timestamp_seconds``),
  ClosingStreams and Stopping at the first sample of ``gs_phase`` that
  showed them (at most one sample late), Stopped at the runtime's stamp
  (``gs_shutdown_duration_seconds``) when a sample caught it; a phase
  shorter than a sample may be seen by none (the report says so); SIGTERM,
  the exit and the SIGKILL of the grace period from the kubelet stand-in;
* **the windows** of the reconnect hints, from the pod's settings by the
  runtime's formula (docs/how-it-works.md): the close notice
  [closing_at, streams_end] and, on the hub host, the hand-off at drain.

Times in the report are seconds from the run's first SIGTERM.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
import kubelet
from prometheus_client.parser import text_string_to_metric_families
from stream_log import Connection, StreamLog

SAMPLE_SECONDS = 0.1
#: A terminating pod's phases last from milliseconds to seconds: it is
#: read five times as often.
TERMINATING_SAMPLE_SECONDS = 0.02
PHASES = ("Serving", "Draining", "ClosingStreams", "Stopping", "Stopped")
#: The figures each sample keeps.
SAMPLED = (
    "gs_active_streams",
    "gs_active_work",
    "gs_phase",
    "gs_shutdown_started_timestamp_seconds",
    "gs_shutdown_duration_seconds",
)


@dataclass
class PodRecord:
    """One pod of the run: its slot in HAProxy (``slotN``, the ``X-Pod``
    header) while it holds it, and what the sampler read from it."""

    name: str
    slot: str
    container: kubelet.Container
    created: float
    ready: float | None = None
    terminating: bool = False  # its deletion has begun
    freed: float | None = None
    termination: kubelet.Termination | None = None
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)


class PodSampler:
    """Reads every live pod's probe ``/metrics`` each ``SAMPLE_SECONDS``
    (a terminating pod's each ``TERMINATING_SAMPLE_SECONDS``) on a thread
    of its own (the baseline's pods have no probe listener: none is read).
    Bounded: stops when told, each request within 0.5 s."""

    def __init__(self, pods: list[PodRecord], probe_port: str | None) -> None:
        self.pods = pods
        self.probe_port = probe_port
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _url(self, pod: PodRecord) -> str | None:
        if self.probe_port is None or pod.container.process.process.poll() is not None:
            return None
        try:
            return f"http://127.0.0.1:{pod.container.port(self.probe_port)}/metrics"
        except (kubelet.ManifestError, KeyError):
            return None  # no probe listener (the baseline)

    def _run(self) -> None:
        due: dict[str, float] = {}
        with httpx.Client(timeout=0.5, trust_env=False) as http:
            while not self._stop.wait(TERMINATING_SAMPLE_SECONDS):
                for pod in list(self.pods):
                    if not pod.terminating and time.monotonic() < due.get(pod.name, 0.0):
                        continue
                    due[pod.name] = time.monotonic() + SAMPLE_SECONDS
                    url = self._url(pod)
                    if url is None:
                        continue
                    try:
                        text = http.get(url).text
                        at = time.monotonic()
                    except httpx.HTTPError:
                        continue  # exiting, or not listening yet
                    figures = {
                        sample.name: sample.value
                        for family in text_string_to_metric_families(text)
                        for sample in family.samples
                        if sample.name in SAMPLED
                    }
                    if "gs_phase" in figures:
                        pod.samples.append((at, figures))

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)


def _seconds(env: dict[str, str], name: str) -> float | None:
    try:
        return float(env[name])
    except (KeyError, ValueError):
        return None


def windows(env: dict[str, str], hub: bool) -> dict[str, list[float]]:
    """The reconnect hints' windows, in seconds from the signal, by the
    runtime's formula (docs/how-it-works.md, with a shutdown hook
    registered, as every example host does): the close notice
    [closing_at, streams_end] and, for the hub's streams, the hand-off at
    drain [drain over, + the close notice, not past streams_end]. Empty
    when the settings are not all given (the runtime's defaults are not
    guessed here)."""
    timeout = _seconds(env, "GS_SHUTDOWN_TIMEOUT_SECONDS")
    notice = _seconds(env, "GS_CLOSE_NOTICE_SECONDS")
    budget = _seconds(env, "GS_HOOK_BUDGET_SECONDS")
    drain = _seconds(env, "GS_DRAIN_DELAY_SECONDS")
    if timeout is None or notice is None or budget is None or drain is None:
        return {}
    hooks_at = timeout - budget
    streams_end = hooks_at - min(notice / 4, 1.0)
    found = {"close notice": [hooks_at - notice, streams_end]}
    if hub:
        start = min(drain, streams_end)
        found["hand-off at drain"] = [start, max(start, min(start + notice, streams_end))]
    return found


def _pod_at(pods: list[PodRecord], slot: str, moment: float) -> PodRecord | None:
    """The pod that held `slot` at `moment` (a slot is given back only once
    its pod has exited and left the load balancer)."""
    holders = [p for p in pods if p.slot == slot and p.created <= moment and (p.freed is None or moment <= p.freed)]
    return holders[-1] if holders else None


def phase_runs(pod: PodRecord) -> list[list[float]]:
    """What the samples saw of the phase: [phase, first seen, last seen]
    for each run of samples that showed the same phase."""
    runs: list[list[float]] = []
    for at, sample in pod.samples:
        phase = sample["gs_phase"]
        if runs and runs[-1][0] == phase:
            runs[-1][2] = at
        else:
            runs.append([phase, at, at])
    return runs


def _phases(pod: PodRecord, wall_offset: float) -> list[dict]:
    """The shutdown phases the pod went through, each with where its time
    comes from: the runtime's stamp (Draining, Stopped), or the first
    sample that showed it (ClosingStreams, Stopping: between the sample
    before and that one). A phase no sample showed is not marked (a pod
    whose streams had ended goes from Draining to Stopping; Stopping may
    last less than a sample)."""
    if not pod.samples:
        return []
    found: list[dict] = []
    started = max(s.get("gs_shutdown_started_timestamp_seconds", 0.0) for _, s in pod.samples)
    if started > 0:
        found.append({"phase": "Draining", "at": started - wall_offset, "source": "the runtime's stamp of the signal"})
    runs = phase_runs(pod)
    for number in (2, 3):
        for n, (phase, first, _last) in enumerate(runs):
            if phase == number:
                after = runs[n - 1][2] if n else None
                found.append({"phase": PHASES[number], "at": first, "source": "sampled", "after": after})
                break
    duration = max(s.get("gs_shutdown_duration_seconds", 0.0) for _, s in pod.samples)
    if started > 0 and duration > 0:
        found.append({"phase": "Stopped", "at": started + duration - wall_offset, "source": "the runtime's stamp"})
    found.sort(key=lambda f: f["at"])
    return found


def _r(value: float | None, zero: float) -> float | None:
    return None if value is None else round(value - zero, 3)


def build(
    pods: list[PodRecord],
    logs: list[StreamLog],
    begun: float,
    ended: float,
    clients_stopped: float,
    wall_offset: float,
    env: dict[str, str],
    hub: bool,
) -> dict:
    """The run's timeline for the report (JSON-ready), times from its first
    SIGTERM. `wall_offset`: time.time() - time.monotonic() during the run
    (the runtime stamps its signal in wall-clock time)."""
    sigterms = [p.termination.sigterm_at for p in pods if p.termination is not None]
    zero = min(sigterms) if sigterms else begun
    pod_rows = []
    # In slot order (pods start on threads of their own: the list is in
    # the order they came up), each slot's pods in the order they held it.
    for pod in sorted(pods, key=lambda p: (int(p.slot.removeprefix("slot")), p.created)):
        ending = pod.termination
        sampled = [[_r(at, zero), s["gs_active_streams"]] for at, s in pod.samples]
        pod_rows.append(
            {
                "name": pod.name,
                "slot": pod.slot,
                "created": _r(pod.created, zero),
                "ready": _r(pod.ready, zero),
                "sigterm": _r(ending.sigterm_at, zero) if ending else None,
                "exit": _r(ending.exited_at, zero) if ending else None,
                "exit_status": (ending.exit_code if ending.killed_by is None else ending.killed_by) if ending else None,
                "sigkill_at": _r(ending.started_at + ending.grace_seconds, zero) if ending else None,
                "phases": [
                    {**f, "at": _r(f["at"], zero), "after": _r(f.get("after"), zero)} for f in _phases(pod, wall_offset)
                ],
                "active_streams_sampled": sampled,
                # [phase, first seen, last seen] for each run of samples.
                "phase_samples": [[int(phase), _r(a, zero), _r(b, zero)] for phase, a, b in phase_runs(pod)],
            }
        )
    connections = []
    for log in logs:
        for c in log.connections:
            holder = _pod_at(pods, c.pod, c.opened)
            connections.append(_row(c, holder.name if holder else c.pod, zero))
    return {
        "zero": "the run's first SIGTERM",
        "start": _r(begun, zero),
        "end": _r(ended, zero),
        "clients_stopped": _r(clients_stopped, zero),
        "sample_seconds": [SAMPLE_SECONDS, TERMINATING_SAMPLE_SECONDS],
        "pods": pod_rows,
        # [pod, kind, client, opened, closed, ending, hint] per connection.
        "connections": connections,
        "windows": windows(env, hub),
    }


def _row(c: Connection, pod: str, zero: float) -> list:
    return [pod, c.kind, c.client, _r(c.opened, zero), _r(c.closed, zero), c.ending, _r(c.hint_at, zero)]
