"""The Java producer's metrics, recorded by the I/O thread once per request and per batch.

Names, groups and tags are Java's (``producer-metrics``, ``producer-topic-metrics``,
``producer-node-metrics``; tags ``client-id``, ``topic``, ``node-id``), so
dashboards built for the Java client read kprod's. Nothing here runs per record
on ``send()``: record counts and sizes are taken from batches when they are
sent, retried or failed; buffer figures are gauges read from the memory pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kprod.metrics.registry import MetricName, Metrics, Sensor
from kprod.metrics.stats import Avg, CumulativeCount, CumulativeSum, Max, Rate
from kprod.protocol.records import BATCH_HEADER_SIZE as _BATCH_HEADER

__all__ = ["ProducerMetrics", "PRODUCER_GROUP", "TOPIC_GROUP", "NODE_GROUP", "GAUGES", "all_metric_names"]

PRODUCER_GROUP = "producer-metrics"
TOPIC_GROUP = "producer-topic-metrics"
NODE_GROUP = "producer-node-metrics"


#: Producer-wide values read when asked (the producer supplies the functions).
GAUGES: dict[str, str] = {
    "buffer-total-bytes": "buffer.memory: the bytes queued records may take.",
    "buffer-available-bytes": "The part of buffer.memory no batch has reserved.",
    "waiting-threads": "Threads blocked in send() waiting for buffer.memory.",
    "requests-in-flight": "Requests sent and not answered yet.",
    "connection-count": "Open connections to brokers.",
    "metadata-age": "Seconds since the cluster metadata in use was fetched.",
}


def all_metric_names() -> list[MetricName]:
    """Every metric a producer can have (one topic ``<topic>``, one node ``node-<id>``): for the docs."""
    from kprod.metrics.registry import Metrics
    from kprod.metrics.stats import MetricConfig

    metrics = ProducerMetrics(Metrics(MetricConfig(), lambda: 0.0), "<client.id>")
    metrics._topic("<topic>")
    metrics._node(-1)
    for name in GAUGES:
        metrics.add_gauge(name, lambda: 0.0)
    return sorted(metrics.registry.metrics(), key=lambda n: (n.group, n.name))


class ProducerMetrics:
    """Sensors of one producer; every ``on_*`` method runs on the I/O thread."""

    def __init__(self, registry: Metrics, client_id: str) -> None:
        self.registry = registry
        self.client_id = client_id
        self._tags = (("client-id", client_id),)
        self._topics: dict[str, tuple[Sensor, Sensor, Sensor, Sensor, Sensor]] = {}
        self._nodes: dict[int, tuple[Sensor, Sensor, Sensor]] = {}
        self.requests_in_flight = 0
        add = self._add
        self._records_per_request = add("records-per-request", [
            ("record-send-rate", "Records handed to brokers per second (each attempt counts).", _rate),
            ("record-send-total", "Records handed to brokers, each attempt counted.", _total),
            ("records-per-request-avg", "Mean records per Produce request.", _avg),
        ])
        self._errors = add("errors", [
            ("record-error-rate", "Records failed for good, per second.", _rate),
            ("record-error-total", "Records failed for good.", _total),
        ])
        self._retries = add("retries", [
            ("record-retry-rate", "Records queued again for a retry, per second.", _rate),
            ("record-retry-total", "Records queued again for a retry.", _total),
        ])
        self._record_size_avg = add("record-size", [
            ("record-size-avg", "The average size of the records sent, in bytes as encoded in the "
             "batch (uncompressed).", _avg)])
        self._record_size_max = add("record-size-max", [
            ("record-size-max", "The largest record sent, in bytes as encoded in the batch "
             "(uncompressed).", _max)])
        self._queue_time = add("queue-time", [
            ("record-queue-time-avg", "Mean ms from a batch's creation to its drain into a request.", _avg),
            ("record-queue-time-max", "Longest ms from a batch's creation to its drain into a request.", _max),
        ])
        self._batch_size = add("batch-size", [
            ("batch-size-avg", "Mean bytes of a batch on the wire (after compression).", _avg),
            ("batch-size-max", "Largest batch on the wire, in bytes (after compression).", _max),
        ])
        self._compression = add("compression-rate", [
            ("compression-rate-avg", "Mean compressed/uncompressed size of the batches sent.", _avg),
        ])
        self._splits = add("batch-split", [
            ("batch-split-rate", "Batches split after MESSAGE_TOO_LARGE, per second.", _rate),
            ("batch-split-total", "Batches split after MESSAGE_TOO_LARGE.", _count),
        ])
        self._latency = add("request-latency", [
            ("request-latency-avg", "Mean ms from sending a request to its answer.", _avg),
            ("request-latency-max", "Longest ms from sending a request to its answer.", _max),
        ])
        self._requests = add("requests-sent", [
            ("request-rate", "Requests sent per second (all kinds).", _rate),
            ("request-total", "Requests sent (all kinds).", _total),
        ])
        self._responses = add("responses-received", [
            ("response-rate", "Answers received per second.", _rate),
            ("response-total", "Answers received.", _total),
        ])
        self._throttle = add("produce-throttle-time", [
            ("produce-throttle-time-avg", "Mean throttle time in ms that brokers reported in Produce answers.", _avg),
            ("produce-throttle-time-max", "Longest throttle time in ms that brokers reported in Produce answers.", _max),
        ])
        self.buffer_wait = add("bufferpool-wait-time", [
            ("bufferpool-wait-time-ns-total", "Nanoseconds send() calls spent blocked on buffer.memory.", _total),
            ("bufferpool-wait-ratio", "Share of wall time send() calls spent blocked on buffer.memory.",
             lambda c: Rate(c, per_ms=1e-6)),
        ])
        self.buffer_exhausted = add("buffer-exhausted", [
            ("buffer-exhausted-rate", "send() calls that gave up after max.block.ms waiting for buffer.memory, per second.", _rate),
            ("buffer-exhausted-total", "send() calls that gave up after max.block.ms waiting for buffer.memory.", _total),
        ])

    # -- wiring -------------------------------------------------------------------

    def _name(self, name: str, description: str, group: str = PRODUCER_GROUP,
              extra: tuple[tuple[str, str], ...] = ()) -> MetricName:
        return MetricName(name, group, self._tags + extra, description)

    def _add(self, sensor_name: str, stats: list[tuple[str, str, Callable[[Any], Any]]],
             group: str = PRODUCER_GROUP, extra: tuple[tuple[str, str], ...] = ()) -> Sensor:
        registry = self.registry
        sensor = registry.sensor(sensor_name + "".join(f".{v}" for _, v in extra))
        for name, description, make in stats:
            registry.add_stat(sensor, self._name(name, description, group, extra), make(registry.config))
        return sensor

    def add_gauge(self, name: str, gauge: Callable[[], float]) -> None:
        """Publish ``gauge()`` as the producer-wide metric ``name`` (one of :data:`GAUGES`)."""
        self.registry.add_gauge(self._name(name, GAUGES[name]), gauge)

    def _topic(self, topic: str) -> tuple[Sensor, Sensor, Sensor, Sensor, Sensor]:
        sensors = self._topics.get(topic)
        if sensors is None:
            extra = (("topic", topic),)
            add = self._add
            sensors = self._topics[topic] = (
                add("topic.records-per-batch", [
                    ("record-send-rate", "Records of this topic handed to brokers per second.", _rate),
                    ("record-send-total", "Records of this topic handed to brokers, each attempt counted.", _total)],
                    TOPIC_GROUP, extra),
                add("topic.bytes", [
                    ("byte-rate", "Wire bytes of this topic's batches per second.", _rate),
                    ("byte-total", "Wire bytes of this topic's batches.", _total)],
                    TOPIC_GROUP, extra),
                add("topic.compression-rate", [
                    ("compression-rate", "Mean compressed/uncompressed size of this topic's batches.", _avg)],
                    TOPIC_GROUP, extra),
                add("topic.record-errors", [
                    ("record-error-rate", "Records of this topic failed for good, per second.", _rate),
                    ("record-error-total", "Records of this topic failed for good.", _total)], TOPIC_GROUP, extra),
                add("topic.record-retries", [
                    ("record-retry-rate", "Records of this topic queued again for a retry, per second.",
                     _rate),
                    ("record-retry-total", "Records of this topic queued again for a retry.", _total)],
                    TOPIC_GROUP, extra),
            )
        return sensors

    def _node(self, node: int) -> tuple[Sensor, Sensor, Sensor]:
        sensors = self._nodes.get(node)
        if sensors is None:
            extra = (("node-id", f"node-{node}"),)
            add = self._add
            sensors = self._nodes[node] = (
                add("node.requests-sent", [
                    ("request-rate", "Requests sent to this broker per second.", _rate),
                    ("request-total", "Requests sent to this broker.", _total)],
                    NODE_GROUP, extra),
                add("node.responses-received", [
                    ("response-rate", "Answers from this broker per second.", _rate),
                    ("response-total", "Answers from this broker.", _total)],
                    NODE_GROUP, extra),
                add("node.request-latency", [
                    ("request-latency-avg", "Mean ms from a request to this broker to its answer.", _avg),
                    ("request-latency-max", "Longest ms from a request to this broker to its answer.", _max)],
                    NODE_GROUP, extra),
            )
        return sensors

    # -- recording (I/O thread) ---------------------------------------------------

    def on_request(self, node: int, now: float, expect_response: bool = True) -> None:
        """A request went out to ``node``."""
        sent = self._node(node)[0]
        with self.registry.lock:
            if expect_response:
                self.requests_in_flight += 1
            self._requests.record(1.0, now)
            sent.record(1.0, now)

    def on_response(self, node: int, sent_ms: float, now: float, answered: bool = True) -> None:
        """The request sent to ``node`` at ``sent_ms`` was answered (or, ``answered`` false,
        failed without an answer: a cut connection or a timeout)."""
        _, received, latency_sensor = self._node(node)
        latency = now - sent_ms
        with self.registry.lock:
            self.requests_in_flight -= 1
            if not answered:
                return
            self._responses.record(1.0, now)
            received.record(1.0, now)
            self._latency.record(latency, now)
            latency_sensor.record(latency, now)

    def on_throttle(self, throttle_ms: float, now: float) -> None:
        """A Produce response said the broker throttled the request this long."""
        with self.registry.lock:
            self._throttle.record(throttle_ms, now)

    def on_batches_sent(self, batches: Iterable[Any], now: float) -> None:
        """A produce request carries ``batches`` (each already built: ``payload`` set)."""
        per_topic: dict[str, list[float]] = {}
        rows = []
        records = 0
        for batch in batches:
            count = batch.record_count
            wire = len(batch.payload)
            uncompressed = batch.builder.size_in_bytes
            ratio = wire / uncompressed if uncompressed else 1.0
            records += count
            rows.append((count, wire, uncompressed - _BATCH_HEADER, ratio, now - batch.created_ms,
                         batch.builder.max_record_size))
            totals = per_topic.get(batch.topic)
            if totals is None:
                per_topic[batch.topic] = [count, wire, ratio, 1.0]
            else:
                totals[0] += count
                totals[1] += wire
                totals[2] += ratio
                totals[3] += 1.0
        topic_sensors = [(self._topic(topic), totals) for topic, totals in per_topic.items()]
        with self.registry.lock:
            self._records_per_request.record(records, now)
            for count, wire, record_bytes, ratio, queued, largest in rows:
                self._batch_size.record(wire, now)
                self._compression.record(ratio, now)
                self._queue_time.record(queued, now)
                self._record_size_avg.record(record_bytes, now, count)
                self._record_size_max.record(largest, now)
            for sensors, (topic_records, topic_bytes, ratio_sum, batch_count) in topic_sensors:
                sensors[0].record(topic_records, now)
                sensors[1].record(topic_bytes, now)
                sensors[2].record(ratio_sum, now, int(batch_count))

    def on_retry(self, topic: str, records: int, now: float) -> None:
        sensor = self._topic(topic)[4]
        with self.registry.lock:
            self._retries.record(records, now)
            sensor.record(records, now)

    def on_error(self, topic: str, records: int, now: float) -> None:
        sensor = self._topic(topic)[3]
        with self.registry.lock:
            self._errors.record(records, now)
            sensor.record(records, now)

    def on_buffer_wait(self, waited_ns: int, had: bool) -> None:
        """A ``send()`` waited ``waited_ns`` for ``buffer.memory`` (any thread); ``had``: it got it."""
        now = self.registry.clock_ms()
        with self.registry.lock:
            self.buffer_wait.record(waited_ns, now)
            if not had:
                self.buffer_exhausted.record(1.0, now)

    def on_split(self, now: float) -> None:
        with self.registry.lock:
            self._splits.record(1.0, now)


def _rate(config: Any) -> Rate:
    return Rate(config)


def _total(config: Any) -> CumulativeSum:
    return CumulativeSum()


def _count(config: Any) -> CumulativeCount:
    return CumulativeCount()


def _avg(config: Any) -> Avg:
    return Avg(config)


def _max(config: Any) -> Max:
    return Max(config)
