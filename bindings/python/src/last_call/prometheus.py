"""A prometheus_client collector for apps that already expose metrics::

    from last_call.prometheus import GracefulShutdownCollector

    GracefulShutdownCollector()          # registers itself with REGISTRY

The families are the runtime's own exposition, parsed by prometheus_client,
so names, types and help texts are exactly those of every other host
(``gs_active_streams``, ``gs_streams_started_total``, ...). As with
prometheus_client's ``ProcessCollector``, pass ``registry=None`` to register
it yourself, or another ``CollectorRegistry``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import REGISTRY, CollectorRegistry
from prometheus_client.registry import Collector as _CollectorBase

from .interface import ShutdownManager
from .manager import default_manager

__all__ = ["Collector", "GracefulShutdownCollector"]


class GracefulShutdownCollector(_CollectorBase):
    """Reads the manager's figures at every scrape."""

    def __init__(
        self,
        manager: ShutdownManager | None = None,
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self._manager = manager if manager is not None else default_manager()
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        yield from text_string_to_metric_families(self._manager.metrics("prometheus"))


class Collector(GracefulShutdownCollector):
    """Deprecated: use GracefulShutdownCollector (this name shadows
    prometheus_client's own ``Collector``). Kept with its old behaviour: it
    does not register itself."""

    def __init__(self, manager: ShutdownManager | None = None) -> None:
        warnings.warn(
            "last_call.prometheus.Collector is deprecated; use GracefulShutdownCollector",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(manager, registry=None)
