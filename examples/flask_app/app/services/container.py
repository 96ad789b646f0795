"""The app's dependency-injector container, as in the legacy backend: the
shutdown manager is a singleton provider, the task service gets it
injected, and the API modules are wired to the container (``@inject`` /
``Provide[...]``). Tests override ``shutdown_manager`` with the no-op
manager (``container.shutdown_manager.override(...)``). The values are
validated, naming the setting, by ``app.settings`` when ``run.py`` starts."""

from __future__ import annotations

from dependency_injector import containers, providers
from last_call import GracefulShutdownManager

from .task_service import TaskService


class Container(containers.DeclarativeContainer):
    wiring_config = containers.WiringConfiguration(modules=["..api.health", "..api.tasks"])

    config = providers.Configuration()
    config.task_workers.from_env("TASK_WORKERS", as_=int, default=8)
    config.heartbeat_seconds.from_env("SSE_HEARTBEAT_SECONDS", as_=float, default=1.0)
    config.max_tasks.from_env("MAX_TASKS", as_=int, default=500)
    config.keep_finished_seconds.from_env("TASK_KEEP_SECONDS", as_=float, default=300.0)
    config.max_body_bytes.from_env("MAX_BODY_BYTES", as_=int, default=64 * 1024)
    config.streams.from_env("STREAMS", default="thread")
    config.public_stream_base_url.from_env("PUBLIC_STREAM_BASE_URL", default="")

    shutdown_manager = providers.Singleton(GracefulShutdownManager)

    task_service = providers.Singleton(
        TaskService,
        shutdown_manager,
        max_workers=config.task_workers,
        heartbeat_seconds=config.heartbeat_seconds,
        max_tasks=config.max_tasks,
        keep_finished_seconds=config.keep_finished_seconds,
        streams=config.streams,
        stream_base_url=config.public_stream_base_url,
    )
