"""The example's Grafana dashboard and Prometheus alert rules
(examples/kubernetes/monitoring): the dashboard loads, every query is
PromQL that names only metrics the runtime exports, as a real server's
probe listener serves them (not a list kept by hand), and covers every one
of them; the rules pass ``promtool check rules`` and their unit tests
(``promtool test rules``), which a broken rule fails."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import hosts  # noqa: E402
from server_process import ServerProcess  # noqa: E402

MONITORING = ROOT / "examples" / "kubernetes" / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RULES = MONITORING / "last-call.rules.yaml"
RULE_TESTS = Path(__file__).resolve().parent / "last-call.rules.test.yaml"
#: What the rules read besides the runtime: the container's last exit
#: status, as kube-state-metrics reports it (its name in kube-state-metrics'
#: pod metrics); the watchdog's exit leaves nothing of the runtime to read.
KUBE_STATE_METRICS = {"kube_pod_container_status_last_terminated_exitcode"}
#: Grafana's own variables in a query, and what stands for each when the
#: query is parsed as PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """The metric names a running server's probe listener serves: the Flask
    example in hub mode (the runtime, its HTTP layer and the stream hub),
    scraped once."""
    command, cwd = hosts.command("flask-hub")
    server = ServerProcess(command, {"GS_PROBE_ADDR": "127.0.0.1:0"}, cwd=cwd)
    try:
        assert server.probe_url, server.lines
        text = httpx.get(f"{server.probe_url.rstrip('/')}/metrics", timeout=10).text
    finally:
        server.close()
    names = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    assert "gs_active_streams" in names and "gs_hub_store_degraded" in names, text
    return names


def metric_names(expr: str) -> set[str]:
    """The metrics a PromQL expression selects (a ValueError if it is not
    PromQL), with Grafana's variables replaced first."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            names.update(m.value for m in node.matchers.matchers if m.name == "__name__")

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def dashboard_queries() -> list[str]:
    """Every panel's queries, and the selectors of the variables'
    label_values()."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []

    def panels(items: list[dict]):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        queries += [target["expr"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.+), *\w+\)", variable["query"]["query"])
            assert found, variable
            queries.append(found.group(1))
    return queries


def test_the_dashboard_loads_and_queries_only_what_the_runtime_exports(exported):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"], "an empty dashboard"
    queries = dashboard_queries()
    assert len(queries) >= 15, queries
    named: set[str] = set()
    for query in queries:
        names = metric_names(query)
        assert names, f"{query!r} names no metric"
        assert names <= exported, f"{query!r} names {sorted(names - exported)}, which the runtime does not export"
        named |= names
    ours = {name for name in exported if name.startswith("gs_")}
    assert ours - named == set(), f"the dashboard shows nothing of {sorted(ours - named)}"


def test_the_check_catches_a_metric_that_does_not_exist(exported):
    """The check above is not vacuous: a misspelt name, or a query that is
    not PromQL, is caught."""
    assert metric_names('sum by (pod) (gs_active_stream{pod=~"$pod"})') - exported == {"gs_active_stream"}
    with pytest.raises(ValueError):
        metric_names("sum by (pod) (gs_active_streams{pod=~$pod})")


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: make setup installs it (Debian's prometheus package)"
    return path


def test_the_alert_rules_pass_promtool_and_their_unit_tests(exported):
    checked = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout, checked.stdout
    tested = subprocess.run([promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            names = metric_names(rule["expr"])
            assert names <= exported | KUBE_STATE_METRICS, (rule["alert"], names - exported)


def test_a_broken_rule_fails_its_unit_tests(tmp_path):
    """The unit tests hold the rules to their behaviour: the store's
    threshold moved from 30 s to 60 s fails them."""
    rules = RULES.read_text()
    assert "(gs_hub_store_degraded_seconds) > 30" in rules
    broken = tmp_path / "rules.yaml"
    broken.write_text(rules.replace("(gs_hub_store_degraded_seconds) > 30", "(gs_hub_store_degraded_seconds) > 60"))
    tests = tmp_path / "tests.yaml"
    tests.write_text(
        RULE_TESTS.read_text().replace("../../examples/kubernetes/monitoring/last-call.rules.yaml", str(broken))
    )
    tested = subprocess.run([promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=60)
    assert tested.returncode != 0, tested.stdout
    assert "LastCallStreamStoreDegraded" in tested.stdout + tested.stderr
