"""kprod's protocol layer against real Apache Kafka: negotiation, metadata, admin, produce, fetch.

What kprod writes is read back by confluent-kafka (librdkafka), and what
confluent-kafka writes is read by kprod, so a codec or record-format bug cannot
hide behind kprod reading its own bytes.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, KafkaError, Producer, TopicPartition

from kprod._version import __version__
from kprod.net.blocking import BlockingConnection
from kprod.protocol.compression import CODEC_IDS
from kprod.protocol.connection import ClientConnection, ConnectionState, Ready
from kprod.protocol.framing import FrameReader, decode_response
from kprod.protocol.messages import CLIENT_VERSIONS, ApiKey, ErrorCode, response_type
from kprod.protocol.records import CREATE_TIME, RecordBatchBuilder, read_batches
from kprod.protocol.requests import (
    create_topics_request,
    fetch_request,
    list_offsets_request,
    metadata_request,
    produce_request,
    to_millis,
)
from kprod.protocol.versions import broker_ranges
from tests.apache_kafka.realkafka import ExternalCluster, KafkaCluster, unique_topic

Cluster = KafkaCluster | ExternalCluster
T = TypeVar("T")

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
DEADLINE = 30.0
_ZERO_UUID = uuid.UUID(int=0)


class Rec(NamedTuple):
    """One record as both sides should see it."""

    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def _records(base_ts: int, tag: str) -> list[Rec]:
    """Records covering null and empty keys/values, null and repeated headers, timestamp
    deltas of both signs, and a value long and repetitive enough that every codec
    really compresses (librdkafka sends a batch uncompressed when that would not shrink it)."""
    long_value = (f"{tag}:the quick brown fox jumps over the lazy dog;" * 120).encode()
    return [
        Rec(base_ts, b"key-0", b"value-0", [("h1", b"a"), ("h-null", None)]),
        Rec(base_ts + 5, None, b"value without a key", []),
        Rec(base_ts - 3, b"tombstone", None, [("empty", b"")]),
        Rec(base_ts + 1000, b"", long_value, [("bin", bytes(range(256)))]),
        Rec(base_ts + 7, b"key-4", b"", [("dup", b"1"), ("dup", b"2"), ("\u00e9t\u00e9", b"\xff\x00")]),
        Rec(base_ts + 8, "ключ".encode(), long_value[::-1], [("h-null", None), ("h2", b"z")]),
    ]


def _wait_for(produce: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    """The first non-None result of ``produce()``; fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        result = produce()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {timeout:.0f} s")
        pause.wait(0.1)


def _connect(kafka: Cluster, node_id: int) -> BlockingConnection:
    host, port = kafka.broker_address(node_id)
    return BlockingConnection(host, port, client_id="kprod-it", timeout=15.0)


@pytest.fixture
def leader_conn(kafka: Cluster) -> Iterator[Callable[[str, int], BlockingConnection]]:
    """Opens (and closes after the test) a connection to a partition's leader."""
    opened: dict[int, BlockingConnection] = {}

    def connect(topic: str, partition: int) -> BlockingConnection:
        leader = kafka.leader(topic, partition)
        assert leader in kafka.node_ids, f"{topic}-{partition} has no leader ({leader})"
        if leader not in opened:
            opened[leader] = _connect(kafka, leader)
        return opened[leader]

    yield connect
    for conn in opened.values():
        conn.close()


def _kprod_fetch(conn: BlockingConnection, topic: str, partition: int, expected: int) -> list[Any]:
    """Every record of the partition from offset 0, via kprod's Fetch and read_batches."""
    version = conn.version(ApiKey.FETCH)

    def attempt() -> tuple[list[Any], Any] | None:
        response = conn.send(fetch_request(version, {topic: [(partition, 0)]}, max_wait_ms=200))
        assert response.error_code == ErrorCode.none
        (topic_response,) = response.responses
        (data,) = topic_response.partitions
        assert (topic_response.topic, data.partition_index) == (topic, partition)
        assert data.error_code == ErrorCode.none
        batches = list(read_batches(data.records or b""))
        if sum(b.record_count for b in batches) < expected:
            return None
        return batches, data

    batches, data = _wait_for(attempt, f"{expected} records in {topic}-{partition}")
    assert data.high_watermark == expected
    assert data.log_start_offset == 0
    return batches


def _list_offset(conn: BlockingConnection, topic: str, partition: int, timestamp: int) -> int:
    response = conn.send(list_offsets_request(conn.version(ApiKey.LIST_OFFSETS), {topic: [(partition, timestamp)]}))
    (topic_response,) = response.topics
    (data,) = topic_response.partitions
    assert (topic_response.name, data.partition_index, data.error_code) == (topic, partition, ErrorCode.none)
    return int(data.offset)


# -- ApiVersions and Metadata -----------------------------------------------------------------


# What Kafka 4.4 (the version tests/apache_kafka/pom.xml pins) advertises for the APIs below.
KAFKA_44_RANGES = {
    ApiKey.PRODUCE: (0, 13),
    ApiKey.FETCH: (4, 18),
    ApiKey.LIST_OFFSETS: (1, 11),
    ApiKey.METADATA: (0, 13),
    ApiKey.API_VERSIONS: (0, 5),
    ApiKey.CREATE_TOPICS: (2, 7),
    ApiKey.INIT_PRODUCER_ID: (0, 5),
}


def _managed(kafka: Cluster) -> bool:
    """True for the cluster the suite starts (pinned Kafka 4.4); False under KPROD_BOOTSTRAP."""
    return isinstance(kafka, KafkaCluster)


def test_api_versions_negotiation_with_every_broker(kafka: Cluster) -> None:
    for node_id in kafka.node_ids:
        with _connect(kafka, node_id) as conn:
            ranges = conn.broker_versions
            if _managed(kafka):
                assert {key: ranges[key] for key in KAFKA_44_RANGES} == KAFKA_44_RANGES
            # The highest version both sides speak: kprod's max where the broker goes higher.
            for api_key in KAFKA_44_RANGES:
                assert conn.version(api_key) == min(CLIENT_VERSIONS[api_key][1], ranges[api_key][1])
            if _managed(kafka):
                assert conn.version(ApiKey.PRODUCE) == 11
                assert conn.version(ApiKey.METADATA) == 12
                assert conn.version(ApiKey.API_VERSIONS) == 4
                assert conn.version(ApiKey.FETCH) == 12
                assert conn.version(ApiKey.LIST_OFFSETS) == 7
                assert conn.version(ApiKey.CREATE_TOPICS) == 7
                assert conn.version(ApiKey.INIT_PRODUCER_ID) == 4
            assert conn.request_class(ApiKey.PRODUCE).__version__ == conn.version(ApiKey.PRODUCE)


def test_metadata_lists_three_brokers_a_controller_and_topic_leaders(kafka: Cluster) -> None:
    topic = unique_topic("kprod-metadata")
    kafka.create_topic(topic, 6, 3)
    kafka.wait_for_full_isr(topic)
    node_ids = kafka.node_ids
    assert (len(node_ids) == 3) if _managed(kafka) else (len(node_ids) >= 3)
    views = []
    for node_id in node_ids:
        with _connect(kafka, node_id) as conn:
            response = conn.send(metadata_request(conn.version(ApiKey.METADATA), [topic]))
        brokers = {b.node_id: (b.host, b.port) for b in response.brokers}
        assert brokers == {n: kafka.broker_address(n) for n in node_ids}
        assert response.controller_id in node_ids
        assert response.cluster_id
        (described,) = response.topics
        assert (described.name, described.error_code, described.is_internal) == (topic, ErrorCode.none, False)
        assert described.topic_id not in (None, _ZERO_UUID)
        partitions = sorted(described.partitions, key=lambda p: p.partition_index)
        assert [p.partition_index for p in partitions] == [0, 1, 2, 3, 4, 5]
        for p in partitions:
            assert p.error_code == ErrorCode.none
            assert sorted(p.replica_nodes) == sorted(node_ids)
            assert sorted(p.isr_nodes) == sorted(node_ids)
            assert tuple(p.offline_replicas) == ()
            assert p.leader_id in node_ids
            assert p.leader_epoch >= 0
        views.append(
            (response.cluster_id, described.topic_id, [(p.partition_index, p.leader_id) for p in partitions])
        )
    # Every broker tells the same story, and it is the one confluent-kafka sees.
    assert all(view == views[0] for view in views)
    assert views[0][2] == [(p, kafka.leader(topic, p)) for p in range(6)]


def test_metadata_for_an_unknown_topic_is_error_3(kafka: Cluster) -> None:
    topic = unique_topic("kprod-absent")
    with _connect(kafka, kafka.node_ids[0]) as conn:
        response = conn.send(metadata_request(conn.version(ApiKey.METADATA), [topic]))
    (described,) = response.topics
    assert (described.name, described.error_code) == (topic, ErrorCode(3))
    assert tuple(described.partitions) == ()


def _read_frame(sock: socket.socket, reader: FrameReader) -> bytes:
    while True:
        data = sock.recv(65536)
        assert data, "the broker closed the connection"
        frames = reader.feed(data)
        if frames:
            (frame,) = frames
            return frame


def test_api_versions_above_the_broker_max_gets_error_35_and_its_range(kafka: Cluster) -> None:
    node_id = kafka.node_ids[0]
    with _connect(kafka, node_id) as conn:
        broker_range = conn.broker_versions[ApiKey.API_VERSIONS]
    if _managed(kafka):
        assert broker_range == KAFKA_44_RANGES[ApiKey.API_VERSIONS]
    # A version neither the broker nor kio knows, so the request is written by hand:
    # request header v2 (ApiVersions is flexible from v3) and a v3-shaped body.
    too_new = broker_range[1] + 1
    correlation_id = 0x5EED
    frame_body = (
        struct.pack(">hhi", ApiKey.API_VERSIONS, too_new, correlation_id)
        + struct.pack(">h", 8)
        + b"kprod-it"
        + b"\x00"  # header tagged section
        + bytes([len("kprod") + 1])
        + b"kprod"
        + bytes([len(__version__) + 1])
        + __version__.encode()
        + b"\x00"  # body tagged section
    )
    host, port = kafka.broker_address(node_id)
    with socket.create_connection((host, port), timeout=15.0) as sock:
        reader = FrameReader()
        sock.sendall(struct.pack(">i", len(frame_body)) + frame_body)
        answer = _read_frame(sock, reader)
        # Header v0, then a v0 body: error 35 and only the broker's own ApiVersions range.
        assert answer == struct.pack(">ihihhh", correlation_id, 35, 1, ApiKey.API_VERSIONS, *broker_range)
        # kprod never asks above its own max (v4); this is the answer a broker older
        # than that gives it, decoded by the same path.
        got_id, response = decode_response(answer, ApiKey.API_VERSIONS, CLIENT_VERSIONS[ApiKey.API_VERSIONS][1])
        assert got_id == correlation_id
        assert type(response) is response_type(ApiKey.API_VERSIONS, 0)
        assert response.error_code == ErrorCode(35)
        assert broker_ranges(response) == {ApiKey.API_VERSIONS: broker_range}

        # The connection stays usable: kprod's connection state machine negotiates on it at
        # min(kprod's max, the broker's), the version its KIP-511 fallback retries at.
        retry_version = min(CLIENT_VERSIONS[ApiKey.API_VERSIONS][1], broker_range[1])
        client = ClientConnection("kprod-it", software_version=__version__, api_versions_version=retry_version)
        sock.sendall(client.connection_made())
        events: list[Any] = []
        while client.state is not ConnectionState.READY:
            data = sock.recv(65536)
            assert data, "the broker closed the connection after the error-35 answer"
            events += client.receive(data)
        [ready] = events
    assert type(ready) is Ready
    assert ready.api_versions.error_code == 0
    ranges = ready.api_versions.broker_versions
    assert ranges[ApiKey.API_VERSIONS] == broker_range
    assert ready.versions[ApiKey.PRODUCE] == min(ranges[ApiKey.PRODUCE][1], CLIENT_VERSIONS[ApiKey.PRODUCE][1])
    if _managed(kafka):
        assert retry_version == 4
        assert {key: ranges[key] for key in KAFKA_44_RANGES} == KAFKA_44_RANGES


# -- CreateTopics -----------------------------------------------------------------------------


def test_create_topics_then_topic_already_exists(kafka: Cluster) -> None:
    topic = unique_topic("kprod-create")
    with _connect(kafka, kafka.node_ids[0]) as conn:
        version = conn.version(ApiKey.CREATE_TOPICS)
        assert version == 7
        created = conn.send(create_topics_request(version, [(topic, 6, 3, {"min.insync.replicas": "2"})]))
        (result,) = created.topics
        assert (result.name, result.error_code, result.error_message) == (topic, ErrorCode.none, None)
        assert (result.num_partitions, result.replication_factor) == (6, 3)
        assert result.topic_id not in (None, _ZERO_UUID)
        configs = {c.name: c.value for c in result.configs}
        assert configs["min.insync.replicas"] == "2"

        again = conn.send(create_topics_request(version, [(topic, 6, 3, None)]))
        (second,) = again.topics
        assert (second.name, second.error_code) == (topic, ErrorCode(36))
        assert second.error_message == f"Topic '{topic}' already exists."

    # Every broker learns the topic: 6 partitions, 3 replicas each, all led.
    for node_id in kafka.node_ids:
        with _connect(kafka, node_id) as conn:

            def described(conn: BlockingConnection = conn) -> Any | None:
                response = conn.send(metadata_request(conn.version(ApiKey.METADATA), [topic]))
                (t,) = response.topics
                if t.error_code != ErrorCode.none or any(p.leader_id < 0 for p in t.partitions):
                    return None
                return t

            t = _wait_for(described, f"{topic} led on node {node_id}")
            assert t.topic_id == result.topic_id
            assert sorted(p.partition_index for p in t.partitions) == list(range(6))
            assert all(sorted(p.replica_nodes) == sorted(kafka.node_ids) for p in t.partitions)


# -- kprod writes, confluent-kafka reads ---------------------------------------------------------


@pytest.fixture(scope="module")
def kprod_written_topic(kafka: Cluster) -> str:
    """One partition per codec, written by kprod's Produce."""
    topic = unique_topic("kprod-writes")
    kafka.create_topic(topic, len(CODECS), 3)
    return topic


def _confluent_read(kafka: Cluster, topic: str, partition: int, count: int) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": unique_topic("kprod-it-reader"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "log_level": 2,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, 0)])
        messages: list[Any] = []

        def more() -> list[Any] | None:
            message = consumer.poll(0.5)
            if message is not None:
                error = message.error()
                assert error is None or error.code() == KafkaError._PARTITION_EOF, error
                if error is None:
                    messages.append(message)
            return messages if len(messages) >= count else None

        _wait_for(more, f"confluent-kafka reading {count} records of {topic}-{partition}")
        # Nothing beyond what we wrote.
        extra = consumer.poll(0.3)
        assert extra is None or extra.error() is not None
        return messages
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", CODECS)
def test_kprod_batch_is_accepted_and_confluent_reads_it_back(
    kafka: Cluster,
    kprod_written_topic: str,
    leader_conn: Callable[[str, int], BlockingConnection],
    codec: str,
) -> None:
    topic = kprod_written_topic
    partition = CODECS.index(codec)
    base_ts = int(time.time() * 1000) - 60_000
    records = _records(base_ts, codec)
    builder = RecordBatchBuilder(codec=CODEC_IDS[codec])
    for r in records:
        assert builder.append(r.timestamp, r.key, r.value, r.headers) > 0
    batch = builder.build()

    conn = leader_conn(topic, partition)
    version = conn.version(ApiKey.PRODUCE)
    assert version == 11
    response = conn.send(produce_request(version, -1, 30000, {topic: [(partition, batch)]}))
    (topic_response,) = response.responses
    (result,) = topic_response.partition_responses
    assert (topic_response.name, result.index) == (topic, partition)
    assert result.error_code == ErrorCode.none, result.error_message
    assert result.base_offset == 0
    assert to_millis(result.log_append_time) == -1  # CreateTime topic
    assert result.log_start_offset == 0
    assert tuple(result.record_errors) == ()

    messages = _confluent_read(kafka, topic, partition, len(records))
    got = [
        (m.offset(), m.timestamp(), m.key(), m.value(), m.headers() or [])
        for m in messages
    ]
    assert got == [
        (i, (TIMESTAMP_CREATE_TIME, r.timestamp), r.key, r.value, r.headers) for i, r in enumerate(records)
    ]

    # The broker kept kprod's codec (compression.type=producer) and the offsets line up.
    stored = _kprod_fetch(conn, topic, partition, len(records))
    assert [(b.base_offset, b.record_count, b.codec) for b in stored] == [(0, len(records), CODEC_IDS[codec])]
    assert _list_offset(conn, topic, partition, -2) == 0
    assert _list_offset(conn, topic, partition, -1) == len(records)


# -- confluent-kafka writes, kprod reads -------------------------------------------------------


@pytest.fixture(scope="module")
def confluent_written_topic(kafka: Cluster) -> str:
    topic = unique_topic("confluent-writes")
    kafka.create_topic(topic, len(CODECS), 3)
    return topic


def _confluent_write(kafka: Cluster, topic: str, partition: int, codec: str, records: list[Rec]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "compression.type": codec,
            "acks": "all",
            "linger.ms": 50,
            "log_level": 2,
        }
    )
    failures: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    for r in records:
        producer.produce(
            topic,
            key=r.key,
            value=r.value,
            partition=partition,
            timestamp=r.timestamp,
            headers=r.headers,
            on_delivery=delivered,
        )
    remaining = producer.flush(DEADLINE)
    assert remaining == 0, f"{remaining} records not delivered within {DEADLINE} s"
    assert failures == []


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_batches_fetched_and_decoded_by_kprod(
    kafka: Cluster,
    confluent_written_topic: str,
    leader_conn: Callable[[str, int], BlockingConnection],
    codec: str,
) -> None:
    topic = confluent_written_topic
    partition = CODECS.index(codec)
    records = _records(int(time.time() * 1000) - 60_000, codec)
    _confluent_write(kafka, topic, partition, codec, records)

    conn = leader_conn(topic, partition)
    batches = _kprod_fetch(conn, topic, partition, len(records))
    assert all(b.codec == CODEC_IDS[codec] for b in batches), [b.codec for b in batches]
    assert all(b.timestamp_type == CREATE_TIME for b in batches)
    assert all(not b.is_transactional and not b.is_control for b in batches)
    assert batches[0].base_offset == 0
    assert sum(b.record_count for b in batches) == len(records)
    got = [
        (rec.offset, rec.timestamp, rec.key, rec.value, list(rec.headers))
        for b in batches
        for rec in b.records()
    ]
    assert got == [(i, r.timestamp, r.key, r.value, r.headers) for i, r in enumerate(records)]

    assert _list_offset(conn, topic, partition, -2) == 0
    assert _list_offset(conn, topic, partition, -1) == len(records)
