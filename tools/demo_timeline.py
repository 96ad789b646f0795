"""The demonstration: an example server, a task streaming its progress over
SSE, and a real SIGTERM mid-task, told as a timeline relative to the signal.

Scene 1: a task that fits inside the grace period finishes; its stream
receives every event; readiness flips at once, liveness stays up, a new task
is refused with 503 + Retry-After; the process exits 0.

Scene 2: a task too long for the grace period. Its stream is pod-bound (no
other pod has the task), so it runs through the close notice until the
streams' last moment (just before the hooks' budget), then the task is
cancelled and its stream ends honestly with `task_failed` (reason
`shutdown`), an event the
frontend handles, instead of being cut or pointed at a pod that cannot serve
it; the process exits 0 well inside the pod's grace period (SIGKILL never
comes).

Readiness and liveness are probed on the runtime's own probe port
(GS_PROBE_ADDR), as the Kubernetes manifest does.

Exits 0 when both scenes went as described. The timeline is also drawn
(``demo_svg.py``): an SVG with one mark per printed line, written to
``target/demo-timeline-HOST.svg`` (``--svg``), whose path it prints.

    python tools/demo_timeline.py [--host flask|rust] [--svg PATH]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import demo_svg  # noqa: E402
import hosts  # noqa: E402
from contract_client import follow_stream, start_task  # noqa: E402
from server_process import ServerProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class Timeline:
    """Prints lines stamped relative to the signal (negative before it),
    and keeps each for the picture, on its lane."""

    def __init__(self) -> None:
        self.signal_at = None
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self.lines: list[tuple[float, str, str, str, bool]] = []  # (monotonic, lane, text, short, alarm)

    def say(
        self, text: str, at: float | None = None, lane: str = "process", short: str = "", alarm: bool = False
    ) -> None:
        at = time.monotonic() if at is None else at
        zero = self.signal_at if self.signal_at is not None else None
        stamp = f"{at - zero:+7.2f} s" if zero is not None else f"{at - self._started:7.2f} s (before the signal)"
        with self._lock:
            print(f"  {stamp}  {text}", flush=True)
            self.lines.append((at, lane, text, short, alarm))

    def scene(self, title: str) -> demo_svg.Scene:
        """The scene for the picture, its times from the signal."""
        zero = self.signal_at if self.signal_at is not None else self._started
        return demo_svg.Scene(
            title, [demo_svg.Line(at - zero, lane, text, short, alarm) for at, lane, text, short, alarm in self.lines]
        )


def describe(event: dict) -> tuple[str, str]:
    """The printed line of a stream's event, and its label on the picture
    (none for a progress step: the count of events shows them)."""
    if event["event"] == "task_event":
        payload = json.loads(event["data"])
        extra = payload["data"]
        detail = f" {extra['step']}/{extra['steps']}" if "step" in extra else ""
        kind = payload["event_type"]
        return f"stream: {kind}{detail}", "" if kind == "progress_update" else kind
    if event["event"] == "reconnect":
        return (
            f"stream: event: reconnect (retry: {event['retry']} ms) — the client will reconnect to another pod",
            "reconnect",
        )
    return f"stream: event {event['event']}", event["event"]


def probe_until_exit(server: ServerProcess, timeline: Timeline, stop: threading.Event) -> None:
    """Readiness and liveness, as the kubelet would probe them (every 0.25 s
    here), reporting only changes. Bounded by the process's life."""
    last = None
    with httpx.Client(base_url=server.probe_url or server.url, timeout=2) as client:
        for _ in range(400):
            if stop.is_set() or server.process.poll() is not None:
                return
            try:
                ready = client.get("/readyz")
                alive = client.get("/healthz")
                state = (ready.status_code, ready.text.strip(), alive.status_code, alive.text.strip())
            except httpx.HTTPError:
                state = ("no answer",)
            if state != last:
                if len(state) == 4:
                    timeline.say(
                        f"GET /readyz -> {state[0]} {state[1]};  GET /healthz -> {state[2]} {state[3]}",
                        lane="probes",
                        short=f"ready {state[0]}, live {state[2]}",
                        alarm=state[2] != 200,
                    )
                else:
                    timeline.say(
                        "probes: the server no longer answers (it is exiting)", lane="probes", short="no answer"
                    )
                last = state
            time.sleep(0.25)


def scene(host: str, title: str, env: dict, steps: int, step_seconds: float, signal_after: float) -> dict:
    """One scene; its outcome, and its timeline for the picture ("scene")."""
    command, cwd = hosts.command(host, profile="release")
    print(f"\n== {title}")
    print("   " + ", ".join(f"{k}={v}" for k, v in env.items()))
    timeline = Timeline()
    server = ServerProcess(command, {**env, "SSE_HEARTBEAT_SECONDS": "1", "GS_PROBE_ADDR": "127.0.0.1:0"}, cwd=cwd)
    outcome = {}
    try:
        started = start_task(server.client, steps=steps, step_seconds=step_seconds)
        body = started.json()
        timeline.say(
            f"POST /api/tasks {{steps: {steps}, step_seconds: {step_seconds}}} -> {started.status_code}",
            short=f"task: {started.status_code}",
        )
        results = {}

        def received(event: dict) -> None:
            text, short = describe(event)
            timeline.say(text, event["at"], lane="stream", short=short)

        def follow() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                results["stream"] = follow_stream(client, body["stream_url"], on_event=received)

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        time.sleep(signal_after)
        timeline.signal_at = server.signal(signal.SIGTERM)
        timeline.say(f"SIGTERM sent to pid {server.process.pid}", timeline.signal_at, short="SIGTERM")
        stop_probes = threading.Event()
        prober = threading.Thread(target=probe_until_exit, args=(server, timeline, stop_probes), daemon=True)
        prober.start()
        time.sleep(0.5)
        refused = start_task(server.client, steps=1, step_seconds=0)
        timeline.say(
            f"POST /api/tasks (a new task) -> {refused.status_code}, Retry-After: {refused.headers.get('Retry-After')}",
            short=f"new task: {refused.status_code}",
            alarm=refused.status_code != 503,
        )
        reader.join(60)
        stream = results.get("stream")
        if stream is not None:
            if stream.completed:
                how = "ended naturally"
            elif "task_failed" in stream.event_types:
                how = "ended honestly with task_failed (reason: shutdown)"
            elif stream.reconnect:
                how = "ended with a reconnect hint"
            else:
                how = "was CUT"
            cut = stream.cut
            timeline.say(f"the stream {how}", stream.ended_at, lane="stream", short="CUT" if cut else "end", alarm=cut)
        code = server.wait_exit(60)
        stop_probes.set()
        timeline.say(f"the process exited with status {code}", short=f"exit {code}", alarm=code != 0)
        outcome = {"stream": stream, "exit": code, "refused": refused.status_code}
    finally:
        server.close()
        outcome["scene"] = timeline.scene(title)
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", choices=hosts.NAMES, default="flask")
    parser.add_argument("--svg", type=Path, help="the picture (default: target/demo-timeline-HOST.svg)")
    args = parser.parse_args()
    print(f"last-call demonstration, host: {args.host}")

    first = scene(
        args.host,
        "Scene 1: a task that fits inside the grace period",
        {"GS_DRAIN_DELAY_SECONDS": "2", "GS_SHUTDOWN_TIMEOUT_SECONDS": "15", "GS_CLOSE_NOTICE_SECONDS": "3"},
        steps=10,
        step_seconds=0.4,
        signal_after=1.2,
    )
    second = scene(
        args.host,
        "Scene 2: a task too long for the grace period",
        {
            "GS_DRAIN_DELAY_SECONDS": "1",
            "GS_SHUTDOWN_TIMEOUT_SECONDS": "6",
            "GS_CLOSE_NOTICE_SECONDS": "2",
            "GS_HOOK_BUDGET_SECONDS": "1",
        },
        steps=60,
        step_seconds=0.5,
        signal_after=1.0,
    )
    checks = {
        "scene 1: the stream received task_completed": bool(first.get("stream") and first["stream"].completed),
        "scene 1: a new task was refused with 503": first.get("refused") == 503,
        "scene 1: the process exited 0": first.get("exit") == 0,
        "scene 2: the task's stream ended with task_failed (reason: shutdown), not cut, never sent elsewhere": bool(
            second.get("stream")
            and any(
                e["event_type"] == "task_failed" and e["data"].get("reason") == "shutdown"
                for e in second["stream"].task_events
            )
            and second["stream"].reconnect is None
        ),
        "scene 2: the process exited 0 at the shutdown deadline, inside the grace period": second.get("exit") == 0,
    }
    print()
    for check, passed in checks.items():
        print(f"  [{'ok' if passed else 'FAILED'}] {check}")
    graceful = all(checks.values())
    picture = args.svg or ROOT / "target" / f"demo-timeline-{args.host}.svg"
    picture.parent.mkdir(parents=True, exist_ok=True)
    picture.write_text(demo_svg.timeline_svg([first["scene"], second["scene"]]))
    print(f"\nthe timeline as a picture: {picture.resolve()}")
    print("\nverdict: " + ("graceful — no stream was cut" if graceful else "NOT graceful"))
    return 0 if graceful else 1


if __name__ == "__main__":
    sys.exit(main())
