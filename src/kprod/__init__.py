"""kprod: a fast, correct Kafka producer for Python.

    from kprod import Producer, ProducerRecord
    with Producer({"bootstrap.servers": "127.0.0.1:9092"}) as producer:
        producer.send("orders", b"value", key=b"key").result(timeout=10)

The Java client's semantics and configuration keys, Python's conventions.
``kprod.cluster.EmbeddedCluster`` is a Kafka-protocol cluster for development
and tests, not a production broker.

Names are imported on first use (PEP 562), so ``import kprod`` and the
command line start quickly.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from kprod._version import __version__

if TYPE_CHECKING:
    from kprod.client import Producer
    from kprod.producer.batch import RecordFuture
    from kprod.producer.metadata import PartitionInfo
    from kprod.record import Header, ProducerRecord, RecordMetadata

__all__ = [
    "__version__",
    "Header",
    "PartitionInfo",
    "Producer",
    "ProducerRecord",
    "RecordFuture",
    "RecordMetadata",
]

_LAZY = {
    "Producer": "kprod.client",
    "RecordFuture": "kprod.producer.batch",
    "PartitionInfo": "kprod.producer.metadata",
    "Header": "kprod.record",
    "ProducerRecord": "kprod.record",
    "RecordMetadata": "kprod.record",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kprod' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
