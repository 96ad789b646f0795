"""Probes, drain and metrics, from the last_call package, with the
container's shutdown manager injected."""

from __future__ import annotations

from dependency_injector.wiring import Provide, inject
from flask import Blueprint
from last_call import ShutdownManager
from last_call.flask import health_blueprint

from ..services.container import Container


@inject
def create_health_api(shutdown_manager: ShutdownManager = Provide[Container.shutdown_manager]) -> Blueprint:
    # GS_DRAIN_TOKEN from the environment protects POST /drain.
    return health_blueprint(shutdown_manager)
