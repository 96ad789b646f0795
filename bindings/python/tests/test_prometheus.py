"""The prometheus_client collector exposes the runtime's figures under the
same names as every other host."""

from __future__ import annotations

import pytest
from last_call import GracefulShutdownManager, NoopGracefulShutdownManager
from last_call.prometheus import Collector, GracefulShutdownCollector
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest


def test_the_collector_reports_live_figures():
    manager = GracefulShutdownManager()
    registry = CollectorRegistry()
    GracefulShutdownCollector(manager, registry=registry)
    started = registry.get_sample_value("gs_streams_started_total")
    manager.increment_active_streams()
    try:
        assert registry.get_sample_value("gs_active_streams") == 1
        assert registry.get_sample_value("gs_streams_started_total") == started + 1
    finally:
        manager.decrement_active_streams()
    assert registry.get_sample_value("gs_active_streams") == 0
    text = generate_latest(registry).decode()
    for name in (
        "gs_active_streams",
        "gs_phase",
        "gs_draining",
        "gs_streams_started_total",
        "gs_streams_finished_total",
        "gs_shutdown_started_timestamp_seconds",
        "gs_shutdown_duration_seconds",
        "gs_streams_closed_by_deadline_total",
    ):
        assert f"\n{name} " in text or text.startswith(f"{name} "), name
    assert "# TYPE gs_streams_started_total counter" in text


def test_it_registers_itself_with_the_default_registry_like_process_collector():
    collector = GracefulShutdownCollector()
    try:
        assert REGISTRY.get_sample_value("gs_phase") == 0
    finally:
        REGISTRY.unregister(collector)
    standalone = GracefulShutdownCollector(NoopGracefulShutdownManager(), registry=None)
    assert {family.name for family in standalone.collect()} >= {"gs_active_streams", "gs_phase"}


def test_the_old_name_is_a_deprecated_alias_that_does_not_register():
    noop = NoopGracefulShutdownManager()
    noop.increment_active_streams()
    with pytest.deprecated_call():
        old = Collector(noop)
    assert isinstance(old, GracefulShutdownCollector)
    registry = CollectorRegistry()
    registry.register(old)
    assert registry.get_sample_value("gs_active_streams") == 1
