"""``Producer.send_many`` against the embedded cluster, read back with confluent-kafka.

What send_many writes must be what send() would write: every record once, Java's
partition for its key, in call order per partition, with its headers and timestamp;
each future reports the record's own offset; retries after lost responses do not
duplicate with idempotence. The read-back is an independent client (confluent-kafka),
never kprod's own record reader.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any, NamedTuple

import pytest

from kprod import Producer
from kprod.cluster import EmbeddedCluster
from kprod.partitioner import partition_for_key
from kprod.protocol.messages import ApiKey

confluent_kafka = pytest.importorskip("confluent_kafka")

PARTITIONS = 6
REQUEST_TIMED_OUT = 7


class Read(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp: int


def read_back(cluster: EmbeddedCluster, topic: str, expected: int, timeout: float = 60.0) -> dict[int, list[Read]]:
    """Every record of the topic, per partition in offset order, read by confluent-kafka."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": cluster.bootstrap_servers, "group.id": f"readback-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False, "fetch.wait.max.ms": 50, "log_level": 2,
    })
    result: dict[int, list[Read]] = {p: [] for p in range(PARTITIONS)}
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                         for p in range(PARTITIONS)])
        deadline = time.monotonic() + timeout
        total = 0
        while total < expected:
            assert time.monotonic() < deadline, f"read {total} of {expected} records back within {timeout} s"
            for message in consumer.consume(num_messages=10_000, timeout=0.2):
                assert message.error() is None, message.error()
                result[message.partition()].append(Read(
                    message.partition(), message.offset(), message.key(), message.value(),
                    list(message.headers() or []), message.timestamp()[1]))
                total += 1
        extra = consumer.consume(num_messages=10, timeout=0.5)
        assert [m for m in extra if m.error() is None] == [], "more records than were sent"
    finally:
        consumer.close()
    return result


def make_topic(cluster: EmbeddedCluster, name: str) -> str:
    cluster.create_topic(name, partitions=PARTITIONS, replication_factor=3, config={"min.insync.replicas": "2"})
    return name


def test_keyed_records_with_headers_and_timestamps_round_trip(cluster: EmbeddedCluster) -> None:
    topic = make_topic(cluster, "bulk-keyed")
    rng = random.Random(8)
    count = 12_000
    keys = [None if i % 10 == 0 else b"key-%d" % rng.randrange(500) for i in range(count)]
    values = [b"value %d " % i * (1 + i % 4) for i in range(count)]
    headers = [[("seq", b"%d" % i), ("none", None)] if i % 3 == 0 else None for i in range(count)]
    timestamps = [1_700_000_000_000 + i if i % 2 else None for i in range(count)]
    acknowledged: list[int] = []
    with Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all", "enable.idempotence": True,
                   "compression.type": "lz4", "linger.ms": 5, "batch.size": 32_768}) as producer:
        futures: list[Any] = []
        for start in range(0, count, 1000):
            futures += producer.send_many(
                topic, values[start:start + 1000], keys[start:start + 1000],
                timestamps=timestamps[start:start + 1000], headers=headers[start:start + 1000],
                callback=lambda md, exc: acknowledged.append(0 if exc is None else 1),
            )
        metadata = [f.result(timeout=60) for f in futures]
    assert len(acknowledged) == count and sum(acknowledged) == 0
    stored = read_back(cluster, topic, count)
    for partition, records in stored.items():
        assert [r.offset for r in records] == list(range(len(records)))
    by_position = {(r.partition, r.offset): r for records in stored.values() for r in records}
    assert len(by_position) == count
    last_index = {p: -1 for p in range(PARTITIONS)}
    for i, md in enumerate(metadata):
        record = by_position[(md.partition, md.offset)]
        assert (record.key, record.value) == (keys[i], values[i])
        assert record.headers == (headers[i] or [])
        if timestamps[i] is not None:
            assert record.timestamp == md.timestamp == timestamps[i]
        if keys[i] is not None:
            assert md.partition == partition_for_key(keys[i], PARTITIONS)
        assert i > last_index[md.partition]  # call order is offset order within a partition
        last_index[md.partition] = i


def test_send_and_send_many_interleave_in_order(cluster: EmbeddedCluster) -> None:
    topic = make_topic(cluster, "bulk-mixed")
    sent: list[tuple[int, bytes]] = []
    with Producer({"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 2}) as producer:
        futures = []
        for round_ in range(20):
            values = [b"many-%d-%d" % (round_, i) for i in range(150)]
            futures += list(zip(values, producer.send_many(topic, values, partition=round_ % 2)))
            single = b"one-%d" % round_
            futures.append((single, producer.send(topic, single, partition=round_ % 2)))
        producer.flush()
        for value, future in futures:
            md = future.result(0)
            sent.append((md.partition, value))
    stored = read_back(cluster, topic, len(sent))
    for partition in (0, 1):
        assert [r.value for r in stored[partition]] == [v for p, v in sent if p == partition]


def test_lost_responses_are_retried_without_duplicates(cluster: EmbeddedCluster) -> None:
    topic = make_topic(cluster, "bulk-retry")
    with Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all", "enable.idempotence": True,
                   "linger.ms": 1, "batch.size": 4096, "retry.backoff.ms": 10}) as producer:
        # Every partition gets a first batch through, so the brokers know the producer's
        # sequence everywhere before responses get lost.
        for partition in range(PARTITIONS):
            producer.send_many(topic, [b"warm-up"], partition=partition)
        producer.flush()
        cluster.inject_errors(ApiKey.PRODUCE, REQUEST_TIMED_OUT, count=3, after_append=True)
        values = [b"r%05d" % i for i in range(3000)]
        futures = producer.send_many(topic, values, [b"k%d" % (i % 50) for i in range(3000)])
        errors = [f.exception(timeout=60) for f in futures]
    assert errors == [None] * 3000
    assert cluster.pending_injections() == 0
    stored = read_back(cluster, topic, 3006)
    got = [r.value for records in stored.values() for r in records if r.value != b"warm-up"]
    assert sorted(got) == values  # each exactly once
    for records in stored.values():
        sequence = [r.value for r in records if r.value != b"warm-up"]
        assert sequence == sorted(sequence)  # and in order per partition
