"""``kprod.aio.AsyncProducer`` against real Apache Kafka, read back with confluent-kafka.

Under asyncio's loop and, when installed, uvloop: exact offsets and order per partition
(keys, headers, callbacks on the loop), a buffer much smaller than the data (sends wait
for memory on the loop and resume), and idempotent delivery through the loss of a
partition leader (on the managed cluster only).
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from kprod.aio import AsyncProducer
from tests.helpers import consume_all

LOOPS = ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])
Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Run:
    if request.param == "uvloop":
        import uvloop

        return uvloop.run  # type: ignore[no-any-return]
    return asyncio.run


def test_exact_offsets_order_keys_and_headers_per_partition(kafka: Any, topic_factory: Any, run: Run) -> None:
    topic = topic_factory(partitions=3)
    on_loop: list[bool] = []

    async def main() -> list[Any]:
        loop_thread = threading.get_ident()
        async with AsyncProducer({"bootstrap.servers": kafka.bootstrap_servers, "linger.ms": 5}) as producer:
            futures = []
            for i in range(3000):
                callback = (lambda md, err: on_loop.append(threading.get_ident() == loop_thread)) if i % 100 == 0 else None
                futures.append(await producer.send(topic, b"v%05d" % i, key=b"k%d" % (i % 11),
                                                   headers=[("n", b"%d" % i)], callback=callback))
            many = await producer.send_many(topic, [b"m%d" % i for i in range(500)], partition=2)
            return list(await asyncio.gather(*futures, *many))

    metadata = run(main())
    expected: dict[int, list[tuple[bytes | None, bytes]]] = {0: [], 1: [], 2: []}
    for i, md in enumerate(metadata[:3000]):
        assert md.offset == len(expected[md.partition])
        expected[md.partition].append((b"k%d" % (i % 11), b"v%05d" % i))
    for i, md in enumerate(metadata[3000:]):
        assert (md.partition, md.offset) == (2, len(expected[2]))
        expected[2].append((None, b"m%d" % i))
    got = consume_all(kafka.bootstrap_servers, topic, range(3), expected=3500)
    for partition, records in expected.items():
        assert [(m.key, m.value) for m in got[partition]] == records
        assert [m.offset for m in got[partition]] == list(range(len(records)))
    assert on_loop == [True] * 30


def test_a_small_buffer_makes_sends_wait_on_the_loop_and_loses_nothing(kafka: Any, topic_factory: Any, run: Run) -> None:
    topic = topic_factory(partitions=1)
    settings = {"bootstrap.servers": kafka.bootstrap_servers, "buffer.memory": 65536, "batch.size": 16384,
                "linger.ms": 0}

    async def main() -> list[Any]:
        async with AsyncProducer(settings) as producer:  # 3 MB of records through a 64 KB buffer
            futures = [await producer.send(topic, b"%05d" % i + bytes(3000)) for i in range(1000)]
            return list(await asyncio.gather(*futures))

    metadata = run(main())
    assert [md.offset for md in metadata] == list(range(1000))
    got = consume_all(kafka.bootstrap_servers, topic, [0], expected=1000)
    assert [m.value[:5] for m in got[0]] == [b"%05d" % i for i in range(1000)]


def test_idempotent_delivery_through_leader_loss(kafka_control: Any, topic_factory: Any) -> None:
    cluster = kafka_control
    topic = topic_factory(partitions=1, config={"min.insync.replicas": "2"})

    async def main() -> list[Any]:
        settings = {"bootstrap.servers": cluster.bootstrap_servers, "acks": "all", "reconnect.backoff.max.ms": 200}
        async with AsyncProducer(settings) as producer:
            futures = [await producer.send(topic, b"r%04d" % i) for i in range(1000)]
            await asyncio.gather(*futures[:200])
            leader = cluster.leader(topic, 0)
            await asyncio.get_running_loop().run_in_executor(None, cluster.stop_node, leader)
            futures += [await producer.send(topic, b"r%04d" % i) for i in range(1000, 2000)]
            return list(await asyncio.gather(*futures))

    metadata = asyncio.run(main())
    assert [md.offset for md in metadata] == list(range(2000))
    got = consume_all(cluster.bootstrap_servers, topic, [0], expected=2000)
    assert [m.value for m in got[0]] == [b"r%04d" % i for i in range(2000)]
