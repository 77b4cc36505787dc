"""Offline producers and record cases shared by the record-check tests and their pure-Python worker.

An offline producer has injected metadata (topic ``a``: 6 partitions, ``b``: 2) and an
unreachable bootstrap address, so every accepted record stays in the accumulator, where
:func:`state` reads it (batch bytes, futures, callbacks, reserved memory, sticky state).
Cases are plain picklable data (``MV`` stands for a memoryview), so the same case can run
here and in ``parity_worker.py`` under ``KPROD_NO_SPEEDUPS=1``; :func:`run_ops` turns one
into calls and returns what happened, to be compared across the two.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from kprod import Producer
from kprod.producer.metadata import ClusterMetadata
from kprod.protocol.messages import ApiKey, ErrorCode, response_module
from kprod.protocol.responses import metadata_result

BASE_TS = 1_700_000_000_000
TOPICS = {"a": 6, "b": 2}
CONFIG: dict[str, Any] = {
    "linger.ms": 600_000, "delivery.timeout.ms": 900_000, "request.timeout.ms": 30_000,
    "reconnect.backoff.ms": 60_000, "reconnect.backoff.max.ms": 60_000, "acks": 1, "max.block.ms": 200,
    "partitioner.adaptive.partitioning.enable": False, "batch.size": 4096, "max.request.size": 20_000,
}


class MV(bytes):
    """Stands for ``memoryview(bytes(self))`` in a case (a memoryview cannot be pickled)."""


def materialize(spec: Any) -> Any:
    """A case's arguments as objects: every :class:`MV` inside lists, tuples and dicts becomes a memoryview."""
    if type(spec) is MV:
        return memoryview(bytes(spec))
    if type(spec) is list:
        return [materialize(item) for item in spec]
    if type(spec) is tuple:
        return tuple(materialize(item) for item in spec)
    if type(spec) is dict:
        return {key: materialize(value) for key, value in spec.items()}
    return spec


def inject_metadata(producer: Producer, topics: dict[str, int] = TOPICS) -> None:
    m = response_module(ApiKey.METADATA, 12)
    response = m.MetadataResponse(
        throttle_time=timedelta(0),
        brokers=tuple(m.MetadataResponseBroker(node_id=b, host="127.0.0.1", port=9, rack=None) for b in (1, 2, 3)),
        cluster_id="c",
        controller_id=1,
        topics=tuple(
            m.MetadataResponseTopic(
                error_code=ErrorCode(0), name=topic, topic_id=uuid.uuid4(), is_internal=False,
                partitions=tuple(
                    m.MetadataResponsePartition(
                        error_code=ErrorCode(0), partition_index=p, leader_id=1 + p % 3, leader_epoch=0,
                        replica_nodes=(1, 2, 3), isr_nodes=(1, 2, 3), offline_replicas=(),
                    )
                    for p in range(count)
                ),
                topic_authorized_operations=-2147483648,
            )
            for topic, count in topics.items()
        ),
    )
    fresh = ClusterMetadata(metadata_max_age_ms=300_000, metadata_max_idle_ms=300_000)
    fresh.update(metadata_result(response), 0.0)
    metadata = producer._metadata
    metadata.partitions, metadata.leaders = fresh.partitions, fresh.leaders
    metadata.available, metadata.partition_counts = fresh.available, fresh.partition_counts


class FixedClock:
    """Calls the compiled path with a None timestamp replaced by BASE_TS (it reads the clock itself)."""

    def __init__(self, path: Callable[..., Any]) -> None:
        self.path = path

    def __call__(self, topic: Any, value: Any, key: Any, partition: Any, timestamp: Any, headers: Any,
                 callback: Any) -> Any:
        return self.path(topic, value, key, partition, BASE_TS if timestamp is None else timestamp, headers, callback)


def offline_producer(address: str, **config: Any) -> Producer:
    """A producer with metadata and no broker, its sticky draws seeded, its compiled path (if any)
    on a fixed clock. The caller fixes the Python path's clock (``kprod.client._time_ns``)."""
    producer = Producer({"bootstrap.servers": address, **CONFIG, **config})
    producer._accumulator.sticky._random.seed(1234)
    inject_metadata(producer)
    if producer._fast_send is not None:
        producer._fast_send = FixedClock(producer._fast_send)
    return producer


def state(producer: Producer) -> dict[str, Any]:
    """Everything a send can change: queued batches (bytes, futures, callbacks, memory), the
    memory pool, the sticky partitioner, the incomplete set, the topics in metadata."""
    accumulator = producer._accumulator
    with accumulator.lock:
        queues = {
            (topic, partition): [
                (bytes(b.builder._buf), b.builder._count, b.full, b.memory,
                 [(f._index, f._timestamp, f._key_size, f._value_size) for f in b.futures],
                 [(f._index, java) for f, _, java in b.callbacks or []])
                for b in state.queue
            ]
            for topic, states in accumulator._partitions.items()
            for partition, state in enumerate(states)
            if state.queue
        }
        return {
            "queues": queues,
            "pool": accumulator.pool.available,
            "sticky": (dict(accumulator.sticky._current), dict(accumulator.sticky._produced)),
            "incomplete": len(accumulator.incomplete),
            "topics": sorted(producer._metadata.partition_counts),
        }


def _callback(metadata: Any, error: Any) -> None:
    pass


def _future(future: Any) -> tuple[Any, ...]:
    batch = future._batch
    return (batch.topic, batch.partition, future._index, future._timestamp, future._key_size, future._value_size)


def outcome_of(exc: BaseException) -> tuple[Any, ...]:
    return ("error", type(exc).__name__, getattr(exc, "field", None), getattr(exc, "index", None))


def run_ops(producer: Producer, ops: list[tuple[str, dict[str, Any]]]) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """Run ``ops`` (("send" | "send_many", keyword arguments)) and return each call's outcome (its
    futures' fields, or its error's class, field and index) and the producer's state after all."""
    outcomes: list[tuple[Any, ...]] = []
    for kind, spec in ops:
        kwargs = materialize(spec)
        if kwargs.pop("callback", False):
            kwargs["callback"] = _callback
        try:
            if kind == "send":
                outcomes.append(("ok", _future(producer.send(**kwargs))))
            else:
                outcomes.append(("ok", [_future(f) for f in producer.send_many(**kwargs)]))
        except Exception as exc:
            outcomes.append(outcome_of(exc))
    return outcomes, state(producer)
