"""confluent-kafka, kafka-python and aiokafka work against the embedded cluster unchanged.

Each client produces 10,000 keyed records with headers, lz4-compressed, then
reads them back with its own consumer (assigned partitions, no group) and the
test checks every key, value and header, the order per partition, and that
offsets run 0, 1, 2, ... without a gap.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import pytest

from kprod.cluster import EmbeddedCluster

COUNT = 10_000
PARTITIONS = 3

Sent = dict[int, list[tuple[int, bytes, bytes, list[tuple[str, bytes]]]]]  # partition -> (offset, key, value, headers)


def _record(i: int, client: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    return (
        f"key-{i % 997}".encode(),
        f"{client} value {i} ".encode() * (1 + i % 5),
        [("seq", str(i).encode()), ("client", client.encode())],
    )


def _check(cluster: EmbeddedCluster, topic: str, sent: Sent, consumed: Sent) -> None:
    assert sum(len(v) for v in sent.values()) == COUNT
    for partition in range(PARTITIONS):
        expected = sorted(sent.get(partition, []))
        got = consumed.get(partition, [])
        # offsets contiguous from 0, in order
        assert [offset for offset, *_ in got] == list(range(len(got)))
        assert got == expected, f"partition {partition} differs"
        # records of one partition were appended in send order
        seqs = [int(dict(headers)["seq"]) for _, _, _, headers in got]
        assert seqs == sorted(seqs)
        assert cluster.end_offset(topic, partition) == len(expected)
        # kafka-python sends a batch uncompressed when lz4 would not make it smaller
        assert "lz4" in {batch.compression for batch in cluster.partition_log(topic, partition)}


@pytest.fixture
def clients_topic(cluster: EmbeddedCluster) -> str:
    cluster.create_topic("clients", partitions=PARTITIONS, replication_factor=3, config={"min.insync.replicas": "2"})
    return "clients"


def test_confluent_kafka_round_trip(cluster: EmbeddedCluster, clients_topic: str) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "compression.type": "lz4",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    sent: Sent = defaultdict(list)
    failures: list[Any] = []

    def reporter(key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        # delivery reports do not carry headers back, so remember what was sent
        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                failures.append(err)
            else:
                sent[msg.partition()].append((msg.offset(), key, value, headers))

        return on_delivery

    for i in range(COUNT):
        key, value, headers = _record(i, "confluent")
        producer.produce(clients_topic, key=key, value=value, headers=headers, on_delivery=reporter(key, value, headers))
        producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": "unused",  # required by the binding; assign() needs no coordinator
            "enable.auto.commit": False,
        }
    )
    consumer.assign([confluent_kafka.TopicPartition(clients_topic, p, 0) for p in range(PARTITIONS)])
    consumed: Sent = defaultdict(list)
    deadline = time.monotonic() + 30
    total = 0
    while total < COUNT and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 1.0):
            assert msg.error() is None, msg.error()
            consumed[msg.partition()].append((msg.offset(), msg.key(), msg.value(), list(msg.headers())))
            total += 1
    consumer.close()
    _check(cluster, clients_topic, sent, consumed)


def test_kafka_python_round_trip(cluster: EmbeddedCluster, clients_topic: str) -> None:
    kafka = pytest.importorskip("kafka")
    producer = kafka.KafkaProducer(
        bootstrap_servers=cluster.bootstrap_servers,
        compression_type="lz4",
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
    )
    futures = []
    for i in range(COUNT):
        key, value, headers = _record(i, "kafka-python")
        futures.append((producer.send(clients_topic, key=key, value=value, headers=headers), key, value, headers))
    producer.flush(30)
    sent: Sent = defaultdict(list)
    for future, key, value, headers in futures:
        metadata = future.get(timeout=0)
        sent[metadata.partition].append((metadata.offset, key, value, headers))
    producer.close()

    consumer = kafka.KafkaConsumer(
        bootstrap_servers=cluster.bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    consumer.assign([kafka.TopicPartition(clients_topic, p) for p in range(PARTITIONS)])
    consumer.seek_to_beginning()
    consumed: Sent = defaultdict(list)
    deadline = time.monotonic() + 30
    total = 0
    while total < COUNT and time.monotonic() < deadline:
        for tp, messages in consumer.poll(timeout_ms=1000).items():
            for msg in messages:
                consumed[tp.partition].append((msg.offset, msg.key, msg.value, list(msg.headers)))
                total += 1
    consumer.close()
    _check(cluster, clients_topic, sent, consumed)


def test_aiokafka_round_trip(cluster: EmbeddedCluster, clients_topic: str) -> None:
    aiokafka = pytest.importorskip("aiokafka")
    from aiokafka.structs import TopicPartition

    async def produce() -> Sent:
        producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=cluster.bootstrap_servers, compression_type="lz4", enable_idempotence=True
        )
        await producer.start()
        try:
            pending = []
            for i in range(COUNT):
                key, value, headers = _record(i, "aiokafka")
                pending.append((await producer.send(clients_topic, key=key, value=value, headers=headers), key, value, headers))
            sent: Sent = defaultdict(list)
            for future, key, value, headers in pending:
                metadata = await future
                sent[metadata.partition].append((metadata.offset, key, value, headers))
            return sent
        finally:
            await producer.stop()

    async def consume() -> Sent:
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(clients_topic, p) for p in range(PARTITIONS)])
            await consumer.seek_to_beginning()
            consumed: Sent = defaultdict(list)
            total = 0
            deadline = time.monotonic() + 30
            while total < COUNT and time.monotonic() < deadline:
                for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
                    for msg in messages:
                        consumed[tp.partition].append((msg.offset, msg.key, msg.value, list(msg.headers)))
                        total += 1
            return consumed
        finally:
            await consumer.stop()

    sent = asyncio.run(produce())
    consumed = asyncio.run(consume())
    _check(cluster, clients_topic, sent, consumed)


def test_consumers_follow_a_leader_change(cluster: EmbeddedCluster) -> None:
    """After the leader dies, each consumer validates its position (OffsetForLeaderEpoch) and goes on."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    kafka = pytest.importorskip("kafka")
    cluster.create_topic("moving", partitions=1, replication_factor=3)
    producer = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 1})

    def produce(values: range) -> None:
        for i in values:
            producer.produce("moving", value=b"%d" % i)
        assert producer.flush(20) == 0

    confluent = confluent_kafka.Consumer(
        {"bootstrap.servers": cluster.bootstrap_servers, "group.id": "unused", "enable.auto.commit": False}
    )
    confluent.assign([confluent_kafka.TopicPartition("moving", 0, 0)])
    kafka_python = kafka.KafkaConsumer(bootstrap_servers=cluster.bootstrap_servers, group_id=None)
    kafka_python.assign([kafka.TopicPartition("moving", 0)])
    kafka_python.seek(kafka.TopicPartition("moving", 0), 0)
    got_confluent: list[bytes] = []
    got_kafka_python: list[bytes] = []

    def consume_until(count: int) -> None:
        deadline = time.monotonic() + 20
        while (len(got_confluent) < count or len(got_kafka_python) < count) and time.monotonic() < deadline:
            got_confluent.extend(m.value() for m in confluent.consume(100, 0.2) if m.error() is None)
            for messages in kafka_python.poll(200).values():
                got_kafka_python.extend(m.value for m in messages)

    produce(range(100))
    consume_until(100)
    cluster.stop_broker(cluster.leader("moving", 0))
    produce(range(100, 200))
    consume_until(200)
    confluent.close()
    kafka_python.close()
    expected = [b"%d" % i for i in range(200)]
    assert got_confluent == expected
    assert got_kafka_python == expected
