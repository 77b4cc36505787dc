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

__all__ = ["ProducerMetrics", "PRODUCER_GROUP", "TOPIC_GROUP", "NODE_GROUP"]

PRODUCER_GROUP = "producer-metrics"
TOPIC_GROUP = "producer-topic-metrics"
NODE_GROUP = "producer-node-metrics"


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
            ("record-send-rate", "The average number of records sent per second.", _rate),
            ("record-send-total", "The total number of records sent.", _total),
            ("records-per-request-avg", "The average number of records per request.", _avg),
        ])
        self._errors = add("errors", [
            ("record-error-rate", "The average per-second number of record sends that resulted in errors.", _rate),
            ("record-error-total", "The total number of record sends that resulted in errors.", _total),
        ])
        self._retries = add("retries", [
            ("record-retry-rate", "The average per-second number of retried record sends.", _rate),
            ("record-retry-total", "The total number of retried record sends.", _total),
        ])
        self._record_size_avg = add("record-size", [
            ("record-size-avg", "The average size of the records sent, in bytes as encoded in the "
             "batch (uncompressed).", _avg)])
        self._record_size_max = add("record-size-max", [
            ("record-size-max", "The largest record sent, in bytes as encoded in the batch "
             "(uncompressed).", _max)])
        self._queue_time = add("queue-time", [
            ("record-queue-time-avg", "The average time in ms record batches spent in the send buffer.", _avg),
            ("record-queue-time-max", "The maximum time in ms record batches spent in the send buffer.", _max),
        ])
        self._batch_size = add("batch-size", [
            ("batch-size-avg", "The average number of bytes sent per partition per request.", _avg),
            ("batch-size-max", "The max number of bytes sent per partition per request.", _max),
        ])
        self._compression = add("compression-rate", [
            ("compression-rate-avg", "The average compression rate of record batches "
             "(compressed size / uncompressed size).", _avg),
        ])
        self._splits = add("batch-split", [
            ("batch-split-rate", "The average number of batch splits per second.", _rate),
            ("batch-split-total", "The total number of batch splits.", _count),
        ])
        self._latency = add("request-latency", [
            ("request-latency-avg", "The average request latency in ms.", _avg),
            ("request-latency-max", "The maximum request latency in ms.", _max),
        ])
        self._requests = add("requests-sent", [
            ("request-rate", "The number of requests sent per second.", _rate),
            ("request-total", "The total number of requests sent.", _total),
        ])
        self._responses = add("responses-received", [
            ("response-rate", "The number of responses received per second.", _rate),
            ("response-total", "The total number of responses received.", _total),
        ])
        self._throttle = add("produce-throttle-time", [
            ("produce-throttle-time-avg", "The average time in ms a request was throttled by a broker.", _avg),
            ("produce-throttle-time-max", "The maximum time in ms a request was throttled by a broker.", _max),
        ])
        self.buffer_wait = add("bufferpool-wait-time", [
            ("bufferpool-wait-time-ns-total", "The total time in ns an appender waited for space.", _total),
            ("bufferpool-wait-ratio", "The fraction of time an appender waited for space.",
             lambda c: Rate(c, per_ms=1e-6)),
        ])
        self.buffer_exhausted = add("buffer-exhausted", [
            ("buffer-exhausted-rate", "The average per-second number of record sends dropped "
             "because buffer.memory stayed full.", _rate),
            ("buffer-exhausted-total", "The total number of record sends dropped because "
             "buffer.memory stayed full.", _total),
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

    def add_gauge(self, name: str, description: str, gauge: Callable[[], float]) -> None:
        self.registry.add_gauge(self._name(name, description), gauge)

    def _topic(self, topic: str) -> tuple[Sensor, Sensor, Sensor, Sensor, Sensor]:
        sensors = self._topics.get(topic)
        if sensors is None:
            extra = (("topic", topic),)
            add = self._add
            sensors = self._topics[topic] = (
                add("topic.records-per-batch", [
                    ("record-send-rate", "The average number of records sent per second for a topic.", _rate),
                    ("record-send-total", "The total number of records sent for a topic.", _total)],
                    TOPIC_GROUP, extra),
                add("topic.bytes", [
                    ("byte-rate", "The average number of bytes sent per second for a topic.", _rate),
                    ("byte-total", "The total number of bytes sent for a topic.", _total)],
                    TOPIC_GROUP, extra),
                add("topic.compression-rate", [
                    ("compression-rate", "The average compression rate of record batches for a topic.", _avg)],
                    TOPIC_GROUP, extra),
                add("topic.record-errors", [
                    ("record-error-rate", "The average per-second number of record sends that resulted in "
                     "errors for a topic.", _rate),
                    ("record-error-total", "The total number of record sends that resulted in errors for a "
                     "topic.", _total)], TOPIC_GROUP, extra),
                add("topic.record-retries", [
                    ("record-retry-rate", "The average per-second number of retried record sends for a topic.",
                     _rate),
                    ("record-retry-total", "The total number of retried record sends for a topic.", _total)],
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
                    ("request-rate", "The number of requests sent per second to the node.", _rate),
                    ("request-total", "The total number of requests sent to the node.", _total)],
                    NODE_GROUP, extra),
                add("node.responses-received", [
                    ("response-rate", "The number of responses received per second from the node.", _rate),
                    ("response-total", "The total number of responses received from the node.", _total)],
                    NODE_GROUP, extra),
                add("node.request-latency", [
                    ("request-latency-avg", "The average request latency in ms for the node.", _avg),
                    ("request-latency-max", "The maximum request latency in ms for the node.", _max)],
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
