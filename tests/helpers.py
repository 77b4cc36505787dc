"""Helpers shared by the producer tests: reading a topic back with an independent client.

kprod must never check its own writes with its own reader (a codec bug would hide
behind it), so read-back goes through confluent-kafka's Consumer: partitions
assigned explicitly from the earliest offset, no group coordination, no commits.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

__all__ = ["Message", "consume_all", "wait_for", "high_watermarks"]


class Message(NamedTuple):
    """One record as confluent-kafka read it back."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp_type: int
    timestamp: int


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until truthy; raise AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        pause.wait(0.02)  # the polling interval of a condition with a deadline


def _consumer(bootstrap: str | dict[str, Any]) -> Any:
    """``bootstrap``: the servers, or confluent-kafka settings (with credentials) to start from."""
    from confluent_kafka import Consumer

    base = dict(bootstrap) if isinstance(bootstrap, dict) else {"bootstrap.servers": bootstrap}
    return Consumer(
        {
            **base,
            "group.id": f"kprod-readback-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_uncommitted",
            "fetch.wait.max.ms": 50,
            "log_level": 2,
        }
    )


def high_watermarks(bootstrap: str, topic: str, partitions: Iterable[int], timeout: float = 10.0) -> dict[int, int]:
    """The high watermark (next offset a consumer can read up to) of each partition."""
    from confluent_kafka import TopicPartition

    consumer = _consumer(bootstrap)
    try:
        return {
            p: int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)[1])
            for p in partitions
        }
    finally:
        consumer.close()


def consume_all(
    bootstrap: str | dict[str, Any],
    topic: str,
    partitions: Iterable[int],
    *,
    expected: int | None = None,
    timeout: float = 30.0,
) -> dict[int, list[Message]]:
    """Every record of ``topic``'s ``partitions`` from offset 0, per partition, in offset order.

    Reads until each partition's high watermark (re-read while waiting) is reached and,
    when ``expected`` is given, at least that many records in total arrived. Raises
    AssertionError at ``timeout`` seconds with what was read so far.
    """
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    wanted = sorted(set(partitions))
    result: dict[int, list[Message]] = {p: [] for p in wanted}
    consumer = _consumer(bootstrap)
    deadline = time.monotonic() + timeout
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in wanted])
        marks: dict[int, int] = {}
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                counts = {p: len(m) for p, m in result.items()}
                raise AssertionError(
                    f"reading {topic} back: got {counts} (high watermarks {marks}), expected "
                    f"{expected} records in all within {timeout} s"
                )
            marks = {
                p: int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=min(5.0, remaining), cached=False)[1])
                for p in wanted
            }
            caught_up = all((result[p][-1].offset + 1 if result[p] else 0) >= marks[p] for p in wanted)
            total = sum(len(m) for m in result.values())
            if caught_up and (expected is None or total >= expected):
                return result
            for message in consumer.consume(num_messages=10000, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"reading {topic} back failed: {error}")
                ts_type, ts = message.timestamp()
                result[message.partition()].append(
                    Message(
                        message.partition(),
                        message.offset(),
                        message.key(),
                        message.value(),
                        list(message.headers() or []),
                        ts_type,
                        ts,
                    )
                )
    finally:
        consumer.close()
