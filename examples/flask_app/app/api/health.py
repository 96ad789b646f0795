"""Probes, drain and metrics, from the graceful_shutdown package."""

from __future__ import annotations

from graceful_shutdown.flask import health_blueprint


def create_health_api(shutdown_manager):
    # GS_DRAIN_TOKEN from the environment protects POST /drain.
    return health_blueprint(shutdown_manager)
