"""Nothing a caller passes stops the I/O thread; bytes-like headers arrive as sent (embedded cluster).

A batch whose request bytes cannot be built fails alone, with the cause, and the producer
goes on delivering every other record (before it, beside it and after it, on the same
partition too). Read back with confluent-kafka, an independent client. Run with and
without the accelerator (``KPROD_NO_SPEEDUPS=1``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from kprod import Producer, _native
from kprod.cluster import EmbeddedCluster
from kprod.errors import KafkaError, SerializationError
from kprod.protocol.records import RecordBatchBuilder

confluent_kafka = pytest.importorskip("confluent_kafka")

PARTITIONS = 3
POISON = b"POISON"


def read_back(cluster: EmbeddedCluster, topic: str, expected: int, timeout: float = 60.0) -> dict[int, list[Any]]:
    """(offset, key, value, headers) of every record of the topic per partition, read by confluent-kafka."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": cluster.bootstrap_servers, "group.id": f"readback-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False, "fetch.wait.max.ms": 50, "log_level": 2,
    })
    result: dict[int, list[Any]] = {p: [] for p in range(PARTITIONS)}
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                         for p in range(PARTITIONS)])
        deadline = time.monotonic() + timeout
        total = 0
        while total < expected:
            assert time.monotonic() < deadline, f"read {total} of {expected} records back within {timeout} s"
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                assert message.error() is None, message.error()
                result[message.partition()].append(
                    (message.offset(), message.key(), message.value(), list(message.headers() or [])))
                total += 1
        extra = consumer.consume(num_messages=10, timeout=0.5)
        assert [m for m in extra if m.error() is None] == [], "more records than were sent"
    finally:
        consumer.close()
    return result


@pytest.fixture
def topic(cluster: EmbeddedCluster) -> str:
    cluster.create_topic("checked", partitions=PARTITIONS, replication_factor=3)
    return "checked"


@pytest.mark.parametrize("poison", ["build", "timestamp"])
@pytest.mark.parametrize("idempotence", [True, False])
def test_a_batch_that_cannot_be_built_fails_alone_and_the_producer_goes_on(
        cluster: EmbeddedCluster, topic: str, poison: str, idempotence: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """``build``: RecordBatchBuilder.build raises for the poisoned record's batch (both code paths).
    ``timestamp``: defect 2 forced past the record check: 2**63 reaches build() on the pure-Python
    path, whose struct packing fails (the compiled encoder refuses it at send(), so only without it)."""
    original_build = RecordBatchBuilder.build

    def build(self: RecordBatchBuilder, *args: Any, **kwargs: Any) -> bytes:
        if poison == "build" and POISON in bytes(self._buf if self._buf is not None else self._payload or b""):
            raise RuntimeError("poisoned batch")
        return original_build(self, *args, **kwargs)

    if poison == "build":
        monkeypatch.setattr(RecordBatchBuilder, "build", build)
    else:
        if _native.speedups is not None:
            pytest.skip("the compiled encoder refuses a 2**63 timestamp at send(): nothing reaches the I/O thread")
        monkeypatch.setattr("kprod.client.check_timestamp", lambda *args: None)  # force it past the check
    config = {"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 0, "enable.idempotence": idempotence,
              "acks": "all"}
    with Producer(config) as producer:
        first = [producer.send(topic, b"before-%d" % i, partition=i % PARTITIONS) for i in range(6)]
        for future in first:
            future.result(30)
        if poison == "build":
            bad = producer.send(topic, POISON, partition=1)
        else:
            bad = producer.send(topic, b"late", partition=1, timestamp=2**63)
        error = bad.exception(30)
        assert isinstance(error, KafkaError) and "Could not build the record batch" in str(error)
        assert isinstance(error.__cause__, (RuntimeError, ValueError))
        if poison == "build":
            assert str(error.__cause__) == "poisoned batch"
        after = [producer.send(topic, b"after-%d" % i, partition=i % PARTITIONS) for i in range(6)]
        for future in after:
            future.result(30)
        assert producer._thread.is_alive()
    records = read_back(cluster, topic, 12)
    for partition in range(PARTITIONS):
        values = [value for _, _, value, _ in records[partition]]
        assert values == [b"before-%d" % i for i in range(partition, 6, PARTITIONS)] + \
                         [b"after-%d" % i for i in range(partition, 6, PARTITIONS)]
        assert [offset for offset, *_ in records[partition]] == list(range(4))


def test_bytes_like_header_values_arrive_as_bytes_and_bad_headers_are_refused(
        cluster: EmbeddedCluster, topic: str) -> None:
    """Defect 1: ``[("a", bytearray(b"x")), ("b", 5)]`` was accepted and header b read back as five zero bytes."""
    with Producer({"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 0}) as producer:
        with pytest.raises(SerializationError, match="Invalid header 1"):
            producer.send(topic, b"v", partition=0, headers=[("a", bytearray(b"x")), ("b", 5)])
        with pytest.raises(SerializationError, match="its key is int"):
            producer.send(topic, b"v", partition=0, headers=[("a", bytearray(b"x")), (7, b"y")])
        producer.send(topic, b"v", partition=0, headers=[("a", bytearray(b"x")), ("b", memoryview(b"yz")),
                                                         ("c", None)]).result(30)
        producer.send_many(topic, [b"w"], partition=0, headers=[[("d", bytearray(b"q"))]])[0].result(30)
    records = read_back(cluster, topic, 2)
    assert records[0] == [(0, None, b"v", [("a", b"x"), ("b", b"yz"), ("c", None)]), (1, None, b"w", [("d", b"q")])]
