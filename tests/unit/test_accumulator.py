"""The record accumulator, driven with a manual clock: batching, linger, memory, drain,
retries, expiry and sticky partitioning. No sockets; the only waits are the short
``max.block.ms`` of the memory tests, which the code under test times itself."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest

from kprod.errors import BufferExhaustedError, KafkaTimeoutError, ProducerClosedError
from kprod.producer.accumulator import RecordAccumulator, timeout_error
from kprod.producer.batch import ProducerBatch
from kprod.producer.memory import MemoryPool
from kprod.producer.metadata import ClusterMetadata
from kprod.producer.sticky import StickyPartitioner
from kprod.protocol.messages import ApiKey, ErrorCode, response_module
from kprod.protocol.records import BATCH_HEADER_SIZE, read_batches
from kprod.protocol.responses import metadata_result

TOPIC = "orders"
VALUE = b"v" * 100
# A record with no key, a 100-byte value and no headers takes 109 bytes in a batch
# (length 2, attributes 1, timestamp delta 1, offset delta 1, key length 1, value length 2,
# value 100, header count 1); the accumulator reserves an upper bound of 32 + 100 for it.
RECORD_SIZE = 109


class Clock:
    """Milliseconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def metadata_for(leaders: dict[str, list[int]], brokers: tuple[int, ...] = (1, 2, 3)) -> ClusterMetadata:
    """ClusterMetadata fed a real Metadata v12 response: ``{topic: [leader per partition]}``."""
    m = response_module(ApiKey.METADATA, 12)
    response = m.MetadataResponse(
        throttle_time=timedelta(0),
        brokers=tuple(m.MetadataResponseBroker(node_id=b, host="127.0.0.1", port=9000 + b, rack=None) for b in brokers),
        cluster_id="c",
        controller_id=brokers[0],
        topics=tuple(
            m.MetadataResponseTopic(
                error_code=ErrorCode(0),
                name=topic,
                topic_id=uuid.uuid4(),
                is_internal=False,
                partitions=tuple(
                    m.MetadataResponsePartition(
                        error_code=ErrorCode(0), partition_index=p, leader_id=leader, leader_epoch=0,
                        replica_nodes=brokers, isr_nodes=brokers, offline_replicas=(),
                    )
                    for p, leader in enumerate(partition_leaders)
                ),
                topic_authorized_operations=-2147483648,
            )
            for topic, partition_leaders in leaders.items()
        ),
    )
    metadata = ClusterMetadata(metadata_max_age_ms=300_000, metadata_max_idle_ms=300_000)
    metadata.update(metadata_result(response), 0.0)
    return metadata


class Wakeups:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def make(
    clock: Clock,
    *,
    batch_size: int = 1000,
    linger_ms: int = 10,
    buffer_memory: int = 1 << 20,
    delivery_timeout_ms: int = 120_000,
    retry_backoff_ms: int = 100,
    retry_backoff_max_ms: int = 1000,
    adaptive: bool = False,
    codec: int = 0,
) -> RecordAccumulator:
    return RecordAccumulator(
        batch_size=batch_size,
        linger_ms=linger_ms,
        codec=codec,
        compression_level=None,
        pool=MemoryPool(buffer_memory),
        sticky=StickyPartitioner(batch_size, adaptive=adaptive),
        clock_ms=clock,
        delivery_timeout_ms=delivery_timeout_ms,
        retry_backoff_ms=retry_backoff_ms,
        retry_backoff_max_ms=retry_backoff_max_ms,
        wakeup=Wakeups(),
    )


def append(acc: RecordAccumulator, partition: int, value: bytes | None = VALUE, *, partitions: int = 3,
           max_block_ms: int = 50, key: bytes | None = None, available: tuple[int, ...] | None = None) -> Any:
    return acc.append(TOPIC, partition, 1_700_000_000_000, key, value, None, None, partitions, available, max_block_ms)


def queued(acc: RecordAccumulator, partition: int = 0) -> list[ProducerBatch]:
    return [b for b in acc.queued_batches() if b.topic == TOPIC and b.partition == partition]


# -- batching --------------------------------------------------------------------------------


def test_batches_fill_up_to_batch_size_then_a_new_one_opens() -> None:
    clock = Clock()
    acc = make(clock, batch_size=1000)
    futures = [append(acc, 0) for _ in range(20)]
    batches = queued(acc)
    # 61 + 8 * 109 = 933 bytes; a ninth record could reach 933 + 132 > 1000, so it opens a new batch.
    assert [b.record_count for b in batches] == [8, 8, 4]
    assert [b.builder.size_in_bytes for b in batches] == [BATCH_HEADER_SIZE + n * RECORD_SIZE for n in (8, 8, 4)]
    assert [b.full for b in batches] == [True, True, False]
    assert all(b.builder.size_in_bytes <= 1000 for b in batches)
    # Each future knows its batch and its place in it.
    assert [(f._batch, f._index) for f in futures] == [(batches[i // 8], i % 8) for i in range(20)]
    # Partitions get their own batches.
    append(acc, 1)
    assert [b.record_count for b in queued(acc, 1)] == [1]


def test_a_record_larger_than_batch_size_gets_a_batch_of_its_own() -> None:
    clock = Clock()
    acc = make(clock, batch_size=1000, buffer_memory=100_000)
    append(acc, 0)
    append(acc, 0, b"x" * 3000)
    append(acc, 0)
    assert [b.record_count for b in queued(acc)] == [1, 1, 1]
    big = queued(acc)[1]
    assert big.full and big.memory == 3000 + 32 + BATCH_HEADER_SIZE
    assert acc.pool.available == 100_000 - 1000 - big.memory - 1000


def test_linger_makes_a_batch_ready_after_linger_ms() -> None:
    clock = Clock()
    acc = make(clock, linger_ms=10)
    metadata = metadata_for({TOPIC: [1, 2, 3]})
    clock.now = 1000.0
    append(acc, 0)
    check = acc.ready(metadata, 1000.0, None)
    assert check.nodes == set() and check.next_check_ms == 10.0
    check = acc.ready(metadata, 1009.0, None)
    assert check.nodes == set() and check.next_check_ms == 1.0
    assert acc.ready(metadata, 1010.0, None).nodes == {1}


def test_a_full_batch_is_ready_at_once_and_flush_or_close_make_every_batch_ready() -> None:
    clock = Clock()
    acc = make(clock, linger_ms=10_000)
    metadata = metadata_for({TOPIC: [1, 2, 3]})
    for _ in range(9):  # 8 fill a batch, the 9th opens another on partition 0
        append(acc, 0)
    append(acc, 1)
    assert acc.ready(metadata, 0.0, None).nodes == {1}
    acc.begin_flush()
    assert acc.ready(metadata, 0.0, None).nodes == {1, 2}
    acc.end_flush()
    assert acc.ready(metadata, 0.0, None).nodes == {1}
    acc.close()
    assert acc.ready(metadata, 0.0, None).nodes == {1, 2}
    with pytest.raises(ProducerClosedError):
        append(acc, 0)


def test_a_partition_without_leader_is_reported_not_ready() -> None:
    clock = Clock()
    acc = make(clock, linger_ms=0)
    metadata = metadata_for({TOPIC: [1, -1, 3]})
    append(acc, 1)
    check = acc.ready(metadata, 0.0, None)
    assert check.nodes == set() and check.unknown_leader_topics == {TOPIC}


# -- memory ----------------------------------------------------------------------------------


def test_memory_is_reserved_per_batch_and_released_on_completion() -> None:
    clock = Clock()
    acc = make(clock, batch_size=1000, buffer_memory=3000)
    for partition in range(3):
        append(acc, partition)
    assert acc.pool.available == 0
    # Appending to an open batch needs no new memory.
    append(acc, 0)
    began = time.monotonic()
    with pytest.raises(BufferExhaustedError, match=r"max\.block\.ms \(50 ms\).*buffer\.memory \(3000 bytes\)") as info:
        append(acc, 0, b"x" * 900, max_block_ms=50)  # does not fit the open batch: needs a new one
    assert 0.045 <= time.monotonic() - began < 2.0
    assert f"{TOPIC}-0" in str(info.value)
    assert [b.record_count for b in queued(acc)] == [2]  # nothing was queued
    batch = queued(acc, 1)[0]
    acc.completed(batch)
    assert acc.pool.available == 1000 and batch.memory == 0
    acc.completed(batch)  # twice is harmless
    assert acc.pool.available == 1000


def test_a_blocked_send_proceeds_when_memory_is_released() -> None:
    clock = Clock()
    acc = make(clock, batch_size=1000, buffer_memory=2000, linger_ms=60_000)
    metadata = metadata_for({TOPIC: [1, 2, 3]})
    append(acc, 0)
    append(acc, 1)
    assert acc.ready(metadata, 0.0, None).nodes == set()  # lingering
    results: list[Any] = []
    blocked = threading.Thread(target=lambda: results.append(append(acc, 2, max_block_ms=30_000)))
    blocked.start()
    deadline = time.monotonic() + 10
    while not acc.pool.has_waiters:
        assert time.monotonic() < deadline, "append() did not block on the full buffer"
        threading.Event().wait(0.001)
    # Someone waits for memory: every batch should go out now, linger or not.
    assert acc.ready(metadata, 0.0, None).nodes == {1, 2}
    acc.completed(queued(acc, 0)[0])
    blocked.join(10)
    assert not blocked.is_alive() and len(results) == 1
    assert results[0]._batch.partition == 2 and acc.pool.available == 0


def test_close_wakes_a_send_blocked_on_memory() -> None:
    clock = Clock()
    acc = make(clock, batch_size=1000, buffer_memory=1000)
    append(acc, 0)
    errors: list[BaseException] = []

    def blocked_send() -> None:
        try:
            append(acc, 1, max_block_ms=30_000)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=blocked_send)
    thread.start()
    deadline = time.monotonic() + 10
    while not acc.pool.has_waiters:
        assert time.monotonic() < deadline
        threading.Event().wait(0.001)
    acc.close()
    thread.join(10)
    assert len(errors) == 1 and isinstance(errors[0], ProducerClosedError)


# -- drain -------------------------------------------------------------------------------------


def test_drain_takes_one_batch_per_partition_per_node() -> None:
    clock = Clock()
    acc = make(clock, linger_ms=0)
    metadata = metadata_for({TOPIC: [1, 1, 2]})
    for _ in range(24):
        append(acc, 0)  # three full batches
    append(acc, 1)
    append(acc, 2)
    nodes = acc.ready(metadata, 0.0, None).nodes
    assert nodes == {1, 2}
    drained = acc.drain(metadata, nodes, 1 << 20, 0.0, None)
    assert sorted((n, b.partition, b.record_count) for n, bs in drained.items() for b in bs) == [
        (1, 0, 8), (1, 1, 1), (2, 2, 1)
    ]
    assert all(b.in_flight and b.full and b.drained_ms == 0.0 for bs in drained.values() for b in bs)
    again = acc.drain(metadata, {1}, 1 << 20, 1.0, None)
    assert [(b.partition, b.record_count) for b in again[1]] == [(0, 8)]
    # The oldest batch goes first.
    assert again[1][0] is not drained[1][0]


def test_drain_respects_max_request_size_and_rotates_partitions() -> None:
    clock = Clock()
    acc = make(clock, linger_ms=0)
    metadata = metadata_for({TOPIC: [1, 1, 1]})
    for partition in range(3):
        for _ in range(8):
            append(acc, partition)
    size = BATCH_HEADER_SIZE + 8 * RECORD_SIZE  # 933
    first = acc.drain(metadata, {1}, 2 * size, 0.0, None)[1]
    assert len(first) == 2
    second = acc.drain(metadata, {1}, 2 * size, 0.0, None)[1]
    assert [b.partition for b in second] == sorted({0, 1, 2} - {b.partition for b in first})
    # A batch larger than max.request.size still goes, alone.
    for partition in range(3):
        for _ in range(8):
            append(acc, partition)
    alone = acc.drain(metadata, {1}, size - 1, 0.0, None)[1]
    assert len(alone) == 1


# -- retries and expiry ---------------------------------------------------------------------------


def drain_all(acc: RecordAccumulator, metadata: ClusterMetadata, now: float) -> list[ProducerBatch]:
    drained = acc.drain(metadata, {1, 2, 3}, 1 << 20, now, None)
    return [b for bs in drained.values() for b in bs]


@pytest.mark.parametrize("newest_first", [True, False])
def test_retry_reenqueues_in_send_order_after_backoff(newest_first: bool) -> None:
    clock = Clock()
    acc = make(clock, linger_ms=0, retry_backoff_ms=100, retry_backoff_max_ms=1000)
    metadata = metadata_for({TOPIC: [1, 2, 3]})
    for _ in range(24):
        append(acc, 0)
    (first,) = drain_all(acc, metadata, 0.0)
    (second,) = drain_all(acc, metadata, 0.0)
    (third,) = queued(acc)
    # Whatever order the failed responses come back in, each batch goes back to its
    # place in send order, ahead of the batch still queued.
    for batch in ((second, first) if newest_first else (first, second)):
        acc.reenqueue(batch, 50.0)
    assert queued(acc) == [first, second, third]
    assert first.attempts == 1 and not first.in_flight
    assert first.retry_at_ms == 150.0  # retry.backoff.ms, exactly, on the first retry
    check = acc.ready(metadata, 149.0, None)
    assert check.nodes == set() and check.next_check_ms == 1.0
    assert drain_all(acc, metadata, 149.0) == []  # nothing overtakes the waiting retry
    assert acc.ready(metadata, 150.0, None).nodes == {1}
    assert drain_all(acc, metadata, 150.0) == [first]


def test_retry_backoff_grows_exponentially_with_jitter_up_to_the_maximum() -> None:
    clock = Clock()
    acc = make(clock, linger_ms=0, retry_backoff_ms=100, retry_backoff_max_ms=1000)
    metadata = metadata_for({TOPIC: [1, 2, 3]})
    append(acc, 0)
    (batch,) = drain_all(acc, metadata, 0.0)
    waits = []
    for _ in range(8):
        acc.reenqueue(batch, 0.0)
        waits.append(batch.retry_at_ms)
        assert drain_all(acc, metadata, batch.retry_at_ms) == [batch]
    assert waits[0] == 100.0
    for attempt, wait in enumerate(waits[1:], start=2):
        nominal = min(1000, 100 * 2 ** (attempt - 1))
        assert 0.8 * nominal <= wait <= min(1000, 1.2 * nominal), (attempt, wait)
    assert max(waits) <= 1000.0


def test_batches_expire_after_delivery_timeout() -> None:
    clock = Clock()
    acc = make(clock, linger_ms=60_000, delivery_timeout_ms=5000)
    clock.now = 100.0
    append(acc, 0)
    clock.now = 600.0
    append(acc, 1)
    assert acc.expired(5099.0) == []
    (old,) = acc.expired(5100.0)
    assert (old.partition, old.created_ms) == (0, 100.0)
    assert [b.partition for b in acc.queued_batches()] == [1]
    assert [b.partition for b in acc.expired(5600.0)] == [1]
    error = timeout_error(old, 5100.0, 5000)
    assert isinstance(error, KafkaTimeoutError)
    assert f"{TOPIC}-0" in str(error) and "5000 ms has passed" in str(error) and "delivery.timeout.ms" in str(error)


@pytest.mark.parametrize("codec", [0, 1, 3, 4])
def test_a_full_compressed_batch_is_compressed_by_the_thread_that_opens_the_next(codec: int) -> None:
    clock = Clock()
    acc = make(clock, codec=codec)
    append(acc, 0)
    (first,) = queued(acc)
    while len(queued(acc)) == 1:
        with pytest.raises(RuntimeError):
            first.builder.built_size  # still open, not compressed
        append(acc, 0)
    first_again, second = queued(acc)
    assert first_again is first and first.full
    count = first.record_count
    if codec:
        assert first.builder.built_size < count * RECORD_SIZE  # compressed, before any drain
    else:
        with pytest.raises(RuntimeError):
            first.builder.built_size  # nothing to compress: the I/O thread closes it
    with pytest.raises(RuntimeError):
        second.builder.built_size
    (batch,) = read_batches(first.builder.build())
    assert batch.attributes & 0x7 == codec and [r.value for r in batch.records()] == [VALUE] * count


def test_expiry_skips_its_scan_until_the_oldest_batch_can_expire_yet_misses_nothing() -> None:
    clock = Clock()
    acc = make(clock, linger_ms=60_000, delivery_timeout_ms=5000)
    metadata = metadata_for({TOPIC: [1, 2, 3]})
    clock.now = 100.0
    append(acc, 0)
    assert acc.expired(1000.0) == []  # scanned: nothing can expire before 5100
    clock.now = 2000.0
    append(acc, 1)  # created after that scan: expires at 7000
    (first,) = acc.expired(5100.0)
    assert first.partition == 0
    assert acc.expired(6999.0) == []
    (second,) = acc.expired(7000.0)
    assert second.partition == 1
    # A retried batch is older than anything the last scan saw: it must still expire on time.
    clock.now = 7000.0
    append(acc, 2)
    (sent,) = drain_all(acc, metadata, 7000.0)
    assert acc.expired(8000.0) == []  # nothing queued can expire before 12000
    sent.created_ms = 3000.0  # as if it had been retrying since then
    acc.reenqueue(sent, 8000.0)
    assert acc.expired(8001.0) == [sent]


def test_an_expired_retry_names_its_last_error_as_the_cause() -> None:
    from kprod.errors import NotEnoughReplicasError

    clock = Clock()
    acc = make(clock, linger_ms=0, delivery_timeout_ms=5000)
    metadata = metadata_for({TOPIC: [1, 2, 3]})
    append(acc, 0)
    (batch,) = drain_all(acc, metadata, 0.0)
    batch.last_error = NotEnoughReplicasError(topic=TOPIC, partition=0)
    acc.reenqueue(batch, 10.0)
    (expired,) = acc.expired(5000.0)
    error = timeout_error(expired, 5000.0, 5000)
    assert error.__cause__ is batch.last_error and "NOT_ENOUGH_REPLICAS" in str(error)


def test_split_parts_take_the_place_of_the_batch_in_send_order() -> None:
    clock = Clock()
    acc = make(clock, linger_ms=0)
    metadata = metadata_for({TOPIC: [1, 2, 3]})
    for _ in range(24):
        append(acc, 0)
    (first,) = drain_all(acc, metadata, 0.0)
    (second,) = drain_all(acc, metadata, 0.0)
    parts = []
    for start in (0, 4):
        part = ProducerBatch(TOPIC, 0, first.builder, first.created_ms, 0)
        part.futures = first.futures[start:start + 4]
        parts.append(part)
    acc.reenqueue(second, 0.0)  # the later batch came back first
    acc.requeue_split(first, parts)
    assert queued(acc)[:3] == [parts[0], parts[1], second]
    assert first not in acc.incomplete and set(parts) <= acc.incomplete


# -- sticky partitioning ---------------------------------------------------------------------------


def test_null_keys_stick_to_a_partition_until_batch_size_bytes_then_switch() -> None:
    clock = Clock()
    acc = make(clock, batch_size=1000)
    partitions = [append(acc, -1, partitions=5)._batch.partition for _ in range(400)]
    # Each record counts 32 + 100 bytes: after 8 (1056 >= 1000) a new partition is drawn.
    changes = [i for i in range(1, 400) if partitions[i] != partitions[i - 1]]
    assert all(i % 8 == 0 for i in changes), partitions
    assert len(changes) >= 25, f"only {len(changes)} switches in 50 draws"
    assert set(partitions) == set(range(5))


def test_sticky_partitioning_uses_only_available_partitions() -> None:
    clock = Clock()
    acc = make(clock, batch_size=1000)
    chosen = {append(acc, -1, partitions=6, available=(1, 4))._batch.partition for _ in range(200)}
    assert chosen == {1, 4}


def test_adaptive_partitioning_favours_short_queues() -> None:
    clock = Clock()
    acc = make(clock, batch_size=200, linger_ms=60_000, adaptive=True)
    metadata = metadata_for({TOPIC: [1, 2]})
    for _ in range(40):
        append(acc, 0, partitions=2)  # a long queue on partition 0
    append(acc, 1, partitions=2)
    acc.ready(metadata, 0.0, None)  # reports queue sizes to the partitioner
    chosen = [append(acc, -1, partitions=2)._batch.partition for _ in range(100)]
    # Weights 1 : 40 (41 - queue length): nearly every draw picks partition 1.
    assert chosen.count(1) >= 80, chosen


def test_built_batches_hold_the_records_in_append_order() -> None:
    clock = Clock()
    acc = make(clock, batch_size=1 << 16, linger_ms=0)
    metadata = metadata_for({TOPIC: [1, 2, 3]})
    for i in range(50):
        acc.append(TOPIC, 2, 1_700_000_000_000 + i, b"k%d" % i, b"v%d" % i, [("h", b"%d" % i)], None, 3, None, 50)
    (batch,) = drain_all(acc, metadata, 0.0)
    (wire,) = read_batches(batch.builder.build())
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in wire.records()] == [
        (i, 1_700_000_000_000 + i, b"k%d" % i, b"v%d" % i, [("h", b"%d" % i)]) for i in range(50)
    ]
