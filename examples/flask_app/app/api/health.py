"""Probes, drain and metrics, from the last_call package."""

from __future__ import annotations

from last_call.flask import health_blueprint


def create_health_api(shutdown_manager):
    # GS_DRAIN_TOKEN from the environment protects POST /drain.
    return health_blueprint(shutdown_manager)
