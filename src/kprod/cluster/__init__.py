"""An embedded Kafka-protocol cluster for development, demos and tests.

``EmbeddedCluster(brokers=3)`` runs N brokers on 127.0.0.1 that confluent-kafka,
kafka-python, aiokafka and kprod talk to unchanged, and lets a test break them
on purpose (stop a broker, move a leader, shrink an ISR, inject error codes,
add latency, throttle, drop connections) and read back what each partition
holds. It is a development and test tool, NOT a production broker: use Apache
Kafka in production.
"""

from kprod.cluster.embedded import EmbeddedCluster
from kprod.cluster.exceptions import ClusterError
from kprod.cluster.groups import GroupInfo, MemberInfo
from kprod.cluster.info import BrokerInfo, LoggedBatch, PartitionInfo, Record

__all__ = [
    "BrokerInfo",
    "ClusterError",
    "EmbeddedCluster",
    "GroupInfo",
    "LoggedBatch",
    "MemberInfo",
    "PartitionInfo",
    "Record",
]
