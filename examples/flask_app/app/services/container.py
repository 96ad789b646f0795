"""Wires the app's services, as the legacy container does: one shutdown
manager per process, one task service, and the task service's shutdown
registered as a hook so it runs in Stopping."""

from __future__ import annotations

import os
from dataclasses import dataclass

from last_call import GracefulShutdownManager

from .task_service import TaskService


@dataclass
class Container:
    shutdown_manager: GracefulShutdownManager
    task_service: TaskService


def create_container(shutdown_manager=None) -> Container:
    manager = shutdown_manager if shutdown_manager is not None else GracefulShutdownManager()
    task_service = TaskService(
        manager,
        max_workers=int(os.environ.get("TASK_WORKERS", "8")),
        heartbeat_seconds=float(os.environ.get("SSE_HEARTBEAT_SECONDS", "1.0")),
    )
    manager.register_shutdown_hook("task-service", task_service.shutdown)
    return Container(shutdown_manager=manager, task_service=task_service)
