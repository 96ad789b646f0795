"""The Kubernetes manifests: valid against the Kubernetes schemas, and
their durations consistent with each other and with the grace period."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "examples" / "kubernetes"
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]


def documents():
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path.name, document


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_against_the_schemas(version):
    checked = 0
    for name, document in documents():
        kubernetes_validate.validate(document, version, strict=True)
        checked += 1
    assert checked >= 4


def test_a_broken_manifest_is_rejected():
    deployment = next(doc for _, doc in documents() if doc["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def deployment_settings():
    deployment = next(doc for _, doc in documents() if doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    return deployment, pod, container, env


def test_the_durations_fit_inside_the_grace_period():
    _, pod, container, env = deployment_settings()
    grace = pod["terminationGracePeriodSeconds"]
    timeout = float(env["GS_SHUTDOWN_TIMEOUT_SECONDS"])
    watchdog = float(env["GS_EXIT_WATCHDOG_SECONDS"])
    drain = float(env["GS_DRAIN_DELAY_SECONDS"])
    notice = float(env["GS_CLOSE_NOTICE_SECONDS"])
    hooks = float(env["GS_HOOK_BUDGET_SECONDS"])
    assert timeout + watchdog < grace, "the process could outlive the grace period (SIGKILL)"
    assert notice + hooks <= timeout and drain <= timeout
    readiness = container["readinessProbe"]
    assert drain >= readiness["periodSeconds"] * readiness["failureThreshold"], (
        "the drain delay must outlast the readiness probe noticing the 503"
    )


def test_the_probes_use_the_runtime_s_own_probe_port():
    _, _, container, env = deployment_settings()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert "probes" in ports, "the probe port is not declared"
    host, _, port = env["GS_PROBE_ADDR"].rpartition(":")
    assert int(port) == ports["probes"], "GS_PROBE_ADDR does not listen on the declared probe port"
    assert host == "0.0.0.0", "the kubelet reaches the pod on its IP, not loopback"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ("probes", ports["probes"]), probe
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    stale = float(env["GS_HEARTBEAT_STALE_SECONDS"])
    liveness = container["livenessProbe"]
    assert stale < liveness["periodSeconds"] * liveness["failureThreshold"]


def test_the_rollout_keeps_every_replica_ready():
    deployment, _, _, _ = deployment_settings()
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0 and rolling["maxSurge"] >= 1


def test_the_runtime_accepts_the_manifest_configuration():
    """The real parser (the one the pod runs) takes the manifest's values."""
    _, _, _, env = deployment_settings()
    gs_env = {k: v for k, v in env.items() if k.startswith("GS_") and v is not None}
    result = subprocess.run(
        [sys.executable, "-c", "import last_call as g; g.GracefulShutdownManager().install_signal_handlers()"],
        env={"PATH": "/usr/bin:/bin", **gs_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_hub_listens_on_a_declared_port_that_the_service_exposes():
    _, _, container, env = deployment_settings()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert env["STREAMS"] == "hub"
    host, _, port = env["GS_STREAM_ADDR"].rpartition(":")
    assert host == "0.0.0.0", "clients reach the pod on its IP, not loopback"
    assert int(port) == ports["streams"], "GS_STREAM_ADDR does not listen on the declared streams port"
    assert len(set(ports.values())) == len(ports), "the hub shares a port"
    service = next(
        doc for _, doc in documents() if doc["kind"] == "Service" and doc["metadata"]["name"] == "sse-backend"
    )
    assert "streams" in [port["targetPort"] for port in service["spec"]["ports"]]


def from_secret(container: dict, name: str, why: str) -> str:
    """The value of the container's variable `name`, which must come from a
    Secret of the manifests (`why`), never be written in the Deployment."""
    variable = next(item for item in container["env"] if item["name"] == name)
    assert "value" not in variable, why
    reference = variable["valueFrom"]["secretKeyRef"]
    secrets = {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == "Secret"}
    data = secrets[reference["name"]]["stringData"]
    assert reference["key"] in data
    return str(data[reference["key"]])


def test_the_hub_secret_comes_from_a_secret_every_pod_shares():
    _, _, container, _ = deployment_settings()
    from_secret(container, "GS_STREAM_SECRET", "the token key must not be written in the manifest")


def test_the_commented_ingress_alternative_is_a_valid_ingress():
    text = (MANIFESTS / "service.yaml").read_text()
    commented = [line[2:] for line in text.splitlines() if line.startswith("# ") or line == "#"]
    start = commented.index("---")
    ingress = yaml.safe_load("\n".join(commented[start + 1 :]))
    assert ingress["kind"] == "Ingress"
    kubernetes_validate.validate(ingress, KUBERNETES_VERSIONS[-1], strict=True)
    paths = {p["path"]: p["backend"]["service"]["port"]["name"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert paths == {"/streams/": "streams", "/": "http"}


def test_the_shared_store_is_the_redis_of_the_manifests_with_the_settings_it_needs():
    _, _, container, _ = deployment_settings()
    url = from_secret(container, "GS_STREAM_STORE", "the store's URL carries a password: it belongs in a Secret")
    redis_service = next(
        doc for _, doc in documents() if doc["kind"] == "Service" and doc["metadata"]["name"] == "sse-redis"
    )
    port = redis_service["spec"]["ports"][0]["port"]
    assert url.startswith("redis://") and url.endswith(f"@sse-redis:{port}/0"), url
    statefulset = next(doc for _, doc in documents() if doc["kind"] == "StatefulSet")
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    settings = dict(zip(args[::2], args[1::2]))
    assert settings["--maxmemory-policy"] == "noeviction", "an evicting Redis drops histories silently"
    assert "--maxmemory" in settings
    # The hub takes the URL (a malformed one stops the pod; this host has no
    # such server, which is no error: the hub starts degraded).
    result = subprocess.run(
        [sys.executable, "-c", "from last_call import hub; hub.start()"],
        env={
            "PATH": "/usr/bin:/bin",
            "GS_STREAM_STORE": url,
            "GS_STREAM_ADDR": "127.0.0.1:0",
            "GS_STREAM_SECRET": "a secret the tests share, 32 bytes or more",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_network_policy_admits_the_app_and_hub_ports_and_keeps_the_probe_port_from_other_pods():
    """docs/configuration.md's security section: any pod reached the probe
    port (and its /metrics) without a policy."""
    deployment, _, container, _ = deployment_settings()
    policies = {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == "NetworkPolicy"}
    policy = policies["sse-backend"]["spec"]
    assert policy["podSelector"]["matchLabels"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["policyTypes"] == ["Ingress"]
    declared = {port["name"] for port in container["ports"]}
    from_anyone = {p["port"] for rule in policy["ingress"] if "from" not in rule for p in rule["ports"]}
    restricted = {p["port"] for rule in policy["ingress"] if "from" in rule for p in rule["ports"]}
    assert from_anyone == {"http", "streams"}
    assert restricted == {"probes"}
    assert (from_anyone | restricted) <= declared, "the policy names a port the container does not declare"
    for rule in policy["ingress"]:
        if "from" in rule:
            assert all(source for source in rule["from"]), "an empty source admits everyone"
    redis = policies["sse-redis"]["spec"]
    assert [rule["from"] for rule in redis["ingress"]] == [[{"podSelector": {"matchLabels": {"app": "sse-backend"}}}]]
