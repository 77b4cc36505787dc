"""The pieces under ``kprod.aio`` that need no socket: batch completion hooks, the memory
pool's and the metadata's wake-ups for waiters that must not block, the accumulator's
non-blocking append, and delivery reaching the loop once per batch."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from kprod.aio import AsyncProducer, AsyncRecordFuture
from kprod.errors import BufferExhaustedError, ConfigError, ProducerClosedError
from kprod.producer.batch import ProducerBatch, RecordFuture
from kprod.producer.memory import MemoryNeeded, MemoryPool
from kprod.protocol.records import RecordBatchBuilder
from test_accumulator import TOPIC, Clock, append, make, metadata_for, queued


def _batch(partition: int = 0) -> ProducerBatch:
    return ProducerBatch("t", partition, RecordBatchBuilder(0, None), 0.0, 0)


# -- ProducerBatch.add_hook ----------------------------------------------------------------


def test_a_hook_runs_once_after_the_callbacks_and_not_after_settling() -> None:
    batch = _batch()
    order: list[str] = []
    future = RecordFuture(batch, 0, 1, -1, 1)
    batch.futures.append(future)
    batch.callbacks.append((future, lambda md, err: order.append("callback"), True))  # type: ignore[union-attr]
    assert batch.add_hook(lambda b: order.append(f"hook {b.base_offset}"))
    assert batch.add_hook(lambda b: order.append("second hook"))
    batch.succeed(7, -1)
    assert order == ["callback", "hook 7", "second hook"]
    assert batch.add_hook(lambda b: order.append("late")) is False  # settled: the caller handles it
    assert order == ["callback", "hook 7", "second hook"]


def test_a_split_runs_the_hooks_and_a_failing_hook_does_not_stop_the_others() -> None:
    batch = _batch()
    seen: list[str] = []

    def broken(_: ProducerBatch) -> None:
        raise RuntimeError("boom")

    batch.add_hook(broken)
    batch.add_hook(lambda b: seen.append("split" if b.split else "done"))
    batch.mark_split()
    assert seen == ["split"]


# -- MemoryPool: waiters that do not block ---------------------------------------------------


def test_a_non_blocking_waiter_is_woken_once_by_release_and_queues_others_behind_it() -> None:
    pool = MemoryPool(100)
    assert pool.try_reserve(100)
    wakes: list[int] = []
    pool.add_waiter()
    assert pool.has_waiters
    assert pool.reserve_or_wake(60, lambda: wakes.append(1)) is False
    pool.release(50)
    assert wakes == [1]
    assert pool.try_reserve(10) is False  # someone waits ahead
    pool.release(50)
    assert wakes == [1]  # one-shot: it asked once
    assert pool.reserve_or_wake(60, lambda: wakes.append(2)) is True
    pool.remove_waiter()
    assert not pool.has_waiters and pool.available == 40


def test_closing_the_pool_wakes_non_blocking_waiters_and_refuses_them() -> None:
    pool = MemoryPool(10)
    assert pool.try_reserve(10)
    woken = threading.Event()
    pool.add_waiter()
    assert pool.reserve_or_wake(5, woken.set) is False
    pool.close()
    assert woken.is_set() and pool.closed
    assert pool.reserve_or_wake(1, woken.set) is False


# -- ClusterMetadata: check_topic and wake-ups ------------------------------------------------


def test_check_topic_and_a_wake_up_on_the_next_update() -> None:
    metadata = metadata_for({"known": [1, 2]})
    assert metadata.check_topic("known") == 2
    assert metadata.check_topic("unknown") == 0
    woken: list[str] = []
    metadata.wake_on_update(lambda: woken.append("update"))
    metadata.notify_waiters()
    assert woken == ["update"]
    metadata.notify_waiters()
    assert woken == ["update"]  # one-shot


# -- RecordAccumulator.append without blocking ------------------------------------------------


def test_a_full_buffer_raises_memory_needed_and_resume_appends_with_the_reservation() -> None:
    acc = make(Clock(), batch_size=1000, buffer_memory=2000)
    append(acc, 0)
    append(acc, 1)
    with pytest.raises(MemoryNeeded) as need:
        acc.append(TOPIC, 2, 1_700_000_000_000, None, b"x", None, None, 3, None, None)
    assert need.value.size == 1000
    assert queued(acc, 2) == []  # nothing queued while it waits
    error = need.value.timeout_error(250)
    assert isinstance(error, BufferExhaustedError) and "max.block.ms (250 ms)" in str(error)
    acc.completed(queued(acc, 0)[0])
    assert acc.pool.try_reserve(need.value.size)
    future = need.value.resume()
    assert future._batch.partition == 2 and future._batch.memory == 1000 and acc.pool.available == 0
    acc.close()
    assert isinstance(need.value.timeout_error(250), ProducerClosedError)


def test_send_many_memory_needed_carries_the_futures_already_queued() -> None:
    acc = make(Clock(), batch_size=1000, buffer_memory=1000)
    with pytest.raises(MemoryNeeded) as need:
        acc.append_many(TOPIC, 0, 1, None, None, [b"v" * 400] * 5, None, None, 3, None, None)
    assert len(need.value.queued) == 2  # two records fit the one batch the buffer holds
    assert [f._index for f in need.value.queued] == [0, 1]


# -- AsyncProducer without a broker ---------------------------------------------------------


def test_bad_configuration_raises_at_construction() -> None:
    with pytest.raises(ConfigError):
        AsyncProducer({"bootstrap.servers": "127.0.0.1:9092", "acks": "sometimes"})


def test_results_reach_the_loop_in_one_call_per_batch() -> None:
    async def main() -> tuple[int, list[int], list[int]]:
        loop = asyncio.get_running_loop()
        owner = AsyncProducer({"bootstrap.servers": "127.0.0.1:9092"})
        owner._loop = loop  # the loop side of start(), without its I/O thread
        future_type = type("AsyncRecordFuture", (AsyncRecordFuture,), {"__slots__": (), "_owner": owner})
        calls = 0
        original = loop.call_soon_threadsafe

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        batches = [_batch(p) for p in range(3)]
        futures = []
        for batch in batches:
            for index in range(100):
                future = future_type(batch, index, 1, -1, 1)
                batch.futures.append(future)
                futures.append(future)
        callback_offsets: list[int] = []
        futures[5]._on_loop(lambda md, err: callback_offsets.append(md.offset))
        io_thread = threading.Thread(target=lambda: [b.succeed(1000 * b.partition, -1) for b in batches])
        gathered = asyncio.ensure_future(asyncio.gather(*futures))
        await asyncio.sleep(0)
        io_thread.start()
        results = await gathered
        return calls, [md.offset for md in results], callback_offsets

    calls, offsets, callback_offsets = asyncio.run(main())
    assert calls == 3
    assert offsets == [1000 * p + i for p in range(3) for i in range(100)]
    assert callback_offsets == [5]
