"""The producer (issues 3 and 4) against the real 3-node Apache Kafka cluster.

Everything kprod writes is read back with confluent-kafka's consumer (partitions
assigned, from the earliest offset), and compared exactly: partition, offset,
order, key, value, headers, timestamp.

Every test takes the ``cluster`` fixture and uses only what a cluster-like object
offers (``bootstrap_servers``, ``create_topic(name, partitions, rf, config)``,
``leader(topic, p)``, ``node_ids``, ``broker_address(node)``, ``stop_node(node,
kill=)``, ``start_node(node)``, ``metadata()`` as confluent-kafka's, and
``controllable``), so a suite for the embedded cluster can import these tests and
override ``cluster`` with an adapter.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import socket
import struct
import threading
import time
from typing import Any

import pytest

from kprod import PartitionInfo, Producer, ProducerRecord, RecordMetadata
from kprod.errors import (
    BufferExhaustedError,
    ForkedProducerError,
    InvalidTopicError,
    KafkaTimeoutError,
    MessageTooLargeError,
    NotEnoughReplicasError,
    ProducerClosedError,
    RecordTooLargeError,
)
from kprod.net.blocking import BlockingConnection
from kprod.partitioner import partition_for_key
from kprod.protocol.compression import codec_for_name
from kprod.protocol.messages import ApiKey
from kprod.protocol.records import read_batches
from kprod.protocol.requests import fetch_request
from tests.helpers import Message, consume_all, wait_for
from tests.apache_kafka.realkafka import unique_topic

CREATE_TIME = 1  # confluent_kafka.TIMESTAMP_CREATE_TIME
LOG_APPEND_TIME = 2  # confluent_kafka.TIMESTAMP_LOG_APPEND_TIME
BASE_TS = 1_700_000_000_000


@pytest.fixture
def cluster(kafka_all_up: Any) -> Any:
    """The cluster under test; every node up before and after each test."""
    return kafka_all_up


def _needs_control(cluster: Any) -> None:
    if not getattr(cluster, "controllable", True):
        pytest.skip("stops and starts nodes, which an external cluster does not allow")


def _topic(cluster: Any, partitions: int, config: dict[str, str] | None = None, prefix: str = "prod") -> str:
    name = unique_topic(prefix)
    cluster.create_topic(name, partitions, 3, config)
    return name


def _producer(cluster: Any, **config: Any) -> Producer:
    conf: dict[str, Any] = {"bootstrap.servers": cluster.bootstrap_servers, "reconnect.backoff.max.ms": 200}
    conf.update({key.replace("_", "."): value for key, value in config.items()})
    return Producer(conf)


def _values(messages: list[Message]) -> list[bytes | None]:
    return [m.value for m in messages]


def _assert_contiguous(messages: list[Message]) -> None:
    assert [m.offset for m in messages] == list(range(len(messages)))


# -- the three ways to send --------------------------------------------------------------


def test_fire_and_forget_then_flush_delivers_exactly(cluster: Any) -> None:
    topic = _topic(cluster, 3)
    sent: dict[int, list[tuple[bytes, bytes, list[tuple[str, bytes | None]], int]]] = {0: [], 1: [], 2: []}
    with _producer(cluster) as producer:
        futures = []
        for i in range(600):
            partition = i % 3
            key, value = b"key-%d" % i, b"value-%d" % i
            headers = [("seq", b"%d" % i), ("empty", b""), ("null", None)]
            timestamp = BASE_TS + i
            futures.append(producer.send(topic, value, key=key, partition=partition, timestamp=timestamp, headers=headers))
            sent[partition].append((key, value, headers, timestamp))
        producer.flush()
        assert all(f.done() for f in futures), "flush() returned with records still pending"
        assert [f.exception(0) for f in futures] == [None] * 600
    got = consume_all(cluster.bootstrap_servers, topic, range(3), expected=600)
    for partition in range(3):
        messages = got[partition]
        _assert_contiguous(messages)
        assert [(m.key, m.value, m.headers, m.timestamp_type, m.timestamp) for m in messages] == [
            (key, value, headers, CREATE_TIME, ts) for key, value, headers, ts in sent[partition]
        ]


def test_synchronous_send_returns_exact_metadata(cluster: Any) -> None:
    topic = _topic(cluster, 2)
    with _producer(cluster, linger_ms=0) as producer:
        before = int(time.time() * 1000)
        results = [
            producer.send(topic, b"v0", key=b"k0", partition=1, timestamp=BASE_TS).result(timeout=30),
            producer.send(ProducerRecord(topic, b"v1", b"key-1", 1, BASE_TS + 1, [("h", b"1")])).result(timeout=30),
            producer.send(topic, None, key=b"tombstone", partition=1, timestamp=BASE_TS + 2).result(timeout=30),
            producer.send(topic, b"", key=None, partition=1, timestamp=BASE_TS + 3).result(timeout=30),
            producer.send(topic, b"now", partition=0).result(timeout=30),
        ]
        after = int(time.time() * 1000)
    assert results[:4] == [
        RecordMetadata(topic, 1, 0, BASE_TS, 2, 2),
        RecordMetadata(topic, 1, 1, BASE_TS + 1, 5, 2),
        RecordMetadata(topic, 1, 2, BASE_TS + 2, 9, -1),
        RecordMetadata(topic, 1, 3, BASE_TS + 3, -1, 0),
    ]
    now_md = results[4]
    assert (now_md.topic, now_md.partition, now_md.offset, now_md.serialized_key_size, now_md.serialized_value_size) == (
        topic, 0, 0, -1, 3,
    )
    assert before <= now_md.timestamp <= after
    got = consume_all(cluster.bootstrap_servers, topic, range(2), expected=5)
    assert [(m.offset, m.key, m.value, m.headers, m.timestamp) for m in got[1]] == [
        (0, b"k0", b"v0", [], BASE_TS),
        (1, b"key-1", b"v1", [("h", b"1")], BASE_TS + 1),
        (2, b"tombstone", None, [], BASE_TS + 2),
        (3, None, b"", [], BASE_TS + 3),
    ]
    assert [(m.offset, m.value, m.timestamp_type, m.timestamp) for m in got[0]] == [(0, b"now", CREATE_TIME, now_md.timestamp)]


def test_log_append_time_topic_reports_the_broker_timestamp(cluster: Any) -> None:
    topic = _topic(cluster, 1, {"message.timestamp.type": "LogAppendTime"})
    with _producer(cluster, linger_ms=0) as producer:
        metadata = producer.send(topic, b"v", timestamp=BASE_TS).result(timeout=30)
    (message,) = consume_all(cluster.bootstrap_servers, topic, [0], expected=1)[0]
    assert message.timestamp_type == LOG_APPEND_TIME
    assert metadata.timestamp == message.timestamp != BASE_TS


def test_async_callbacks_run_once_in_send_order_on_the_io_thread(cluster: Any, caplog: pytest.LogCaptureFixture) -> None:
    topic = _topic(cluster, 3)
    calls: list[tuple[int, RecordMetadata | None, BaseException | None, str]] = []
    lock = threading.Lock()

    def callback_for(i: int) -> Any:
        def on_completion(metadata: RecordMetadata | None, exception: BaseException | None) -> None:
            with lock:
                calls.append((i, metadata, exception, threading.current_thread().name))
            if i % 50 == 7:
                raise RuntimeError(f"callback {i} fails on purpose")

        return on_completion

    total = 900
    done_futures: list[Any] = []
    caplog.set_level(logging.ERROR, logger="kprod.producer")
    with _producer(cluster, linger_ms=2) as producer:
        futures = []
        for i in range(total):
            future = producer.send(topic, b"%d" % i, key=b"k%d" % i, partition=i % 3, callback=callback_for(i))
            futures.append(future)
        futures[0].add_done_callback(done_futures.append)
        # No poll(), no flush(): callbacks must come by themselves.
        wait_for(lambda: len(calls) == total, 60, f"{total} callbacks")
        wait_for(lambda: done_futures == [futures[0]], 10, "add_done_callback on a pending future")
        # The producer goes on after raising callbacks.
        assert producer.send(topic, b"after", partition=0).result(timeout=30).offset == total // 3
        late: list[Any] = []
        futures[1].add_done_callback(late.append)  # already done: runs at once, on this thread
        assert late == [futures[1]]
    assert len(calls) == total
    main = threading.current_thread().name
    by_partition: dict[int, list[tuple[int, RecordMetadata | None, BaseException | None, str]]] = {0: [], 1: [], 2: []}
    for call in calls:
        i, metadata, exception, thread = call
        assert (metadata is None) != (exception is None), f"callback {i}: exactly one of metadata/exception is None"
        assert exception is None, f"record {i} failed: {exception!r}"
        assert thread != main
        by_partition[i % 3].append(call)
    for partition, partition_calls in by_partition.items():
        assert [c[0] for c in partition_calls] == list(range(partition, total, 3)), "callbacks out of send order"
        assert [c[1].offset for c in partition_calls] == list(range(total // 3))  # type: ignore[union-attr]
        assert all(c[1].partition == partition for c in partition_calls)  # type: ignore[union-attr]
    raised = [r for r in caplog.records if "callback" in r.getMessage() and r.exc_info]
    assert len(raised) == len([i for i in range(total) if i % 50 == 7])
    got = consume_all(cluster.bootstrap_servers, topic, range(3), expected=total + 1)
    assert _values(got[0]) == [b"%d" % i for i in range(0, total, 3)] + [b"after"]


# -- codecs ------------------------------------------------------------------------------------


def _stored_codecs(cluster: Any, topic: str, partition: int) -> set[int]:
    """The codec attribute of every batch the leader stored (raw Fetch; contents are checked elsewhere)."""
    leader = cluster.leader(topic, partition)
    host, port = cluster.broker_address(leader)
    with BlockingConnection(host, port, timeout=10) as conn:
        response = conn.send(fetch_request(conn.version(ApiKey.FETCH), {topic: [(partition, 0)]}, max_wait_ms=0))
    data = response.responses[0].partitions[0].records
    return {batch.codec for batch in read_batches(data, allow_truncated_tail=True)}


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_each_codec_is_read_back_exactly(cluster: Any, codec: str) -> None:
    topic = _topic(cluster, 2, prefix=f"codec-{codec}")
    rng = random.Random(codec)
    records = []
    for i in range(400):
        # Half compressible text, half random bytes, some null keys and values.
        value = (b"order %d for customer %d; " % (i, i % 17)) * (i % 5 + 1) if i % 2 else rng.randbytes(i % 300)
        records.append((i % 2, None if i % 7 == 0 else b"k%d" % i, None if i % 11 == 0 else value, [("i", b"%d" % i)]))
    with _producer(cluster, compression_type=codec, linger_ms=20) as producer:
        for partition, key, value, headers in records:
            producer.send(topic, value, key=key, partition=partition, timestamp=BASE_TS + len(records), headers=headers)
        producer.flush()
    got = consume_all(cluster.bootstrap_servers, topic, range(2), expected=len(records))
    for partition in range(2):
        _assert_contiguous(got[partition])
        assert [(m.key, m.value, m.headers) for m in got[partition]] == [
            (key, value, headers) for p, key, value, headers in records if p == partition
        ]
    assert _stored_codecs(cluster, topic, 1) == {codec_for_name(codec)}


# -- partitioning ------------------------------------------------------------------------------


def test_keyed_records_land_where_the_java_client_puts_them(cluster: Any) -> None:
    from confluent_kafka import Producer as ConfluentProducer

    partitions = 7
    ours, theirs = _topic(cluster, partitions, prefix="keyed-kprod"), _topic(cluster, partitions, prefix="keyed-rdkafka")
    rng = random.Random(42)
    keys = [b"", b"a", b"user-1", "ключ-ü".encode()] + [rng.randbytes(rng.randrange(1, 64)) for _ in range(400)]
    with _producer(cluster) as producer:
        futures = [producer.send(ours, b"%d" % i, key=key) for i, key in enumerate(keys)]
        producer.flush()
        kprod_partitions = [f.result(0).partition for f in futures]

    reference: dict[int, int] = {}

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        reference[int(msg.value())] = msg.partition()

    rdkafka = ConfluentProducer({"bootstrap.servers": cluster.bootstrap_servers, "partitioner": "murmur2_random", "log_level": 2})
    for i, key in enumerate(keys):
        rdkafka.produce(theirs, value=b"%d" % i, key=key, on_delivery=delivered)
    assert rdkafka.flush(30) == 0
    assert kprod_partitions == [reference[i] for i in range(len(keys))]
    assert kprod_partitions == [partition_for_key(key, partitions) for key in keys]
    assert len(set(kprod_partitions)) == partitions
    # ... and the broker holds each record in that partition.
    got = consume_all(cluster.bootstrap_servers, ours, range(partitions), expected=len(keys))
    for partition, messages in got.items():
        for m in messages:
            assert m.key == keys[int(m.value)] and kprod_partitions[int(m.value)] == partition


def test_explicit_partition_out_of_range_raises_and_queues_nothing(cluster: Any) -> None:
    topic = _topic(cluster, 3)
    with _producer(cluster) as producer:
        for bad in (3, -1, 99, "1", 1.0):
            with pytest.raises(ValueError, match=rf"Invalid partition .*{re.escape(topic)}.* 3 partitions.*0 to 2") as info:
                producer.send(topic, b"bad", partition=bad)  # type: ignore[arg-type]
            assert repr(bad) in str(info.value)
        assert producer.send(topic, b"good", partition=2).result(timeout=30).offset == 0
    got = consume_all(cluster.bootstrap_servers, topic, range(3), expected=1)
    assert {p: _values(m) for p, m in got.items()} == {0: [], 1: [], 2: [b"good"]}


def test_null_keys_stick_to_a_partition_for_about_a_batch_then_move(cluster: Any) -> None:
    partitions, batch_size, value_size, total = 4, 2048, 200, 800
    topic = _topic(cluster, partitions)
    with _producer(cluster, batch_size=batch_size, linger_ms=5) as producer:
        futures = [producer.send(topic, b"%05d" % i + b"x" * (value_size - 5)) for i in range(total)]
        producer.flush()
        chosen = [f.result(0).partition for f in futures]
    # The partition is drawn anew after about batch.size bytes (a draw may repeat the last
    # one): it changes only at multiples of one fixed record count, and often.
    changes = [i for i in range(1, total) if chosen[i] != chosen[i - 1]]
    per_batch = math.gcd(*changes)
    assert batch_size // (value_size + 70) <= per_batch <= batch_size // value_size + 1, changes
    assert len(changes) >= total // per_batch // 3, changes
    assert set(chosen) == set(range(partitions)), "sticky partitioning never used some partitions"
    got = consume_all(cluster.bootstrap_servers, topic, range(partitions), expected=total)
    for partition in range(partitions):
        assert _values(got[partition]) == [b"%05d" % i + b"x" * (value_size - 5) for i in range(total) if chosen[i] == partition]


# -- acks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks_modes(cluster: Any, acks: Any) -> None:
    topic = _topic(cluster, 2)
    with _producer(cluster, acks=acks, linger_ms=1) as producer:
        futures = [producer.send(topic, b"%d" % i, partition=i % 2) for i in range(200)]
        producer.flush()
        offsets = [f.result(0).offset for f in futures]
        assert (producer._idempotence is not None) == (acks == "all")
    if acks == 0:
        assert offsets == [-1] * 200
    else:
        assert offsets == [i // 2 for i in range(200)]
    got = consume_all(cluster.bootstrap_servers, topic, range(2), expected=200)
    for partition in range(2):
        _assert_contiguous(got[partition])
        assert _values(got[partition]) == [b"%d" % i for i in range(partition, 200, 2)]


# -- failures: two nodes down, a leader killed ----------------------------------------------------


def _isr(cluster: Any, topic: str, partition: int) -> list[int]:
    described = cluster.metadata(timeout=5).topics[topic].partitions[partition]
    return sorted(described.isrs)


def test_acks_all_below_min_insync_times_out_then_succeeds_when_nodes_return(cluster: Any) -> None:
    """With 2 of 3 nodes stopped and min.insync.replicas=2: delivery.timeout.ms with
    NOT_ENOUGH_REPLICAS as the cause, a full buffer blocking max.block.ms, close(timeout)
    failing what is left, and a record waiting through the outage delivered afterwards."""
    _needs_control(cluster)
    topic = _topic(cluster, 1, {"min.insync.replicas": "2"})
    leader = cluster.leader(topic, 0)
    followers = [n for n in cluster.node_ids if n != leader]
    short = _producer(cluster, linger_ms=0, delivery_timeout_ms=8000, request_timeout_ms=3000, retry_backoff_ms=100)
    patient = _producer(cluster, linger_ms=0, delivery_timeout_ms=120000, request_timeout_ms=3000, retry_backoff_max_ms=500)
    tiny = _producer(cluster, linger_ms=0, buffer_memory=4096, batch_size=1024, max_block_ms=1500,
                     delivery_timeout_ms=120000, request_timeout_ms=3000)
    try:
        for p in (short, patient, tiny):
            assert p.send(topic, b"warm-up").result(timeout=30).offset >= 0
        # Controlled shutdowns, one after the other: the quorum stays up for each, so the
        # controller commits the ISR shrinking to the leader alone.
        for node in followers:
            cluster.stop_node(node)
        wait_for(lambda: _isr(cluster, topic, 0) == [leader], 30, f"ISR of {topic}-0 shrinking to [{leader}]")

        begin = time.monotonic()
        doomed = short.send(topic, b"doomed")
        waiting = patient.send(topic, b"waits-for-the-nodes")
        error = doomed.exception(timeout=30)
        elapsed = time.monotonic() - begin
        assert isinstance(error, KafkaTimeoutError), repr(error)
        assert 7.5 <= elapsed <= 12.0, f"failed after {elapsed:.1f} s, delivery.timeout.ms is 8 s"
        assert f"{topic}-0" in str(error) and "delivery.timeout.ms" in str(error)
        # The leader refuses at once (its ISR is below min.insync.replicas), so every attempt
        # ends with NOT_ENOUGH_REPLICAS; the last one is the cause.
        assert isinstance(error.__cause__, NotEnoughReplicasError), repr(error.__cause__)
        assert "NOT_ENOUGH_REPLICAS" in str(error), str(error)

        # buffer.memory (4 batches of 1024) fills up; the next send blocks max.block.ms, then raises.
        stuck = [tiny.send(topic, b"x" * 900) for _ in range(4)]
        begin = time.monotonic()
        with pytest.raises(BufferExhaustedError, match=r"max\.block\.ms \(1500 ms\)"):
            tiny.send(topic, b"x" * 900)
        blocked = time.monotonic() - begin
        assert 1.4 <= blocked <= 4.0, f"send() blocked {blocked:.2f} s with max.block.ms=1500"
        assert not any(f.done() for f in stuck)
        # close(timeout) gives up on them and resolves every one.
        begin = time.monotonic()
        tiny.close(timeout=0.5)
        assert time.monotonic() - begin < 5.0
        assert all(isinstance(f.exception(0), ProducerClosedError) for f in stuck)
        assert not waiting.done()
    finally:
        for node in followers:
            cluster.start_node(node)
    metadata = waiting.result(timeout=120)
    assert metadata.partition == 0
    assert short.send(topic, b"after").result(timeout=60).offset == metadata.offset + 1
    short.close()
    patient.close()
    tiny.close()
    got = consume_all(cluster.bootstrap_servers, topic, [0], expected=5)
    assert _values(got[0]) == [b"warm-up"] * 3 + [b"waits-for-the-nodes", b"after"]


def test_killed_leader_is_survived_exactly_once_in_order(cluster: Any, caplog: pytest.LogCaptureFixture) -> None:
    _needs_control(cluster)
    caplog.set_level(logging.DEBUG, logger="kprod")  # the producer's story, shown if this fails
    partitions = 3
    topic = _topic(cluster, partitions, {"min.insync.replicas": "2"})
    victim = cluster.leader(topic, 0)
    futures: list[Any] = []
    with _producer(cluster, linger_ms=5, request_timeout_ms=5000, delivery_timeout_ms=90000, retry_backoff_max_ms=500) as producer:
        assert producer._idempotence is not None
        sent = 0

        def send(count: int) -> None:
            nonlocal sent
            for _ in range(count):
                futures.append(producer.send(topic, b"%07d" % sent, key=b"p%d" % (sent % partitions), partition=sent % partitions))
                sent += 1

        send(3000)
        producer.flush()
        send(3000)  # in the accumulator and on the wire when the leader dies
        cluster.stop_node(victim, kill=True)
        send(3000)  # during the failover
        wait_for(lambda: cluster.leader(topic, 0) not in (victim, -1), 30, "a new leader for partition 0")
        send(3000)  # after it
        try:
            producer.flush(timeout=90)
        except KafkaTimeoutError:
            pending = [i for i, f in enumerate(futures) if not f.done()]
            failed = [(i, f.exception(0)) for i, f in enumerate(futures) if f.done() and f.exception(0)]
            pytest.fail(f"{len(pending)} records still pending after 90 s (first: {pending[:3]}); "
                        f"{len(failed)} failed (first: {failed[:3]})")
    errors = [(i, f.exception(0)) for i, f in enumerate(futures) if f.exception(0) is not None]
    assert errors == []
    got = consume_all(cluster.bootstrap_servers, topic, range(partitions), expected=len(futures), timeout=60)
    for partition in range(partitions):
        _assert_contiguous(got[partition])
        assert _values(got[partition]) == [b"%07d" % i for i in range(partition, len(futures), partitions)], (
            f"partition {partition}: lost, duplicated or reordered records"
        )
    for i, future in enumerate(futures):
        md = future.result(0)
        assert (md.partition, md.offset) == (i % partitions, i // partitions)


# -- metadata and size limits --------------------------------------------------------------------


def test_unknown_topic_times_out_after_max_block_ms_naming_it(cluster: Any) -> None:
    missing = unique_topic("never-created")
    with _producer(cluster, max_block_ms=1500) as producer:
        begin = time.monotonic()
        with pytest.raises(KafkaTimeoutError, match=rf"Topic {re.escape(missing)} not present in metadata after 1500 ms") as info:
            producer.send(missing, b"v")
        elapsed = time.monotonic() - begin
        assert "UNKNOWN_TOPIC_OR_PARTITION" in str(info.value) or "does not exist" in str(info.value).lower()
        assert 1.4 <= elapsed <= 4.0
        with pytest.raises(KafkaTimeoutError, match=re.escape(missing)):
            producer.partitions_for(missing)
    assert missing not in cluster.metadata().topics  # auto-creation stayed off


def test_invalid_topic_name_fails_at_once(cluster: Any) -> None:
    with _producer(cluster, max_block_ms=20000) as producer:
        begin = time.monotonic()
        with pytest.raises(InvalidTopicError, match=r"bad topic!"):
            producer.send("bad topic!", b"v")
        assert time.monotonic() - begin < 10.0


def test_bootstrap_list_whose_first_address_is_dead(cluster: Any) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{placeholder.getsockname()[1]}"  # bound, not listening: refused
        topic = _topic(cluster, 1)
        with Producer({"bootstrap.servers": f"{dead},{cluster.bootstrap_servers}", "reconnect.backoff.max.ms": 200}) as producer:
            assert producer.send(topic, b"v").result(timeout=30).offset == 0


def test_oversized_record_raises_from_send_and_queues_nothing(cluster: Any) -> None:
    topic = _topic(cluster, 1)
    with _producer(cluster, max_request_size=100_000) as producer:
        with pytest.raises(RecordTooLargeError, match=rf"{re.escape(topic)} is 100001 bytes.*max\.request\.size \(100000 bytes\)"):
            producer.send(topic, b"x" * 100_001)
        with pytest.raises(RecordTooLargeError, match="max.request.size"):
            producer.send(topic, b"x" * 50_000, key=b"k" * 50_001)
        assert producer.send(topic, b"small").result(timeout=30).offset == 0
    got = consume_all(cluster.bootstrap_servers, topic, [0], expected=1)
    assert _values(got[0]) == [b"small"]


def test_message_too_large_from_the_broker_splits_the_batch(cluster: Any) -> None:
    topic = _topic(cluster, 1, {"max.message.bytes": "2000"})
    values = [b"%03d" % i + bytes([65 + i % 26]) * 197 for i in range(40)]
    callbacks: list[int] = []
    with _producer(cluster, linger_ms=200, batch_size=65536) as producer:
        futures = [
            producer.send(topic, value, key=b"k", callback=lambda md, exc, i=i: callbacks.append(i)) for i, value in enumerate(values)
        ]
        producer.flush(timeout=60)
        offsets = [f.result(0).offset for f in futures]
        # A single record larger than the topic allows fails alone, with the broker's error.
        too_big = producer.send(topic, b"y" * 3000, key=b"k")
        error = too_big.exception(timeout=60)
        assert isinstance(error, MessageTooLargeError) and isinstance(error, RecordTooLargeError), repr(error)
        assert f"{topic}-0" in str(error)
        assert producer.send(topic, b"later", key=b"k").result(timeout=30).offset == 40
    assert offsets == list(range(40))
    assert callbacks == list(range(40)), "callbacks of a split batch must keep send order"
    got = consume_all(cluster.bootstrap_servers, topic, [0], expected=41)
    assert _values(got[0]) == values + [b"later"]


# -- lifecycle, threads, fork -----------------------------------------------------------------


def test_close_resolves_every_future_and_later_sends_raise(cluster: Any) -> None:
    topic = _topic(cluster, 2)
    producer = _producer(cluster, linger_ms=50)
    futures = [producer.send(topic, b"%d" % i, partition=i % 2) for i in range(2000)]
    producer.close(timeout=60)
    assert all(f.done() for f in futures)
    assert [f.result(0).offset for f in futures] == [i // 2 for i in range(2000)]
    assert not producer._thread.is_alive()
    with pytest.raises(ProducerClosedError):
        producer.send(topic, b"late")
    with pytest.raises(ProducerClosedError):
        producer.partitions_for(topic)
    producer.close()  # a second close is harmless
    got = consume_all(cluster.bootstrap_servers, topic, range(2), expected=2000)
    assert sum(len(m) for m in got.values()) == 2000


def test_send_from_eight_threads(cluster: Any) -> None:
    topic = _topic(cluster, 4)
    per_thread, threads = 2500, 8
    futures: dict[int, list[Any]] = {}
    errors: list[BaseException] = []
    with _producer(cluster) as producer:
        start = threading.Barrier(threads)

        def worker(t: int) -> None:
            try:
                start.wait()
                futures[t] = [producer.send(topic, b"%d:%d" % (t, i), key=b"thread-%d" % t) for i in range(per_thread)]
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert errors == []
        producer.flush(timeout=60)
    assert all(f.exception(0) is None for fs in futures.values() for f in fs)
    got = consume_all(cluster.bootstrap_servers, topic, range(4), expected=per_thread * threads)
    seen: dict[int, list[int]] = {t: [] for t in range(threads)}
    for partition, messages in got.items():
        for m in messages:
            t, i = (int(x) for x in m.value.split(b":"))  # type: ignore[union-attr]
            assert m.key == b"thread-%d" % t and partition == partition_for_key(m.key, 4)
            seen[t].append(i)
    assert seen == {t: list(range(per_thread)) for t in range(threads)}, "each thread's records once, in its order"


def test_partitions_for(cluster: Any) -> None:
    topic = _topic(cluster, 5)
    with _producer(cluster) as producer:
        infos = producer.partitions_for(topic)
    assert [i.partition for i in infos] == [0, 1, 2, 3, 4]
    for info in infos:
        assert isinstance(info, PartitionInfo) and info.topic == topic
        assert info.leader == cluster.leader(topic, info.partition)
        assert sorted(info.replicas) == sorted(cluster.node_ids) and sorted(info.isr) == sorted(cluster.node_ids)


class _RecordingProxy:
    """A loopback TCP proxy to one broker that records each request header's client id."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.client_ids: list[str | None] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._server.getsockname()[1]}"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump_requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()

    def _pump_requests(self, source: socket.socket, sink: socket.socket) -> None:
        buffer = b""
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                buffer += data
                while len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack_from(">i", buffer)[0]:
                    size = struct.unpack_from(">i", buffer)[0]
                    frame, buffer = buffer[4:4 + size], buffer[4 + size:]
                    (length,) = struct.unpack_from(">h", frame, 8)  # after api key, version, correlation id
                    self.client_ids.append(None if length < 0 else frame[10:10 + length].decode())
        except OSError:
            pass
        finally:
            sink.close()

    def close(self) -> None:
        self._stop = True
        self._server.close()


def test_client_id_default_and_configured_and_sent_in_request_headers(cluster: Any) -> None:
    first, second = _producer(cluster), _producer(cluster)
    try:
        assert re.fullmatch(r"(kprod-)?producer-\d+", first.client_id), first.client_id
        assert re.fullmatch(r"(kprod-)?producer-\d+", second.client_id)
        assert first.client_id != second.client_id
    finally:
        first.close()
        second.close()
    topic = _topic(cluster, 1)
    proxy = _RecordingProxy(cluster.broker_address(cluster.node_ids[0]))
    try:
        with Producer({"bootstrap.servers": proxy.address, "client.id": "billing-service"}) as producer:
            assert producer.client_id == "billing-service"
            assert producer.send(topic, b"v").result(timeout=30).offset == 0
        assert len(proxy.client_ids) >= 2  # at least ApiVersions and Metadata went through the proxy
        assert set(proxy.client_ids) == {"billing-service"}
    finally:
        proxy.close()


def test_producer_used_in_a_forked_child_raises(cluster: Any) -> None:
    topic = _topic(cluster, 1)
    with _producer(cluster, linger_ms=0) as producer:
        assert producer.send(topic, b"parent-before").result(timeout=30).offset == 0
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            code = 1
            try:
                producer.send(topic, b"child")
            except ForkedProducerError as exc:
                code = 0 if "fork" in str(exc) else 2
            except BaseException:
                code = 3
            try:
                producer.flush(timeout=1)
                code = code or 4
            except ForkedProducerError:
                pass
            except BaseException:
                code = code or 5
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child could use (or hung on) the parent's producer"
        assert producer.send(topic, b"parent-after").result(timeout=30).offset == 1
    got = consume_all(cluster.bootstrap_servers, topic, [0], expected=2)
    assert _values(got[0]) == [b"parent-before", b"parent-after"]
