"""The producer's metrics against what a test sent through the embedded cluster, faults included.

Counts must match exactly: records sent (each attempt counts, as in Java), retried,
failed, batches split; byte totals match the batches the brokers stored.
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import pytest

from kprod import Producer
from kprod.cluster import EmbeddedCluster
from kprod.errors import TopicAuthorizationFailedError
from kprod.metrics import MetricName, snapshot_json
from kprod.protocol.messages import ApiKey

NOT_LEADER_OR_FOLLOWER = 6
MESSAGE_TOO_LARGE = 10
TOPIC_AUTHORIZATION_FAILED = 29


def producer_for(cluster: EmbeddedCluster, **overrides: Any) -> Producer:
    config: dict[str, Any] = {
        "bootstrap.servers": cluster.bootstrap_servers,
        "client.id": "metered",
        "linger.ms": 0,
        "retry.backoff.ms": 10,
        "retry.backoff.max.ms": 50,
    }
    config.update(overrides)
    return Producer(config)


def value(producer: Producer, name: str, group: str = "producer-metrics", **tags: str) -> float:
    key = MetricName(name, group, (("client-id", "metered"), *tags.items()))
    return producer.metrics()[key]


def test_sends_retries_and_errors_are_counted_exactly(cluster: EmbeddedCluster, topic: str) -> None:
    with producer_for(cluster) as producer:
        producer.send(topic, b"warm-up", partition=0).result(10)
        cluster.inject_errors(ApiKey.PRODUCE, NOT_LEADER_OR_FOLLOWER, count=3)
        producer.send(topic, b"retried", partition=0).result(10)
        # A retriable error three times: four attempts of one record, three of them retries.
        assert value(producer, "record-send-total") == 5
        assert value(producer, "record-retry-total") == 3
        assert value(producer, "record-retry-total", "producer-topic-metrics", topic=topic) == 3
        assert value(producer, "record-error-total") == 0

        cluster.inject_errors(ApiKey.PRODUCE, TOPIC_AUTHORIZATION_FAILED, count=1)
        failed = producer.send(topic, b"refused", partition=0)
        assert isinstance(failed.exception(10), TopicAuthorizationFailedError)
        assert value(producer, "record-error-total") == 1
        assert value(producer, "record-error-total", "producer-topic-metrics", topic=topic) == 1
        assert value(producer, "record-send-total") == 6
        assert value(producer, "record-send-total", "producer-topic-metrics", topic=topic) == 6
        assert value(producer, "record-send-rate") > 0
    assert [r.value for r in cluster.records(topic, 0)] == [b"warm-up", b"retried"]


def test_a_split_is_counted_and_its_records_sent_again(cluster: EmbeddedCluster, topic: str) -> None:
    with producer_for(cluster, **{"linger.ms": 60_000}) as producer:
        producer.send(topic, b"warm-up", partition=0)
        producer.flush(10)
        cluster.inject_errors(ApiKey.PRODUCE, MESSAGE_TOO_LARGE, count=1)
        futures = [producer.send(topic, b"%d" % i, partition=0) for i in range(10)]
        producer.flush(10)
        assert [f.result(0).offset for f in futures] == list(range(1, 11))
        assert value(producer, "batch-split-total") == 1
        # 1 + 10 (refused as too large) + 5 + 5 (the halves).
        assert value(producer, "record-send-total") == 21
        assert value(producer, "record-retry-total") == 0
    assert [r.value for r in cluster.records(topic, 0)] == [b"warm-up", *(b"%d" % i for i in range(10))]


def test_sizes_and_bytes_match_the_batches_the_brokers_stored(cluster: EmbeddedCluster, topic: str) -> None:
    with producer_for(cluster, **{"linger.ms": 60_000, "compression.type": "gzip"}) as producer:
        for round_ in range(3):
            for i in range(50):
                producer.send(topic, b"x" * (10 + i), key=b"k%d" % i, partition=round_ % 3, timestamp=1000)
            producer.flush(10)
        stored = [batch for p in range(3) for batch in cluster.partition_log(topic, p)]
        assert len(stored) == 3
        wire = [batch.size_in_bytes for batch in stored]
        assert value(producer, "byte-total", "producer-topic-metrics", topic=topic) == sum(wire)
        assert value(producer, "batch-size-max") == max(wire)
        assert value(producer, "batch-size-avg") == pytest.approx(sum(wire) / 3)
        assert value(producer, "records-per-request-avg") == pytest.approx(50)
        assert value(producer, "record-send-total") == 150
        # Largest record: attributes, timestamp delta 0, offset delta 49, key length, 3-byte key,
        # value length, 59-byte value, no headers: 68 bytes, plus its length prefix (a zigzag
        # varint: 136 takes 2 bytes).
        assert value(producer, "record-size-max") == 70
        assert 0 < value(producer, "compression-rate-avg") < 1
        assert 0 < value(producer, "compression-rate", "producer-topic-metrics", topic=topic) < 1
        assert value(producer, "record-queue-time-max") >= value(producer, "record-queue-time-avg") >= 0


def test_gauges_buffer_connections_requests_and_node_metrics(cluster: EmbeddedCluster, topic: str) -> None:
    with producer_for(cluster, **{"buffer.memory": 1 << 20}) as producer:
        metadata = producer.send(topic, b"v", partition=1).result(10)
        producer.flush(10)
        assert value(producer, "buffer-total-bytes") == 1 << 20
        assert value(producer, "buffer-available-bytes") == 1 << 20
        assert value(producer, "waiting-threads") == 0
        assert value(producer, "requests-in-flight") == 0
        assert value(producer, "connection-count") >= 1
        assert 0 <= value(producer, "metadata-age") < 300
        assert value(producer, "bufferpool-wait-time-ns-total") == 0
        leader = cluster.leader(topic, metadata.partition)
        node = f"node-{leader}"
        assert value(producer, "request-total", "producer-node-metrics", **{"node-id": node}) >= 1
        assert value(producer, "response-total", "producer-node-metrics", **{"node-id": node}) >= 1
        assert value(producer, "request-latency-max", "producer-node-metrics", **{"node-id": node}) >= 0
        # Every request sent was answered: metadata, producer id and the produce request.
        assert value(producer, "request-total") == value(producer, "response-total") >= 3
        assert value(producer, "produce-throttle-time-max") == 0


def test_throttle_time_is_reported(cluster: EmbeddedCluster, topic: str) -> None:
    with producer_for(cluster) as producer:
        producer.send(topic, b"v", partition=0).result(10)
        for broker in cluster.brokers:
            cluster.throttle(broker.node_id, 40)
        producer.send(topic, b"w", partition=0).result(10)
        assert value(producer, "produce-throttle-time-max") == 40


def test_stats_callback_gets_json_ready_snapshots(cluster: EmbeddedCluster, topic: str) -> None:
    snapshots: list[dict[str, Any]] = []
    sent_seen = threading.Event()

    def on_stats(snapshot: dict[str, Any]) -> None:
        snapshots.append(snapshot)
        if snapshot["producer-metrics"]["record-send-total"] == 1:
            sent_seen.set()

    config = {"statistics.interval.ms": 20, "stats.callback": on_stats}
    with producer_for(cluster, **config) as producer:
        producer.send(topic, b"v", partition=0).result(10)
        assert sent_seen.wait(10), "no statistics snapshot counted the send"
    snapshot = next(s for s in snapshots if s["producer-metrics"]["record-send-total"] == 1)
    assert snapshot["producer-topic-metrics"][topic]["record-send-total"] == 1
    decoded = json.loads(snapshot_json(snapshot))
    assert decoded["producer-metrics"]["buffer-total-bytes"] == 33554432
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in decoded["producer-metrics"].values())


def test_a_failing_stats_callback_does_not_stop_the_producer(cluster: EmbeddedCluster, topic: str) -> None:
    calls = threading.Semaphore(0)

    def broken(snapshot: dict[str, Any]) -> None:
        calls.release()
        raise RuntimeError("dashboard down")

    with producer_for(cluster, **{"statistics.interval.ms": 10, "stats.callback": broken}) as producer:
        assert calls.acquire(timeout=10) and calls.acquire(timeout=10)  # called again after raising
        assert producer.send(topic, b"still delivered", partition=0).result(10).offset == 0
    assert [r.value for r in cluster.records(topic, 0)] == [b"still delivered"]


def test_reporters_are_told_and_bad_ones_refused(cluster: EmbeddedCluster) -> None:
    class Reporter:
        def __init__(self) -> None:
            self.names: set[str] = set()
            self.closed = False

        def init(self, metrics: list[Any]) -> None:
            self.names.update(str(m.name) for m in metrics)

        def metric_change(self, metric: Any) -> None:
            self.names.add(str(metric.name))

        def metric_removal(self, metric: Any) -> None:
            self.names.discard(str(metric.name))

        def close(self) -> None:
            self.closed = True

    reporter = Reporter()
    with producer_for(cluster, **{"metric.reporters": [reporter]}) as producer:
        assert {str(name) for name in producer.metrics()} == reporter.names
        assert "producer-metrics:record-send-rate:{client-id=metered}" in reporter.names
    assert reporter.closed
    from kprod.errors import ConfigError

    with pytest.raises((ConfigError, TypeError), match="metric_change|could not be loaded"):
        producer_for(cluster, **{"metric.reporters": ["no.such.Reporter"]})
    with pytest.raises(ConfigError, match="stats.callback"):
        producer_for(cluster, **{"stats.callback": 5})
