"""kprod: a fast, correct Kafka producer for Python.

    from kprod import Producer, ProducerRecord
    with Producer({"bootstrap.servers": "127.0.0.1:9092"}) as producer:
        producer.send("orders", b"value", key=b"key").result(timeout=10)

The Java client's semantics and configuration keys, Python's conventions.
``kprod.cluster.EmbeddedCluster`` is a Kafka-protocol cluster for development
and tests, not a production broker.
"""

from kprod._version import __version__
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
