"""Helpers shared by the embedded-cluster tests: raw requests, batches, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kprod.cluster import EmbeddedCluster
from kprod.net.blocking import BlockingConnection
from kprod.protocol.messages import ApiKey
from kprod.protocol.records import RecordBatchBuilder
from kprod.protocol.requests import fetch_request, produce_request

__all__ = [
    "build_batch",
    "connect",
    "fetch_partition",
    "produce_partition",
    "wait_until",
]


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.01)  # polling interval of a condition with a deadline, not a synchronisation


def connect(cluster: EmbeddedCluster, node_id: int, timeout: float = 10.0) -> BlockingConnection:
    """A raw connection to one broker (versions negotiated)."""
    broker = next(b for b in cluster.brokers if b.node_id == node_id)
    return BlockingConnection(broker.host, broker.port, timeout=timeout)


def build_batch(
    values: Iterable[bytes],
    *,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    codec: int = 0,
    timestamp: int = 1_700_000_000_000,
    key: bytes | None = b"key",
) -> bytes:
    builder = RecordBatchBuilder(codec=codec)
    for i, value in enumerate(values):
        builder.append(timestamp + i, key, value, [("h", b"%d" % i)])
    return builder.build(producer_id, producer_epoch, base_sequence)


def produce_partition(
    conn: BlockingConnection,
    topic: str,
    partition: int,
    batch: bytes,
    *,
    acks: int = -1,
    version: int | None = None,
) -> Any:
    """Send one batch; return (partition response, whole response)."""
    v = conn.version(ApiKey.PRODUCE) if version is None else version
    response = conn.send(produce_request(v, acks, 5000, {topic: [(partition, batch)]}), expect_response=acks != 0)
    if response is None:
        return None, None
    return response.responses[0].partition_responses[0], response


def fetch_partition(
    conn: BlockingConnection, topic: str, partition: int, offset: int, **options: Any
) -> Any:
    """Fetch one partition; return (partition data, whole response)."""
    response = conn.send(fetch_request(conn.version(ApiKey.FETCH), {topic: [(partition, offset)]}, **options))
    return response.responses[0].partitions[0], response


def error_codes(response: Any) -> Sequence[int]:
    return [int(p.error_code) for t in response.responses for p in t.partition_responses]
