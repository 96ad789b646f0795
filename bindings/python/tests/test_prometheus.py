"""The prometheus_client collector exposes the runtime's figures under the
same names as every other host."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from last_call import GracefulShutdownManager
from last_call.prometheus import Collector


def test_the_collector_reports_live_figures():
    manager = GracefulShutdownManager()
    registry = CollectorRegistry()
    registry.register(Collector(manager))
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
