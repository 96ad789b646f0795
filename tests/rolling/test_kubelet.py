"""The kubelet stand-in (tools/kubelet.py): it reads the manifest, runs the
liveness probe the kubelet's way, and kills at the grace period, counting
preStop time. Real processes as PID 1 of their own PID namespace, real
signals, real HTTP over 127.0.0.1."""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import kubelet
from server_process import eventually

TARGET = [sys.executable, str(Path(__file__).resolve().parent / "pod_target.py")]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (unshare --pid, cgroups)")


def shipped() -> dict:
    for document in yaml.safe_load_all(kubelet.MANIFEST.read_text()):
        if document and document.get("kind") == "Deployment":
            return document
    raise AssertionError("no Deployment in the shipped manifest")


def container_of(document: dict) -> dict:
    return document["spec"]["template"]["spec"]["containers"][0]


def test_the_shipped_manifest_is_read_as_written():
    document = shipped()
    raw = container_of(document)
    spec = kubelet.load()
    assert spec.grace_seconds == document["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert spec.replicas == document["spec"]["replicas"]
    rolling = document["spec"]["strategy"]["rollingUpdate"]
    assert (spec.max_surge, spec.max_unavailable) == (rolling["maxSurge"], rolling["maxUnavailable"])
    assert spec.readiness is not None and spec.liveness is not None
    for probe, written in ((spec.readiness, raw["readinessProbe"]), (spec.liveness, raw["livenessProbe"])):
        assert probe.path == written["httpGet"]["path"]
        assert probe.period == written["periodSeconds"]
        assert probe.timeout == written["timeoutSeconds"]
        assert probe.failure_threshold == written["failureThreshold"]
        assert spec.resolve_port(probe.port) == next(
            p["containerPort"] for p in raw["ports"] if p["name"] == written["httpGet"]["port"]
        )
    assert spec.memory_limit_bytes == 512 * 2**20
    plain = {item["name"]: item["value"] for item in raw["env"] if "value" in item}
    assert {k: spec.env[k] for k in plain} == plain
    assert spec.env["GS_DRAIN_TOKEN"]  # from a secret: a value of our own
    assert spec.pre_stop is None
    env = kubelet.loopback_env(spec)
    assert env["HOST"] == "127.0.0.1" and env["PORT"] == "0" and env["GS_PROBE_ADDR"] == "127.0.0.1:0"


def test_variants_missing_probes_presstop_sleep_and_exec():
    document = copy.deepcopy(shipped())
    raw = container_of(document)
    del raw["readinessProbe"], raw["livenessProbe"]
    raw["lifecycle"] = {"preStop": {"sleep": {"seconds": 4}}}
    spec = kubelet.parse(document)
    assert spec.readiness is None and spec.liveness is None
    assert spec.pre_stop == kubelet.PreStop("sleep", seconds=4.0)

    raw["lifecycle"] = {"preStop": {"exec": {"command": ["sh", "-c", "sleep 2"]}}}
    assert kubelet.parse(document).pre_stop == kubelet.PreStop("exec", command=("sh", "-c", "sleep 2"))

    document["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": "50%", "maxUnavailable": "50%"}
    document["spec"]["replicas"] = 3
    spec = kubelet.parse(document)
    assert (spec.max_surge, spec.max_unavailable) == (2, 1)  # surge rounds up, unavailable down


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda raw, doc: (
                raw["livenessProbe"].update(exec={"command": ["true"]}) or raw["livenessProbe"].pop("httpGet")
            ),
            "httpGet",
        ),
        (lambda raw, doc: raw["resources"]["limits"].update(memory="lots"), "memory"),
        (lambda raw, doc: doc["spec"]["strategy"].update(type="Recreate"), "RollingUpdate"),
        (lambda raw, doc: raw.update(lifecycle={"preStop": {"tcpSocket": {"port": 1}}}), "preStop"),
    ],
)
def test_what_cannot_be_applied_is_refused_by_name(change, message):
    document = copy.deepcopy(shipped())
    change(container_of(document), document)
    with pytest.raises(kubelet.ManifestError, match=message):
        kubelet.parse(document)


def test_overrides_are_recorded():
    spec = kubelet.load().override(grace_seconds=12.0, env={"GS_DRAIN_DELAY_SECONDS": "1"})
    assert spec.grace_seconds == 12.0 and spec.env["GS_DRAIN_DELAY_SECONDS"] == "1"
    assert spec.overrides == ("GS_DRAIN_DELAY_SECONDS: 5 -> 1", "grace_seconds: 30.0 -> 12.0")


def small_spec(**changes) -> kubelet.PodSpec:
    spec = kubelet.PodSpec(
        name="target",
        env={"PORT": "8080", "HOST": "0.0.0.0"},
        ports={"http": 8080},
        readiness=None,
        liveness=kubelet.Probe(path="/healthz", port="http", period=0.3, timeout=1.0, failure_threshold=3),
        pre_stop=None,
        grace_seconds=3.0,
        memory_limit_bytes=256 * 2**20,
        replicas=1,
        max_surge=1,
        max_unavailable=0,
    )
    return kubelet.PodSpec(**{**spec.__dict__, **changes})


@needs_root
def test_the_container_is_pid_1_of_its_own_namespace_in_its_cgroups():
    container = kubelet.Container(small_spec(liveness=None), TARGET, extra_env={"ON_SIGTERM": "exit"})
    try:
        status = Path(f"/proc/{container.pid1}/status").read_text()
        ns_pids = next(line for line in status.splitlines() if line.startswith("NSpid:")).split()[1:]
        assert ns_pids[-1] == "1"  # PID 1 inside its namespace
        groups = Path(f"/proc/{container.pid1}/cgroup").read_text()
        assert f"last-call/{container.name}" in groups
        assert (kubelet.CGROUP_ROOT / "pids" / "last-call" / container.name / "pids.max").read_text().strip() == "1024"
        ending = container.terminate()
        assert (ending.exit_code, ending.killed_by) == (0, None)
    finally:
        container.close()
    assert not (kubelet.CGROUP_ROOT / "pids" / "last-call" / container.name).exists()


@needs_root
def test_liveness_failing_fewer_times_than_the_threshold_restarts_nothing():
    container = kubelet.Container(small_spec(), TARGET, extra_env={"FAIL_HEALTHZ": "2", "ON_SIGTERM": "exit"})
    try:
        eventually(lambda: container.liveness_failures >= 2, timeout=10)
        time.sleep(1.5)  # five more periods, all healthy
        assert container.restarts == 0
    finally:
        container.close()


@needs_root
def test_liveness_failing_the_threshold_restarts_with_sigterm_and_counts_it():
    restarted = []
    container = kubelet.Container(
        small_spec(), TARGET, extra_env={"FAIL_HEALTHZ": "-1", "ON_SIGTERM": "exit"}, on_restart=restarted.append
    )
    try:
        first_port = container.process.port
        eventually(lambda: restarted, timeout=15)
        ending = container.terminations[0]
        assert ending.reason == "liveness"
        assert (ending.exit_code, ending.killed_by) == (0, None)  # SIGTERM ended it
        assert container.liveness_failures >= 3
        assert restarted == [container]
        assert container.process.process.poll() is None and container.process.port != first_port
    finally:
        container.close()


@needs_root
def test_sigkill_comes_at_the_grace_period_counting_the_pre_stop_hook():
    # No SIGTERM handler: as PID 1 it ignores SIGTERM, as in a pod.
    spec = small_spec(liveness=None, pre_stop=kubelet.PreStop("sleep", seconds=1.0), grace_seconds=3.0)
    container = kubelet.Container(spec, TARGET)
    try:
        ending = container.terminate()
    finally:
        container.close()
    assert ending.killed_by == "SIGKILL (grace period)" and ending.exit_code is None
    assert 0.9 <= ending.pre_stop_seconds <= 1.5
    assert 2.9 <= ending.seconds_to_exit <= 4.0  # 3 s in all, not 1 + 3


@needs_root
def test_an_exec_pre_stop_runs_inside_the_container_before_sigterm():
    marker = Path(f"/tmp/last-call-prestop-{os.getpid()}")
    marker.unlink(missing_ok=True)
    hook = kubelet.PreStop("exec", command=("sh", "-c", f"ps -o pid= -p 1 > {marker}; sleep 0.5"))
    container = kubelet.Container(small_spec(liveness=None, pre_stop=hook), TARGET, extra_env={"ON_SIGTERM": "exit"})
    try:
        ending = container.terminate()
    finally:
        container.close()
    try:
        assert marker.read_text().strip() == "1"  # it saw the container's PID 1
    finally:
        marker.unlink(missing_ok=True)
    assert ending.exit_code == 0 and ending.pre_stop_seconds >= 0.5


@needs_root
def test_going_over_the_memory_limit_is_a_counted_oom_kill():
    spec = small_spec(liveness=None, memory_limit_bytes=64 * 2**20)
    container = kubelet.Container(spec, TARGET, extra_env={"ALLOCATE_MB": "200"})
    try:
        eventually(lambda: container.process.process.poll() is not None, timeout=15)
        ending = container.terminate(reason="end of run")
    finally:
        container.close()
    assert ending.killed_by == "OOM" and container.oom_kills == 1
