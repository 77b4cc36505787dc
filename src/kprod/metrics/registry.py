"""Named metrics, the sensors that feed them, and the reporters that publish them.

The vocabulary is the Java client's: a metric is named by (name, group, tags);
a :class:`Sensor` is recorded once and updates several statistics (a rate and
a total, an average and a maximum); a reporter is told when metrics appear or
go. Gauges are functions read when someone asks (buffer bytes, connections).

Every record and read takes the registry's one lock: records happen a few
times per produce request on the I/O thread, never per record on ``send()``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from kprod.metrics.stats import MetricConfig, Stat

__all__ = ["MetricName", "Metric", "Metrics", "Sensor", "MetricsReporter"]

log = logging.getLogger("kprod.metrics")


@dataclass(frozen=True)
class MetricName:
    """A metric's identity: Java's ``MetricName`` (name, group, tags), plus a description."""

    name: str
    group: str
    tags: tuple[tuple[str, str], ...] = ()
    description: str = field(default="", compare=False)

    @property
    def tag_dict(self) -> dict[str, str]:
        return dict(self.tags)

    def __str__(self) -> str:
        tags = ",".join(f"{k}={v}" for k, v in self.tags)
        return f"{self.group}:{self.name}:{{{tags}}}"


class Metric:
    """One named value: a statistic fed by a sensor, or a gauge function."""

    __slots__ = ("metric_name", "_stat", "_gauge", "_registry")

    def __init__(self, registry: Metrics, metric_name: MetricName, stat: Stat | None,
                 gauge: Callable[[], float] | None) -> None:
        self.metric_name = metric_name
        self._stat = stat
        self._gauge = gauge
        self._registry = registry

    @property
    def name(self) -> MetricName:
        return self.metric_name

    def value(self) -> float:
        """The metric's value now (NaN for an average or maximum with nothing recorded)."""
        registry = self._registry
        with registry.lock:
            return self._value(registry.clock_ms())

    def _value(self, now: float) -> float:
        if self._stat is not None:
            return self._stat.measure(now)
        assert self._gauge is not None
        try:
            return float(self._gauge())
        except Exception:  # a gauge must never break a reader
            log.debug("Gauge %s failed", self.metric_name, exc_info=True)
            return math.nan

    def __repr__(self) -> str:
        return f"<Metric {self.metric_name}>"


class Sensor:
    """Records values into every statistic it owns (``record`` must hold ``registry.lock``)."""

    __slots__ = ("name", "_stats")

    def __init__(self, name: str) -> None:
        self.name = name
        self._stats: list[Stat] = []

    def record(self, value: float, now: float, count: int = 1) -> None:
        for stat in self._stats:
            stat.record(value, now, count)


@runtime_checkable
class MetricsReporter(Protocol):
    """Java's ``MetricsReporter`` in Python: told of every metric as it appears or goes."""

    def init(self, metrics: list[Metric]) -> None: ...

    def metric_change(self, metric: Metric) -> None: ...

    def metric_removal(self, metric: Metric) -> None: ...

    def close(self) -> None: ...


class Metrics:
    """A registry of metrics sharing one sampling configuration and one clock."""

    def __init__(self, config: MetricConfig, clock_ms: Callable[[], float],
                 reporters: Iterable[MetricsReporter] = ()) -> None:
        self.config = config
        self.clock_ms = clock_ms
        self.lock = threading.Lock()
        self._metrics: dict[MetricName, Metric] = {}
        self._sensors: dict[str, Sensor] = {}
        self._reporters: list[MetricsReporter] = []
        for reporter in reporters:
            self.add_reporter(reporter)

    # -- building -----------------------------------------------------------------

    def sensor(self, name: str) -> Sensor:
        """The sensor called ``name``, made on first use."""
        sensor = self._sensors.get(name)
        if sensor is None:
            sensor = self._sensors[name] = Sensor(name)
        return sensor

    def add_stat(self, sensor: Sensor, metric_name: MetricName, stat: Stat) -> None:
        """Feed ``stat`` from ``sensor`` and publish it as ``metric_name``."""
        with self.lock:
            sensor._stats.append(stat)
        self._register(Metric(self, metric_name, stat, None))

    def add_gauge(self, metric_name: MetricName, gauge: Callable[[], float]) -> None:
        """Publish ``gauge()`` (called at read time) as ``metric_name``."""
        self._register(Metric(self, metric_name, None, gauge))

    def _register(self, metric: Metric) -> None:
        with self.lock:
            if metric.metric_name in self._metrics:
                raise ValueError(f"The metric {metric.metric_name} is already registered.")
            self._metrics[metric.metric_name] = metric
        for reporter in list(self._reporters):
            _notify(reporter.metric_change, metric)

    def remove(self, metric_name: MetricName) -> None:
        with self.lock:
            metric = self._metrics.pop(metric_name, None)
        if metric is not None:
            for reporter in list(self._reporters):
                _notify(reporter.metric_removal, metric)

    def add_reporter(self, reporter: MetricsReporter) -> None:
        """Attach ``reporter``: it gets every current metric now, and later changes."""
        for method in ("init", "metric_change", "metric_removal", "close"):
            if not callable(getattr(reporter, method, None)):
                raise TypeError(
                    f"The metrics reporter {reporter!r} has no {method}() method: a reporter implements "
                    "init(metrics), metric_change(metric), metric_removal(metric) and close().")
        self._reporters.append(reporter)
        _notify(reporter.init, list(self._metrics.values()))

    # -- reading -------------------------------------------------------------------

    def metrics(self) -> dict[MetricName, Metric]:
        with self.lock:
            return dict(self._metrics)

    def values(self) -> dict[MetricName, float]:
        """Every metric's value, read at one instant."""
        with self.lock:
            now = self.clock_ms()
            return {name: metric._value(now) for name, metric in self._metrics.items()}

    def snapshot(self) -> dict[str, Any]:
        """Values nested as group -> (tags) -> name, JSON-ready (NaN becomes None)."""
        return nest(self.values())

    def close(self) -> None:
        reporters, self._reporters = self._reporters, []
        for reporter in reporters:
            _notify(reporter.close)


def nest(values: Mapping[MetricName, float]) -> dict[str, Any]:
    """``{group: {name: value}}`` for untagged groups beyond ``client-id``, else
    ``{group: {tag value: {name: value}}}`` keyed by the distinguishing tag (topic, node-id)."""
    out: dict[str, Any] = {}
    for metric_name, value in values.items():
        clean = None if isinstance(value, float) and math.isnan(value) else value
        extra = [v for k, v in metric_name.tags if k != "client-id"]
        target = out.setdefault(metric_name.group, {})
        for tag_value in extra:
            target = target.setdefault(tag_value, {})
        target[metric_name.name] = clean
    return out


def _notify(method: Callable[..., Any], *args: Any) -> None:
    try:
        method(*args)
    except Exception:
        log.exception("Metrics reporter call %r failed; the producer goes on", method)
