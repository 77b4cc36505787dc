"""Each fault-injection operation, shown through its effect on a client.

The client is confluent-kafka (an independent implementation); kprod's own
producer gets the same scenarios in the producer test suites.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from cluster_helpers import build_batch, connect, produce_partition, wait_until

from kprod.cluster import ClusterError, EmbeddedCluster
from kprod.errors import KafkaConnectionError
from kprod.protocol.messages import ApiKey
from kprod.protocol.requests import metadata_request

confluent_kafka = pytest.importorskip("confluent_kafka")

NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7
NOT_ENOUGH_REPLICAS = 19
TOPIC_AUTHORIZATION_FAILED = 29


class Recorder:
    """A confluent-kafka producer that remembers every delivery report."""

    def __init__(self, cluster: EmbeddedCluster, **config: Any) -> None:
        settings = {"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 1}
        settings.update({k.replace("_", "."): v for k, v in config.items()})
        self.producer = confluent_kafka.Producer(settings)
        self.delivered: list[tuple[int, int, bytes]] = []  # (partition, offset, value)
        self.errors: list[Any] = []
        self.latencies: list[float] = []

    def send(self, topic: str, value: bytes, partition: int = 0) -> None:
        started = time.monotonic()

        def on_delivery(err: Any, msg: Any) -> None:
            self.latencies.append(time.monotonic() - started)
            if err is not None:
                self.errors.append(err)
            else:
                self.delivered.append((msg.partition(), msg.offset(), msg.value()))

        self.producer.produce(topic, value=value, partition=partition, on_delivery=on_delivery)

    def flush(self, timeout: float = 30) -> None:
        assert self.producer.flush(timeout) == 0

    def close(self) -> None:
        """Drop the producer while the cluster still runs (no reconnect noise after it stops)."""
        self.producer.flush(1)
        del self.producer


@pytest.fixture
def recorder(cluster: EmbeddedCluster) -> Iterator[Recorder]:
    recorder = Recorder(cluster, enable_idempotence=True)
    yield recorder
    recorder.close()


def _values(cluster: EmbeddedCluster, topic: str, partition: int = 0) -> list[bytes | None]:
    return [r.value for r in cluster.records(topic, partition)]


def test_injected_not_leader_errors_are_retried(cluster: EmbeddedCluster, topic: str, recorder: Recorder) -> None:
    recorder.send(topic, b"warm-up")  # connections and producer id in place
    recorder.flush()
    cluster.inject_errors(ApiKey.PRODUCE, NOT_LEADER_OR_FOLLOWER, count=3)
    for i in range(20):
        recorder.send(topic, b"%d" % i)
    recorder.flush()
    assert recorder.errors == []
    assert cluster.pending_injections() == 0  # all three were served
    assert _values(cluster, topic) == [b"warm-up"] + [b"%d" % i for i in range(20)]  # once each, in order


def test_injection_on_one_broker_only(cluster: EmbeddedCluster, topic: str) -> None:
    leader0, leader1 = cluster.leader(topic, 0), cluster.leader(topic, 1)
    assert leader0 != leader1
    cluster.inject_errors(ApiKey.PRODUCE, REQUEST_TIMED_OUT, count=2, broker=leader0)
    with connect(cluster, leader0) as conn0, connect(cluster, leader1) as conn1:
        codes = []
        for conn, partition in ((conn1, 1), (conn0, 0), (conn1, 1), (conn0, 0), (conn0, 0)):
            result, _ = produce_partition(conn, topic, partition, build_batch([b"x"]))
            codes.append(int(result.error_code))
    assert codes == [0, REQUEST_TIMED_OUT, 0, REQUEST_TIMED_OUT, 0]
    assert cluster.end_offset(topic, 0) == 1


def test_error_after_append_is_deduplicated_by_idempotence(
    cluster: EmbeddedCluster, topic: str, recorder: Recorder
) -> None:
    recorder.send(topic, b"warm-up")
    recorder.flush()
    cluster.inject_errors(ApiKey.PRODUCE, REQUEST_TIMED_OUT, count=2, after_append=True)
    for i in range(10):
        recorder.send(topic, b"%d" % i)
    recorder.flush()
    assert recorder.errors == []
    assert cluster.pending_injections() == 0
    # the broker wrote the batches whose responses "got lost"; the retries were duplicates
    assert _values(cluster, topic) == [b"warm-up"] + [b"%d" % i for i in range(10)]


def test_error_after_append_duplicates_without_idempotence(cluster: EmbeddedCluster, topic: str) -> None:
    recorder = Recorder(cluster, enable_idempotence=False, acks="all", retries=5)
    recorder.send(topic, b"warm-up")
    recorder.flush()
    cluster.inject_errors(ApiKey.PRODUCE, REQUEST_TIMED_OUT, count=1, after_append=True)
    recorder.send(topic, b"once")
    recorder.flush()
    assert recorder.errors == []
    assert _values(cluster, topic) == [b"warm-up", b"once", b"once"]  # what idempotence prevents


def test_non_retriable_injected_error_fails_the_delivery(cluster: EmbeddedCluster, topic: str, recorder: Recorder) -> None:
    cluster.inject_errors(ApiKey.PRODUCE, TOPIC_AUTHORIZATION_FAILED, count=1)
    recorder.send(topic, b"denied")
    recorder.flush()
    assert [e.code() for e in recorder.errors] == [confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert cluster.end_offset(topic, 0) == 0


def test_injected_fetch_errors_are_retried_by_consumer(cluster: EmbeddedCluster, topic: str, recorder: Recorder) -> None:
    for i in range(50):
        recorder.send(topic, b"%d" % i)
    recorder.flush()
    cluster.inject_errors(ApiKey.FETCH, NOT_LEADER_OR_FOLLOWER, count=2)
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": cluster.bootstrap_servers, "group.id": "unused", "enable.auto.commit": False}
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + 20
    while len(values) < 50 and time.monotonic() < deadline:
        for msg in consumer.consume(100, 0.5):
            if msg.error() is None:
                values.append(msg.value())
    consumer.close()
    assert cluster.pending_injections() == 0
    assert values == [b"%d" % i for i in range(50)]


def test_latency_delays_every_response(cluster: EmbeddedCluster, topic: str, recorder: Recorder) -> None:
    leader = cluster.leader(topic, 0)
    recorder.send(topic, b"warm-up")
    recorder.flush()
    cluster.add_latency(leader, 1000)
    with connect(cluster, leader) as conn:
        started = time.monotonic()
        conn.send(metadata_request(conn.version(ApiKey.METADATA), [topic]))
        assert time.monotonic() - started >= 1.0
    recorder.latencies.clear()
    recorder.send(topic, b"slow")
    recorder.flush()
    assert recorder.latencies[0] >= 1.0
    cluster.add_latency(leader, 0)
    with connect(cluster, leader) as conn:
        started = time.monotonic()
        conn.send(metadata_request(conn.version(ApiKey.METADATA), [topic]))
        assert time.monotonic() - started < 1.0  # generous: only the injected second must be gone


def test_throttle_reports_throttle_time_and_mutes(cluster: EmbeddedCluster, topic: str) -> None:
    leader = cluster.leader(topic, 0)
    cluster.throttle(leader, 200)
    with connect(cluster, leader) as conn:
        started = time.monotonic()
        first = conn.send(metadata_request(conn.version(ApiKey.METADATA), [topic]))
        second = conn.send(metadata_request(conn.version(ApiKey.METADATA), [topic]))
        elapsed = time.monotonic() - started
    assert first.throttle_time.total_seconds() == second.throttle_time.total_seconds() == 0.2
    assert elapsed >= 0.2  # the second request waited out the first one's throttle time

    events: list[Any] = []
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": cluster.bootstrap_servers, "throttle_cb": events.append}
    )
    producer.produce(topic, value=b"throttled", partition=0)
    assert producer.flush(10) == 0
    wait_until(lambda: producer.poll(0.1) is not None and any(e.broker_id == leader for e in events), what="a throttle event")
    assert {e.throttle_time for e in events if e.broker_id == leader} == {0.2}


def test_drop_connections(cluster: EmbeddedCluster, topic: str, recorder: Recorder) -> None:
    leader = cluster.leader(topic, 0)
    recorder.send(topic, b"before")
    recorder.flush()
    with connect(cluster, leader) as conn:
        assert cluster.connections(leader) >= 2  # ours and the producer's
        assert cluster.drop_connections(leader) >= 2
        assert cluster.connections(leader) == 0
        with pytest.raises(KafkaConnectionError):
            conn.send(metadata_request(conn.version(ApiKey.METADATA), [topic]))
    recorder.send(topic, b"after")  # the producer reconnects
    recorder.flush()
    assert recorder.errors == []
    assert _values(cluster, topic) == [b"before", b"after"]
    assert cluster.drop_connections() >= 1  # every broker


def test_stop_broker_refuses_connections_and_producer_fails_over(
    cluster: EmbeddedCluster, topic: str, recorder: Recorder
) -> None:
    leader = cluster.leader(topic, 0)
    recorder.send(topic, b"before")
    recorder.flush()
    cluster.stop_broker(leader)
    with pytest.raises(KafkaConnectionError):
        connect(cluster, leader)
    recorder.send(topic, b"after")
    recorder.flush()
    assert recorder.errors == []
    assert _values(cluster, topic) == [b"before", b"after"]
    cluster.start_broker(leader)
    with connect(cluster, leader) as conn:  # same port again
        assert conn.port == next(b.port for b in cluster.brokers if b.node_id == leader)


def test_move_leader_producer_follows(cluster: EmbeddedCluster, topic: str, recorder: Recorder) -> None:
    info = cluster.partition_info(topic, 0)
    for i in range(20):
        recorder.send(topic, b"%d" % i)
    recorder.flush()
    target = [r for r in info.replicas if r != info.leader][0]
    cluster.move_leader(topic, 0, target)
    for i in range(20, 40):
        recorder.send(topic, b"%d" % i)
    recorder.flush()
    assert recorder.errors == []
    assert _values(cluster, topic) == [b"%d" % i for i in range(40)]
    epochs = {b.partition_leader_epoch for b in cluster.partition_log(topic, 0)}
    assert epochs == {info.leader_epoch, info.leader_epoch + 1}  # batches stamped by each leader


def test_shrink_isr_fails_acks_all(cluster: EmbeddedCluster, topic: str) -> None:
    recorder = Recorder(cluster, enable_idempotence=False, acks="all", retries=0)
    leader = cluster.leader(topic, 0)
    cluster.shrink_isr(topic, 0, [leader])
    recorder.send(topic, b"refused")
    recorder.flush()
    assert [e.code() for e in recorder.errors] == [confluent_kafka.KafkaError.NOT_ENOUGH_REPLICAS]
    cluster.restore_isr(topic, 0)
    recorder.send(topic, b"accepted")
    recorder.flush()
    assert _values(cluster, topic) == [b"accepted"]


def test_fault_arguments_are_checked(cluster: EmbeddedCluster) -> None:
    with pytest.raises(ClusterError, match="not served"):
        cluster.inject_errors(99, NOT_LEADER_OR_FOLLOWER)
    with pytest.raises(ClusterError, match="not a Kafka error code"):
        cluster.inject_errors(ApiKey.PRODUCE, 31337)
    with pytest.raises(ClusterError, match="Produce only"):
        cluster.inject_errors(ApiKey.FETCH, NOT_LEADER_OR_FOLLOWER, after_append=True)
    with pytest.raises(ClusterError, match="no broker 5"):
        cluster.add_latency(5, 10)
    with pytest.raises(ClusterError, match="non-negative"):
        cluster.throttle(0, -1)
    cluster.inject_errors(ApiKey.PRODUCE, NOT_LEADER_OR_FOLLOWER, count=4)
    cluster.clear_faults()
    assert cluster.pending_injections() == 0
