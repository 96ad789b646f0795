"""A prometheus_client collector for apps that already expose metrics::

    from prometheus_client import REGISTRY
    from last_call.prometheus import Collector

    REGISTRY.register(Collector())

The families are the runtime's own exposition, parsed by prometheus_client,
so names, types and help texts are exactly those of every other host
(``gs_active_streams``, ``gs_streams_started_total``, ...).
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector as _CollectorBase


class Collector(_CollectorBase):
    """Reads the runtime's figures at every scrape."""

    def __init__(self, manager=None) -> None:
        if manager is None:
            from .manager import GracefulShutdownManager

            manager = GracefulShutdownManager()
        self._manager = manager

    def collect(self) -> Iterator[Metric]:
        yield from text_string_to_metric_families(self._manager.metrics("prometheus"))
