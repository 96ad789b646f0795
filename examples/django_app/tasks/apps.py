"""The task app: its service, started when Django has loaded (in each
worker), with the shutdown rules of the other examples."""

import threading

from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"

    def ready(self) -> None:
        from last_call import Phase, StreamKind
        from last_call.django import current_manager

        from .service import service

        manager = current_manager()
        tasks = service()

        def cancel_running_tasks(_old, new) -> None:
            # Tasks run on until the streams' last moment (when pod-bound
            # streams get their final event): one that ends inside the close
            # notice completes; one still running then ends with
            # task_failed (reason "shutdown").
            if new == Phase.CLOSING_STREAMS:
                end_in = manager.stream_end_in(StreamKind.POD_BOUND) or 0.0
                timer = threading.Timer(end_in, tasks.cancel_running)
                timer.daemon = True
                timer.start()

        manager.on_phase(cancel_running_tasks)
        # Registered here, when the project loads: before the host's own
        # stop hook (gunicorn's worker, uvicorn's lifespan), so the tasks
        # stop first.
        manager.register_shutdown_hook("task-service", tasks.shutdown)
        # Test-only, off by default (run.py refused a bad value already).
        from django.conf import settings
        from last_call.testing import install_test_switches

        install_test_switches(manager, settings.EXAMPLE.host)
