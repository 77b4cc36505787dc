"""Metrics with the Java client's names and sampling, and reporters that publish them.

A layer of its own below the producer: it imports nothing of kprod but
``kprod.errors``. ``kprod.metrics.prometheus`` and ``kprod.metrics.otel`` (optional
extras) publish the same values to Prometheus and OpenTelemetry.
"""

from __future__ import annotations

import json
import math
from typing import Any

from kprod.metrics.registry import Metric, MetricName, Metrics, MetricsReporter, Sensor, nest
from kprod.metrics.stats import MetricConfig

__all__ = [
    "Metric",
    "MetricConfig",
    "MetricName",
    "Metrics",
    "MetricsReporter",
    "Sensor",
    "nest",
    "snapshot_json",
]


def snapshot_json(snapshot: dict[str, Any]) -> str:
    """A statistics snapshot (``Producer.statistics()`` or what ``stats_callback`` gets) as JSON.

    NaN (an average with nothing recorded yet) is written as null, so any JSON reader takes it.
    """

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, float) and math.isnan(value):
            return None
        return value

    return json.dumps(clean(snapshot), sort_keys=True, allow_nan=False)
