"""The Django app: ``"last_call.django"`` in ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig  # type: ignore[import-untyped]


class LastCallConfig(AppConfig):  # type: ignore[misc]
    """At ``ready()`` (once Django's settings are loaded, in each worker
    that loads the project): the ``GS_*`` settings of ``settings.py`` are
    read, checked and handed to the runtime (docs/configuration.md)."""

    name = "last_call.django"
    label = "last_call"
    verbose_name = "last-call"

    def ready(self) -> None:
        from . import _state

        _state.configure()
