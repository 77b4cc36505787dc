"""``Producer.send_many`` without a broker: what it queues, where, and the errors it raises.

The producers here have injected metadata and an unreachable bootstrap address, so records
stay in the accumulator where the tests read them. Every test runs twice: with the compiled
bulk append (kprod._speedups) and with its pure-Python twin. The reference for placement is
``send()``: the same records sent one by one must end up in the same batches.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from kprod import Producer, RecordFuture, _native
from kprod.errors import BufferExhaustedError, KafkaTimeoutError, ProducerClosedError, RecordTooLargeError, SerializationError
from kprod.partitioner import partition_for_key
from kprod.producer import accumulator as accumulator_module
from kprod.producer import fastpath
from kprod.producer.metadata import ClusterMetadata
from kprod.protocol.messages import ApiKey, ErrorCode, response_module
from kprod.protocol.records import read_batches
from kprod.protocol.responses import metadata_result

TOPIC = "bulk"
PARTITIONS = 6
BASE_TS = 1_700_000_000_000


@pytest.fixture(scope="module")
def dead_address() -> Iterator[str]:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{placeholder.getsockname()[1]}"


@pytest.fixture(params=["compiled", "python"])
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which bulk append runs: the compiled one (skipped if not built) or the Python twin."""
    if request.param == "compiled":
        if _native.speedups is None:
            pytest.skip("kprod._speedups is not built")
    else:
        monkeypatch.setattr(accumulator_module, "_append_many", fastpath._append_many_py)
        monkeypatch.setattr(accumulator_module, "_append_record", fastpath._append_record_py)
    return str(request.param)


def _inject_metadata(producer: Producer, partitions: int = PARTITIONS) -> None:
    m = response_module(ApiKey.METADATA, 12)
    response = m.MetadataResponse(
        throttle_time=timedelta(0),
        brokers=tuple(m.MetadataResponseBroker(node_id=b, host="127.0.0.1", port=9, rack=None) for b in (1, 2, 3)),
        cluster_id="c",
        controller_id=1,
        topics=(
            m.MetadataResponseTopic(
                error_code=ErrorCode(0), name=TOPIC, topic_id=uuid.uuid4(), is_internal=False,
                partitions=tuple(
                    m.MetadataResponsePartition(
                        error_code=ErrorCode(0), partition_index=p, leader_id=1 + p % 3, leader_epoch=0,
                        replica_nodes=(1, 2, 3), isr_nodes=(1, 2, 3), offline_replicas=(),
                    )
                    for p in range(partitions)
                ),
                topic_authorized_operations=-2147483648,
            ),
        ),
    )
    fresh = ClusterMetadata(metadata_max_age_ms=300_000, metadata_max_idle_ms=300_000)
    fresh.update(metadata_result(response), 0.0)
    metadata = producer._metadata
    metadata.partitions, metadata.leaders = fresh.partitions, fresh.leaders
    metadata.available, metadata.partition_counts = fresh.available, fresh.partition_counts


def offline(address: str, *, python_send: bool = False, **config: Any) -> Producer:
    """A producer whose records stay queued (no broker). Adaptive partitioning is off: the I/O
    thread's queue-size reports would make sticky draws depend on timing."""
    producer = Producer({
        "bootstrap.servers": address, "linger.ms": 600_000, "delivery.timeout.ms": 900_000,
        "request.timeout.ms": 30_000, "reconnect.backoff.ms": 60_000, "reconnect.backoff.max.ms": 60_000,
        "acks": 1, "max.block.ms": 200, "partitioner.adaptive.partitioning.enable": False, **config,
    })
    if python_send:
        producer._fast_send = producer._append_path = None
    producer._accumulator.sticky._random.seed(4321)
    _inject_metadata(producer)
    return producer


@pytest.fixture
def producer(dead_address: str, impl: str) -> Iterator[Producer]:
    p = offline(dead_address)
    yield p
    p.close(0)


def queued(producer: Producer) -> dict[int, list[Any]]:
    """partition -> its queued batches."""
    accumulator = producer._accumulator
    with accumulator.lock:
        queues = accumulator._queues.get(TOPIC, [])
        return {p: list(queue) for p, queue in enumerate(queues) if queue}


def records_of(batch: Any) -> list[tuple[int, bytes | None, bytes | None, list[Any]]]:
    """What a batch holds, decoded from the bytes its builder would send (without closing it)."""
    from kprod.protocol.records import RecordBatchBuilder

    copy = RecordBatchBuilder()
    copy._buf = bytearray(batch.builder._buf)
    copy._count, copy._size = batch.builder._count, batch.builder._size
    copy._base_ts, copy._max_ts = batch.builder._base_ts, batch.builder._max_ts
    (wire,) = read_batches(copy.build())
    return [(r.timestamp, r.key, r.value, r.headers) for r in wire.records()]


def layout(producer: Producer) -> dict[int, list[tuple[int, bool, list[Any]]]]:
    return {p: [(b.record_count, b.full, records_of(b)) for b in batches] for p, batches in queued(producer).items()}


# -- placement and contents --------------------------------------------------------------------------


def test_one_future_per_record_in_order_with_contents(producer: Producer) -> None:
    values = [b"v%d" % i * (i % 7) for i in range(300)]
    keys = [b"k%d" % i for i in range(300)]
    headers = [[("i", b"%d" % i)] if i % 2 else None for i in range(300)]
    timestamps = [BASE_TS + i if i % 3 else None for i in range(300)]
    before = int(time.time() * 1000)
    futures = producer.send_many(TOPIC, values, keys, timestamps=timestamps, headers=headers)
    after = int(time.time() * 1000)
    assert len(futures) == 300 and all(type(f) is RecordFuture for f in futures)
    for i, future in enumerate(futures):
        batch = future._batch
        assert batch.partition == partition_for_key(keys[i], PARTITIONS)
        timestamp, key, value, record_headers = records_of(batch)[future._index]
        assert (key, value, record_headers) == (keys[i], values[i], headers[i] or [])
        if timestamps[i] is None:
            assert before <= timestamp <= after
        else:
            assert timestamp == timestamps[i]
        assert (future._key_size, future._value_size) == (len(keys[i]), len(values[i]))
    # per partition, records are in call order
    for batches in queued(producer).values():
        indexes = [int(h[0][1]) for b in batches for _, _, _, h in records_of(b) if h]
        assert indexes == sorted(indexes)


def test_same_batches_as_sending_one_by_one(dead_address: str, impl: str) -> None:
    """Null keys (sticky), keyed records and null keys among keys, small batches: send_many
    fills exactly the batches that the same send() calls fill."""
    bulk = offline(dead_address, **{"batch.size": 2000})
    single = offline(dead_address, python_send=True, **{"batch.size": 2000})
    try:
        rounds = [
            ([b"x" * (i % 150) for i in range(700)], None),
            ([b"y" * 40] * 500, [None if i % 5 == 0 else b"key-%d" % (i % 37) for i in range(500)]),
            ([b"z" * 3000, b"small", None, b""] * 5, None),  # records larger than batch.size
        ]
        for values, keys in rounds:
            stamped = [BASE_TS] * len(values)
            bulk.send_many(TOPIC, values, keys, timestamps=stamped)
            for i, value in enumerate(values):
                single.send(TOPIC, value, keys[i] if keys else None, timestamp=BASE_TS)
        assert layout(bulk) == layout(single)
        assert sum(len(batches) for batches in queued(bulk).values()) >= 20
        assert bulk._accumulator.sticky._produced == single._accumulator.sticky._produced
        assert bulk._accumulator.pool.available == single._accumulator.pool.available
    finally:
        bulk.close(0)
        single.close(0)


def test_explicit_partition_and_full_batches(dead_address: str, impl: str) -> None:
    p = offline(dead_address, **{"batch.size": 1000})
    try:
        futures = p.send_many(TOPIC, [b"v" * 100] * 50, partition=4)
        batches = queued(p)[4]
        assert set(queued(p)) == {4}
        # 61 + 8 * 109 = 933 bytes; a ninth record's estimate (132) could pass 1000
        assert [b.record_count for b in batches] == [8] * 6 + [2]
        assert [b.full for b in batches] == [True] * 6 + [False]
        assert [(f._batch, f._index) for f in futures] == [(batches[i // 8], i % 8) for i in range(50)]
    finally:
        p.close(0)


def test_ignore_keys_places_keyed_records_like_null_keys(dead_address: str, impl: str) -> None:
    p = offline(dead_address, **{"partitioner.ignore.keys": True, "batch.size": 100_000})
    try:
        futures = p.send_many(TOPIC, [b"v"] * 100, [b"k%d" % i for i in range(100)])
        assert len({f._batch.partition for f in futures}) == 1
    finally:
        p.close(0)


def test_serializers_apply_to_every_record(dead_address: str, impl: str) -> None:
    p = offline(dead_address, **{"value.serializer": "string", "key.serializer": "string"})
    try:
        futures = p.send_many(TOPIC, ["é%d" % i for i in range(20)], ["k%d" % i for i in range(20)])
        for i, future in enumerate(futures):
            _, key, value, _ = records_of(future._batch)[future._index]
            assert (key, value) == (b"k%d" % i, ("é%d" % i).encode())
            assert future._batch.partition == partition_for_key(b"k%d" % i, PARTITIONS)
    finally:
        p.close(0)


def test_bytes_like_values_are_copied_through_the_default_serializer(producer: Producer) -> None:
    data = bytearray(b"abc")
    futures = producer.send_many(TOPIC, [data, memoryview(b"xyz"), b"q"], partition=0)
    data[0] = ord("Z")
    assert [records_of(f._batch)[f._index][2] for f in futures] == [b"abc", b"xyz", b"q"]


def test_custom_partitioner_sees_every_record(dead_address: str, impl: str) -> None:
    calls: list[tuple[Any, ...]] = []

    def partition(topic: str, key: Any, key_bytes: Any, value: Any, value_bytes: Any, cluster: Any) -> int:
        calls.append((topic, key, key_bytes, value, value_bytes, cluster.partition_count(topic)))
        return len(calls) % 3

    p = offline(dead_address, **{"partitioner.class": partition, "value.serializer": "string"})
    try:
        futures = p.send_many(TOPIC, ["a", "b", "c", "d"], [b"1", None, b"3", b"4"])
        assert calls == [(TOPIC, k, k, v, v.encode(), PARTITIONS)
                         for k, v in zip([b"1", None, b"3", b"4"], ["a", "b", "c", "d"])]
        assert [f._batch.partition for f in futures] == [1, 2, 0, 1]
    finally:
        p.close(0)


def test_interceptors_see_every_record_through_send(dead_address: str, impl: str) -> None:
    seen: list[Any] = []

    class Tag:
        def on_send(self, record: Any) -> Any:
            seen.append(record.value)
            return record._replace(value=record.value + b"!")

        def on_acknowledgement(self, metadata: Any, exception: Any) -> None:
            pass

    p = offline(dead_address, **{"interceptor.classes": [Tag()]})
    try:
        futures = p.send_many(TOPIC, [b"a", b"b"], partition=1)
        assert seen == [b"a", b"b"]
        assert [records_of(f._batch)[f._index][2] for f in futures] == [b"a!", b"b!"]
    finally:
        p.close(0)


def test_empty_call_and_other_sequences(producer: Producer) -> None:
    assert producer.send_many(TOPIC, []) == []
    futures = producer.send_many(TOPIC, (v for v in [b"g1", b"g2"]), keys=iter([b"a", b"b"]))
    assert [records_of(f._batch)[f._index][1:3] for f in futures] == [(b"a", b"g1"), (b"b", b"g2")]


# -- callbacks and completion ----------------------------------------------------------------------


def test_callback_runs_per_record_in_order_with_its_offset(producer: Producer) -> None:
    got: list[tuple[int, int, BaseException | None]] = []
    futures = producer.send_many(TOPIC, [b"a"] * 10, partition=2,
                                 callback=lambda md, exc: got.append((md.partition, md.offset, exc)))
    (batch,) = queued(producer)[2]
    batch.succeed(500, -1)
    assert got == [(2, 500 + i, None) for i in range(10)]
    assert [f.result(0).offset for f in futures] == list(range(500, 510))


# -- errors before anything is queued ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda p: p.send_many(TOPIC, b"abc"), TypeError, "values as a sequence with one item per record, not bytes"),
        (lambda p: p.send_many(TOPIC, [b"a"], keys="ab"), TypeError, "keys as a sequence"),
        (lambda p: p.send_many(TOPIC, 5), TypeError, "not int"),
        (lambda p: p.send_many(b"t", [b"a"]), TypeError, "takes a topic name"),
        (lambda p: p.send_many(TOPIC, [b"a", b"b"], keys=[b"k"]), ValueError, "got 1 keys for 2 values"),
        (lambda p: p.send_many(TOPIC, [b"a"], timestamps=[1, 2]), ValueError, "got 2 timestamps for 1 values"),
        (lambda p: p.send_many(TOPIC, [b"a", "s"]), SerializationError, "Record 1 of send_many()"),
        (lambda p: p.send_many(TOPIC, [b"a"], [5]), SerializationError, "Record 0 of send_many()"),
        (lambda p: p.send_many(TOPIC, [b"a"], partition=6), ValueError, "Invalid partition 6"),
        (lambda p: p.send_many(TOPIC, [b"a"], partition=True), ValueError, "Invalid partition True"),
        (lambda p: p.send_many(TOPIC, [b"a", b"b"], timestamps=[None, -5]), ValueError,
         "Invalid timestamp -5 for record 1"),
        (lambda p: p.send_many(TOPIC, [b"a", b"b"], timestamps=[None, 1.5]), ValueError, "for record 1"),
        (lambda p: p.send_many(TOPIC, [b"a", b"b"], headers=[None, [("h", "str")]]), SerializationError,
         "Record 1 of send_many()"),
        (lambda p: p.send_many(TOPIC, [b"a", b"x" * 2_000_000]), RecordTooLargeError, "Record 1 of send_many()"),
    ],
)
def test_bad_input_raises_and_queues_nothing(producer: Producer, call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(producer)
    assert queued(producer) == {}


def test_closed_producer_and_unknown_topic_raise(dead_address: str, impl: str) -> None:
    p = offline(dead_address)
    with pytest.raises(KafkaTimeoutError, match="Topic nope not present in metadata after 200 ms"):
        p.send_many("nope", [b"a"])
    p.close(0)
    with pytest.raises(ProducerClosedError):
        p.send_many(TOPIC, [b"a"])


def test_full_buffer_fails_the_rest_after_max_block_ms(dead_address: str, impl: str) -> None:
    p = offline(dead_address, **{"batch.size": 1000, "buffer.memory": 3000, "max.block.ms": 100})
    try:
        errors: list[BaseException | None] = []
        started = time.monotonic()
        futures = p.send_many(TOPIC, [b"v" * 100] * 40, partition=0, callback=lambda md, exc: errors.append(exc))
        assert time.monotonic() - started >= 0.09  # it waited max.block.ms for memory
        # three 1000-byte batches fit in buffer.memory, eight records each
        assert [b.record_count for b in queued(p)[0]] == [8, 8, 8]
        assert [f.done() for f in futures] == [False] * 24 + [True] * 16
        for future in futures[24:]:
            assert isinstance(future.exception(0), BufferExhaustedError)
        assert len(errors) == 16 and all(isinstance(e, BufferExhaustedError) for e in errors)
        assert "buffer.memory (3000 bytes) is full" in str(errors[0])
    finally:
        p.close(0)


def test_a_close_while_waiting_for_memory_fails_the_rest(dead_address: str, impl: str) -> None:
    p = offline(dead_address, **{"batch.size": 1000, "buffer.memory": 1000, "max.block.ms": 30_000})
    result: list[list[RecordFuture]] = []
    worker = threading.Thread(target=lambda: result.append(p.send_many(TOPIC, [b"v" * 100] * 20, partition=0)))
    worker.start()
    deadline = time.monotonic() + 10
    while not p._accumulator.pool.has_waiters:  # the worker blocks for memory
        assert time.monotonic() < deadline, "send_many never waited for memory"
        threading.Event().wait(0.01)
    p.close(0)
    worker.join(10)
    (futures,) = result
    assert len(futures) == 20
    assert all(isinstance(f.exception(5), ProducerClosedError) for f in futures)
