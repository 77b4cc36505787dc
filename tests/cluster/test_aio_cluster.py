"""``kprod.aio.AsyncProducer`` against the embedded cluster, read back with confluent-kafka.

Each test runs under asyncio's loop and, when it is installed, under uvloop. What is
checked: exact offsets and order per partition, callbacks on the loop, idempotence
through leader loss, waits for buffer memory and metadata that leave the loop running
(a ticking coroutine keeps ticking), cancellation, shutdown, and bad input raising what
the synchronous producer raises.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from kprod import Producer
from kprod.aio import AsyncProducer, AsyncRecordFuture
from kprod.cluster import EmbeddedCluster
from kprod.errors import (
    BufferExhaustedError,
    EventLoopError,
    KafkaTimeoutError,
    ProducerClosedError,
    RecordTooLargeError,
    SerializationError,
)
from kprod.producer.batch import RecordFuture
from kprod.record import ProducerRecord
from test_send_many_cluster import read_back

pytest.importorskip("confluent_kafka")

LOOPS = ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])
Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Run:
    """Run a coroutine to completion on a fresh loop of the parametrized kind."""
    if request.param == "uvloop":
        import uvloop

        return uvloop.run  # type: ignore[no-any-return]
    return asyncio.run


def config(cluster: EmbeddedCluster, **overrides: Any) -> dict[str, Any]:
    return {"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 2, **overrides}


class Ticker:
    """A coroutine that counts its wake-ups every 1 ms: it stops counting when the loop is blocked."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.001)
            self.ticks += 1

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def test_exact_offsets_and_order_per_partition_with_callbacks_on_the_loop(cluster: EmbeddedCluster, run: Run) -> None:
    cluster.create_topic("ordered", partitions=3, replication_factor=3)
    calls: list[tuple[int, int, bool]] = []
    coroutine_calls: list[int] = []

    async def main() -> list[Any]:
        loop_thread = threading.get_ident()

        def on_done(metadata: Any, error: BaseException | None) -> None:
            assert error is None
            calls.append((metadata.partition, metadata.offset, threading.get_ident() == loop_thread))

        async def on_done_async(metadata: Any, error: BaseException | None) -> None:
            await asyncio.sleep(0)
            coroutine_calls.append(metadata.offset)

        async with AsyncProducer(config(cluster)) as producer:
            futures = []
            for i in range(3000):
                callback = on_done if i % 10 == 0 else on_done_async if i % 10 == 1 else None
                futures.append(await producer.send("ordered", b"v%05d" % i, key=b"k%d" % (i % 7), callback=callback))
            return list(await asyncio.gather(*futures))

    metadata = run(main())
    per_partition: dict[int, list[int]] = {}
    for i, md in enumerate(metadata):
        per_partition.setdefault(md.partition, []).append(i)
        assert md.topic == "ordered"
    for partition, indexes in per_partition.items():
        assert [metadata[i].offset for i in indexes] == list(range(len(indexes)))
    stored = read_back(cluster, "ordered", 3000)
    for partition, indexes in per_partition.items():
        assert [r.value for r in stored[partition]] == [b"v%05d" % i for i in indexes]
        assert [r.key for r in stored[partition]] == [b"k%d" % (i % 7) for i in indexes]
    assert sorted(calls) == sorted((metadata[i].partition, metadata[i].offset, True) for i in range(0, 3000, 10))
    assert sorted(coroutine_calls) == sorted(metadata[i].offset for i in range(1, 3000, 10))


def test_send_many_send_and_wait_flush_and_partitions_for(cluster: EmbeddedCluster, run: Run) -> None:
    cluster.create_topic("many", partitions=2, replication_factor=1)
    seen: list[int] = []

    async def main() -> tuple[Any, ...]:
        async with AsyncProducer(config(cluster, **{"linger.ms": 50})) as producer:
            partitions = await producer.partitions_for("many")
            futures = await producer.send_many("many", [b"m%d" % i for i in range(500)], partition=1,
                                               callback=lambda md, err: seen.append(md.offset))
            await producer.flush()
            assert all(f.done() for f in futures)
            offsets = [f.result().offset for f in futures]
            single = await producer.send_and_wait(ProducerRecord("many", b"last", partition=0))
            return partitions, offsets, single

    partitions, offsets, single = run(main())
    assert [p.partition for p in partitions] == [0, 1]
    assert offsets == list(range(500))
    assert sorted(seen) == list(range(500))  # flush() returned after every callback ran
    assert (single.partition, single.offset) == (0, 0)
    stored = read_back(cluster, "many", 501)
    assert [r.value for r in stored[1]] == [b"m%d" % i for i in range(500)]


def test_idempotent_records_survive_leader_loss_exactly_once_in_order(cluster: EmbeddedCluster, run: Run) -> None:
    cluster.create_topic("failover", partitions=1, replication_factor=3, config={"min.insync.replicas": "2"})

    async def main() -> list[Any]:
        async with AsyncProducer(config(cluster, acks="all", **{"retry.backoff.ms": 20})) as producer:
            futures = [await producer.send("failover", b"r%04d" % i) for i in range(1000)]
            await asyncio.gather(*futures[:100])
            cluster.stop_broker(cluster.leader("failover", 0))
            futures += [await producer.send("failover", b"r%04d" % i) for i in range(1000, 2000)]
            return list(await asyncio.gather(*futures))

    metadata = run(main())
    assert [md.offset for md in metadata] == list(range(2000))
    stored = read_back(cluster, "failover", 2000)
    assert [r.value for r in stored[0]] == [b"r%04d" % i for i in range(2000)]


def test_a_full_buffer_waits_on_the_loop_and_then_sends(cluster: EmbeddedCluster, run: Run) -> None:
    cluster.create_topic("full", partitions=1, replication_factor=1)
    leader = cluster.leader("full", 0)

    async def main() -> tuple[int, list[Any]]:
        settings = config(cluster, **{"buffer.memory": 65536, "batch.size": 16384, "linger.ms": 0})
        async with AsyncProducer(settings) as producer:
            await producer.send_and_wait("full", b"warm-up")
            cluster.add_latency(leader, 200)
            longest_wait_ticks = 0
            futures = []
            async with Ticker() as ticker:
                for i in range(60):
                    before = ticker.ticks
                    futures.append(await producer.send("full", b"%04d" % i + bytes(4000)))
                    longest_wait_ticks = max(longest_wait_ticks, ticker.ticks - before)
            cluster.add_latency(leader, 0)
            return longest_wait_ticks, list(await asyncio.gather(*futures))

    longest_wait_ticks, metadata = run(main())
    # 60 records of 4 KB need 240 KB, 3.7 times the buffer: some send() waited for memory,
    # and while it did, the ticking coroutine kept running.
    assert longest_wait_ticks > 0
    assert [md.offset for md in metadata] == list(range(1, 61))
    stored = read_back(cluster, "full", 61)
    assert [r.value[:4] for r in stored[0][1:]] == [b"%04d" % i for i in range(60)]


def test_a_buffer_that_stays_full_raises_the_sync_error_after_max_block_ms(cluster: EmbeddedCluster, run: Run) -> None:
    cluster.create_topic("stuck", partitions=1, replication_factor=1)
    leader = cluster.leader("stuck", 0)
    settings = config(cluster, **{"buffer.memory": 32768, "batch.size": 16384, "linger.ms": 0, "max.block.ms": 400})

    async def main() -> tuple[BaseException, int, list[BaseException | None]]:
        producer = AsyncProducer(settings)
        await producer.start()
        await producer.send_and_wait("stuck", b"warm-up")
        cluster.add_latency(leader, 30000)
        futures = []
        async with Ticker() as ticker:
            with pytest.raises(BufferExhaustedError) as failure:
                for i in range(20):
                    futures.append(await producer.send("stuck", bytes(10000)))
            ticks = ticker.ticks
        await producer.close(timeout=0)
        return failure.value, ticks, [f.exception() for f in futures]

    error, ticks, outcomes = run(main())
    cluster.add_latency(leader, 0)
    assert "buffer.memory" in str(error) and "400 ms" in str(error)
    assert ticks > 0  # the loop ran while send() waited
    assert outcomes and all(isinstance(e, ProducerClosedError) for e in outcomes)  # closed before acknowledged


def test_a_topic_without_metadata_waits_on_the_loop_then_raises_like_sync(run: Run) -> None:
    with EmbeddedCluster(brokers=1, config={"auto.create.topics.enable": False}) as cluster:
        settings = config(cluster, **{"max.block.ms": 300})
        with Producer(settings) as sync_producer:
            with pytest.raises(KafkaTimeoutError) as sync_failure:
                sync_producer.send("absent", b"x")

        async def main() -> tuple[BaseException, int, Any]:
            async with AsyncProducer(settings) as producer:
                async with Ticker() as ticker:
                    with pytest.raises(KafkaTimeoutError) as failure:
                        await producer.send("absent", b"x")
                    ticks = ticker.ticks
                # A topic created while send() waits: the send goes on once metadata has it.
                asyncio.get_running_loop().call_later(0.05, cluster.create_topic, "late", 1, 1)
                producer._max_block_s = 10.0
                metadata = await producer.send_and_wait("late", b"y")
                return failure.value, ticks, metadata

        error, ticks, metadata = run(main())
    assert type(error) is type(sync_failure.value)
    assert "absent" in str(error) and "300 ms" in str(error)
    assert ticks > 0
    assert (metadata.topic, metadata.offset) == ("late", 0)


def test_cancelling_an_awaited_delivery_does_not_unsend_the_record(cluster: EmbeddedCluster, run: Run) -> None:
    cluster.create_topic("cancel", partitions=1, replication_factor=1)
    leader = cluster.leader("cancel", 0)
    called: list[Any] = []

    async def main() -> tuple[bool, bool, Any]:
        async with AsyncProducer(config(cluster)) as producer:
            await producer.send_and_wait("cancel", b"warm-up")
            cluster.add_latency(leader, 300)
            future = await producer.send("cancel", b"kept", callback=lambda md, err: called.append(md))
            waiter = asyncio.ensure_future(asyncio.wait_for(future, 0.05))
            with pytest.raises(asyncio.TimeoutError):
                await waiter
            cancelled = future.cancelled()
            with pytest.raises(asyncio.CancelledError):
                await future
            cluster.add_latency(leader, 0)
            await producer.flush()
            return cancelled, RecordFuture.done(future), called[0]

    cancelled, delivered, metadata = run(main())
    assert cancelled and delivered
    assert metadata.offset == 1  # the callback still ran: the record was written
    assert [r.value for r in read_back(cluster, "cancel", 2)[0]] == [b"warm-up", b"kept"]


def test_cancelling_a_send_that_waits_for_memory_queues_nothing(cluster: EmbeddedCluster, run: Run) -> None:
    cluster.create_topic("cancel-wait", partitions=1, replication_factor=1)
    leader = cluster.leader("cancel-wait", 0)
    settings = config(cluster, **{"buffer.memory": 32768, "batch.size": 16384, "linger.ms": 0})

    async def main() -> list[Any]:
        async with AsyncProducer(settings) as producer:
            await producer.send_and_wait("cancel-wait", b"warm-up")
            cluster.add_latency(leader, 500)
            futures = [await producer.send("cancel-wait", b"a" * 15000), await producer.send("cancel-wait", b"b" * 15000)]
            blocked = asyncio.ensure_future(producer.send("cancel-wait", b"c" * 15000))
            await asyncio.sleep(0.05)
            assert not blocked.done()  # waiting for memory
            blocked.cancel()
            with pytest.raises(asyncio.CancelledError):
                await blocked
            assert not producer._producer._accumulator.pool.has_waiters  # type: ignore[union-attr]
            cluster.add_latency(leader, 0)
            return [md.offset for md in await asyncio.gather(*futures)]

    assert run(main()) == [1, 2]
    assert [r.value[:1] for r in read_back(cluster, "cancel-wait", 3)[0]] == [b"w", b"a", b"b"]


def test_leaving_the_block_flushes_queued_records(cluster: EmbeddedCluster, run: Run) -> None:
    cluster.create_topic("exit", partitions=1, replication_factor=1)

    async def main() -> list[AsyncRecordFuture]:
        async with AsyncProducer(config(cluster, **{"linger.ms": 60000})) as producer:
            await producer.partitions_for("exit")
            futures = [await producer.send("exit", b"q%d" % i) for i in range(100)]
            assert not any(f.done() for f in futures)  # lingering: nothing sent yet
        return futures

    futures = run(main())
    assert [f.result().offset for f in futures] == list(range(100))
    assert [r.value for r in read_back(cluster, "exit", 100)[0]] == [b"q%d" % i for i in range(100)]


def test_close_timeout_fails_what_is_left_and_later_sends_are_refused(cluster: EmbeddedCluster, run: Run) -> None:
    cluster.create_topic("closing", partitions=1, replication_factor=1)
    leader = cluster.leader("closing", 0)

    async def main() -> tuple[list[BaseException | None], BaseException]:
        producer = AsyncProducer(config(cluster))
        await producer.start()
        await producer.send_and_wait("closing", b"warm-up")
        cluster.add_latency(leader, 3000)
        futures = [await producer.send("closing", b"late") for _ in range(5)]
        await producer.stop(timeout=0.2)  # aiokafka's name
        with pytest.raises(ProducerClosedError) as refused:
            await producer.send("closing", b"after")
        return [f.exception() for f in futures], refused.value

    outcomes, refused = run(main())
    cluster.add_latency(leader, 0)
    assert all(isinstance(e, ProducerClosedError) and "close timeout" in str(e) for e in outcomes)
    assert "closed" in str(refused)


def test_another_loop_or_thread_is_refused(cluster: EmbeddedCluster, run: Run) -> None:
    cluster.create_topic("loops", partitions=1, replication_factor=1)
    producer = AsyncProducer(config(cluster))

    async def first() -> None:
        await producer.start()
        await producer.send_and_wait("loops", b"one")
        errors: list[BaseException] = []

        def other_thread() -> None:
            try:
                asyncio.run(producer.send("loops", b"thread"))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=other_thread)
        thread.start()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        assert len(errors) == 1 and isinstance(errors[0], EventLoopError)

    async def second() -> None:
        with pytest.raises(EventLoopError, match="another event loop"):
            await producer.send("loops", b"two")
        with pytest.raises(EventLoopError):
            await producer.start()
        await producer.close()  # allowed: the first loop has ended

    run(first())
    run(second())
    assert [r.value for r in read_back(cluster, "loops", 1)[0]] == [b"one"]


def test_bad_input_raises_what_the_sync_producer_raises(cluster: EmbeddedCluster, run: Run) -> None:
    cluster.create_topic("bad", partitions=2, replication_factor=1)
    settings = config(cluster, **{"max.request.size": 2000})
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((42, b"v"), {}),
        (("bad", b"v"), {"partition": 5}),
        (("bad", b"v"), {"partition": "0"}),
        (("bad", b"v"), {"timestamp": -1}),
        (("bad", b"v"), {"headers": [("h", "not bytes")]}),
        (("bad", bytes(5000)), {}),
        (("", b"v"), {}),
    ]
    with Producer(settings) as sync_producer:
        sync_classes = []
        for args, kwargs in calls:
            with pytest.raises(Exception) as failure:
                sync_producer.send(*args, **kwargs)
            sync_classes.append(type(failure.value))
    assert RecordTooLargeError in sync_classes and SerializationError in sync_classes

    async def main() -> list[type[BaseException]]:
        classes = []
        async with AsyncProducer(settings) as producer:
            for args, kwargs in calls:
                with pytest.raises(Exception) as failure:
                    await producer.send(*args, **kwargs)
                classes.append(type(failure.value))
            with pytest.raises(TypeError, match="callback"):
                await producer.send("bad", b"v", callback="not callable")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await producer.send_many("bad", b"not a list")  # type: ignore[arg-type]
            await producer.send_and_wait("bad", b"fine", partition=0)
        return classes

    assert run(main()) == sync_classes
    assert [r.value for r in read_back(cluster, "bad", 1)[0]] == [b"fine"]  # refused calls sent nothing


def test_a_producer_not_started_is_a_clear_error(run: Run) -> None:
    producer = AsyncProducer({"bootstrap.servers": "127.0.0.1:9"})

    async def main() -> None:
        with pytest.raises(EventLoopError, match="not started"):
            await producer.send("t", b"v")
        await producer.close()

    run(main())


def test_send_many_waits_for_memory_part_way_and_goes_on_in_order(cluster: EmbeddedCluster, run: Run) -> None:
    cluster.create_topic("many-full", partitions=1, replication_factor=1)
    leader = cluster.leader("many-full", 0)
    settings = config(cluster, **{"buffer.memory": 32768, "batch.size": 16384, "linger.ms": 0})

    async def main() -> tuple[int, list[int]]:
        async with AsyncProducer(settings) as producer:
            await producer.send_and_wait("many-full", b"warm-up")
            cluster.add_latency(leader, 100)
            values = [b"%03d" % i + bytes(4000) for i in range(40)]  # 160 KB through a 32 KB buffer
            async with Ticker() as ticker:
                futures = await producer.send_many("many-full", iter(values), keys=[b"k"] * 40)
                ticks = ticker.ticks
            cluster.add_latency(leader, 0)
            return ticks, [md.offset for md in await asyncio.gather(*futures)]

    ticks, offsets = run(main())
    assert ticks > 0
    assert offsets == list(range(1, 41))
    assert [r.value[:3] for r in read_back(cluster, "many-full", 41)[0][1:]] == [b"%03d" % i for i in range(40)]


def test_the_loop_ending_without_close_delivers_what_is_queued(
    cluster: EmbeddedCluster, run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.create_topic("loop-end", partitions=1, replication_factor=1)

    async def main() -> tuple[AsyncProducer, list[AsyncRecordFuture]]:
        producer = AsyncProducer(config(cluster, **{"linger.ms": 60000}))
        await producer.start()
        await producer.partitions_for("loop-end")
        return producer, [await producer.send("loop-end", b"e%d" % i) for i in range(50)]  # no close()

    with caplog.at_level("WARNING"):
        producer, futures = run(main())
    assert producer._closed
    assert [r.getMessage()[:40] for r in caplog.records] == ["The event loop ended with <AsyncProducer"]
    assert [f.result().offset for f in futures] == list(range(50))
    assert [r.value for r in read_back(cluster, "loop-end", 50)[0]] == [b"e%d" % i for i in range(50)]


def test_concurrent_closes_all_wait_for_the_one_close(cluster: EmbeddedCluster, run: Run) -> None:
    cluster.create_topic("two-closes", partitions=1, replication_factor=1)

    async def main() -> list[bool]:
        producer = AsyncProducer(config(cluster, **{"linger.ms": 200}))
        await producer.start()
        futures = [await producer.send("two-closes", b"c%d" % i) for i in range(20)]
        await asyncio.gather(producer.close(), producer.close())
        return [f.done() for f in futures]

    assert run(main()) == [True] * 20


def test_record_form_done_callbacks_and_asyncio_wait(cluster: EmbeddedCluster, run: Run) -> None:
    cluster.create_topic("forms", partitions=1, replication_factor=1)
    seen: list[Any] = []

    async def main() -> tuple[int, int]:
        async with AsyncProducer(config(cluster)) as producer:
            first = await producer.send(ProducerRecord("forms", b"r0", key=b"k"), lambda md, err: seen.append(md.offset))
            second = await producer.send("forms", b"r1")
            removed = []
            second.add_done_callback(removed.append)
            second.remove_done_callback(removed.append)
            second.add_done_callback(lambda f: seen.append(("done", f.result().offset)))
            done, pending = await asyncio.wait([first, second])
            await producer.flush()
            assert removed == [] and not pending
            return first.result().offset, second.result().offset

    assert run(main()) == (0, 1)
    assert sorted(seen, key=str) == sorted([0, ("done", 1)], key=str)
