"""OpenTelemetry for kprod (``pip install 'kprod[opentelemetry]'``): metrics and traces.

* :class:`OpenTelemetryReporter`, a ``metric.reporters`` entry: every producer
  metric becomes an observable gauge read at each collection, named
  ``kafka.producer.<name>`` (producer-wide), ``kafka.producer.topic.<name>`` and
  ``kafka.producer.node.<name>``, dashes as underscores, tags as attributes.
* :func:`instrument_producer`: a span per record from ``send()`` to its
  delivery, following OpenTelemetry's messaging conventions for Kafka (span
  ``send <topic>``, kind PRODUCER, ``messaging.system=kafka``, the partition and
  offset once written, ``error.type`` on failure), and the span's context
  injected into the record's headers (W3C ``traceparent``) so consumers continue
  the trace. Tracing costs a span per record, so it is off until asked for.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kprod.metrics.registry import Metric, MetricName

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import propagate, trace
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "kprod.metrics.otel needs the OpenTelemetry API: pip install 'kprod[opentelemetry]'."
    ) from exc

__all__ = ["OpenTelemetryReporter", "instrument_producer", "otel_name"]

_GROUP_PREFIX = {
    "producer-metrics": "kafka.producer.",
    "producer-topic-metrics": "kafka.producer.topic.",
    "producer-node-metrics": "kafka.producer.node.",
}


def otel_name(metric_name: MetricName) -> str:
    """``producer-topic-metrics`` / ``byte-rate`` -> ``kafka.producer.topic.byte_rate``."""
    prefix = _GROUP_PREFIX.get(metric_name.group, "kafka." + metric_name.group.replace("-", "_") + ".")
    return prefix + metric_name.name.replace("-", "_")


class OpenTelemetryReporter:
    """Publishes the producer's metrics through the OpenTelemetry metrics API."""

    def __init__(self, meter_provider: Any = None) -> None:
        provider = meter_provider if meter_provider is not None else otel_metrics.get_meter_provider()
        from kprod._version import __version__

        self._meter = provider.get_meter("kprod", __version__)
        self._lock = threading.Lock()
        self._by_instrument: dict[str, dict[MetricName, Metric]] = {}

    def init(self, metrics: list[Metric]) -> None:
        for metric in metrics:
            self.metric_change(metric)

    def metric_change(self, metric: Metric) -> None:
        name = otel_name(metric.name)
        with self._lock:
            members = self._by_instrument.get(name)
            if members is None:
                members = self._by_instrument[name] = {}
                self._meter.create_observable_gauge(
                    name, callbacks=[self._callback(name)], description=metric.name.description)
            members[metric.name] = metric

    def metric_removal(self, metric: Metric) -> None:
        with self._lock:
            self._by_instrument.get(otel_name(metric.name), {}).pop(metric.name, None)

    def close(self) -> None:
        with self._lock:
            for members in self._by_instrument.values():
                members.clear()

    def _callback(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                members = list(self._by_instrument.get(name, {}).values())
            out = []
            for metric in members:
                value = metric.value()
                if not math.isnan(value):
                    out.append(Observation(value, dict(metric.name.tags)))
            return out

        return observe


def instrument_producer(producer: Any, tracer_provider: Any = None, *, inject_context: bool = True) -> Any:
    """Trace every record ``producer`` sends from now on; returns the producer.

    ``send()`` then opens a PRODUCER span, puts its context in the record headers
    (unless ``inject_context`` is false) and ends it when the record is
    acknowledged or fails. ``send_many()`` is not traced (its point is to skip
    per-record work); send record by record where each needs a span.
    """
    if getattr(producer, "_kprod_traced", False):
        return producer
    tracer = trace.get_tracer("kprod", tracer_provider=tracer_provider)
    send = producer.send
    client_id = getattr(producer, "client_id", "")

    def traced_send(topic: Any, value: Any = None, key: Any = None, partition: int | None = None,
                    timestamp: int | None = None, headers: Sequence[tuple[str, bytes | None]] | None = None,
                    callback: Callable[..., Any] | None = None) -> Any:
        if not isinstance(topic, str):
            from kprod.record import ProducerRecord

            if isinstance(topic, ProducerRecord):
                if callback is None and value is not None and callable(value):
                    callback, value = value, None
                topic, value, key, partition, timestamp, headers = topic
        span = tracer.start_span(
            f"send {topic}", kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.name": "send",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic,
                "messaging.client.id": client_id,
                **({"messaging.destination.partition.id": str(partition)} if partition is not None else {}),
            })
        if inject_context:
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            if carrier:
                headers = list(headers or ()) + [(k, v.encode()) for k, v in carrier.items()]
        user_callback = callback

        def finished(metadata: Any, exception: BaseException | None) -> None:
            if exception is None:
                span.set_attribute("messaging.destination.partition.id", str(metadata.partition))
                span.set_attribute("messaging.kafka.offset", metadata.offset)
            else:
                span.set_attribute("error.type", type(exception).__name__)
                span.record_exception(exception)
                span.set_status(Status(StatusCode.ERROR, str(exception)))
            span.end()
            if user_callback is not None:
                user_callback(metadata, exception)

        try:
            return send(topic, value, key, partition, timestamp, headers, finished)
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            span.end()
            raise

    producer.send = traced_send
    producer._kprod_traced = True
    return producer
