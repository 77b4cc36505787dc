"""Publish a producer's metrics to Prometheus (``pip install 'kprod[prometheus]'``).

``Producer({..., "metric.reporters": [PrometheusReporter()]})`` registers a
collector with ``prometheus_client``; each scrape reads the current values, so
nothing runs between scrapes. Names are ``kafka_<group>_<name>`` with dashes as
underscores (``kafka_producer_metrics_record_send_rate``,
``kafka_producer_topic_metrics_byte_rate{topic="orders"}``); tags become labels
(``client_id``, ``topic``, ``node_id``). Serve them with ``prometheus_client``'s
own ``start_http_server`` or your web framework's exporter.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

from kprod.metrics.registry import Metric

try:
    from prometheus_client import REGISTRY as _DEFAULT_REGISTRY
    from prometheus_client.core import GaugeMetricFamily
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "kprod.metrics.prometheus needs the prometheus_client package: pip install 'kprod[prometheus]'."
    ) from exc

__all__ = ["PrometheusReporter", "prometheus_name"]


def prometheus_name(group: str, name: str) -> str:
    """``producer-topic-metrics`` + ``byte-rate`` -> ``kafka_producer_topic_metrics_byte_rate``."""
    return f"kafka_{group}_{name}".replace("-", "_").replace(".", "_")


class PrometheusReporter:
    """A ``metric.reporters`` entry exposing the producer's metrics as Prometheus gauges."""

    def __init__(self, registry: Any = None) -> None:
        self._registry = _DEFAULT_REGISTRY if registry is None else registry
        self._lock = threading.Lock()
        self._metrics: dict[Any, Metric] = {}
        self._registered = False

    # -- MetricsReporter ----------------------------------------------------------

    def init(self, metrics: list[Metric]) -> None:
        with self._lock:
            for metric in metrics:
                self._metrics[metric.name] = metric
        if not self._registered:
            self._registry.register(self)
            self._registered = True

    def metric_change(self, metric: Metric) -> None:
        with self._lock:
            self._metrics[metric.name] = metric

    def metric_removal(self, metric: Metric) -> None:
        with self._lock:
            self._metrics.pop(metric.name, None)

    def close(self) -> None:
        if self._registered:
            self._registry.unregister(self)
            self._registered = False
        with self._lock:
            self._metrics.clear()

    # -- prometheus_client collector --------------------------------------------------

    def describe(self) -> list[Any]:
        # Metrics appear as topics and brokers are used: families are known only at scrape time.
        return []

    def collect(self) -> Iterator[Any]:
        with self._lock:
            metrics = list(self._metrics.values())
        families: dict[str, Any] = {}
        for metric in metrics:
            metric_name = metric.name
            value = metric.value()
            if math.isnan(value):
                continue
            family_name = prometheus_name(metric_name.group, metric_name.name)
            labels = [key.replace("-", "_") for key, _ in metric_name.tags]
            family = families.get(family_name)
            if family is None:
                family = families[family_name] = GaugeMetricFamily(
                    family_name, metric_name.description or metric_name.name, labels=labels)
            family.add_metric([tag_value for _, tag_value in metric_name.tags], value)
        yield from families.values()
