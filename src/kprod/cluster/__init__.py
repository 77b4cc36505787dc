"""An embedded Kafka-protocol cluster for development, demos and tests.

``EmbeddedCluster(brokers=3)`` runs N brokers on 127.0.0.1 that confluent-kafka,
kafka-python, aiokafka and kprod talk to unchanged, and lets a test break them
on purpose (stop a broker, move a leader, shrink an ISR, inject error codes,
add latency, throttle, drop connections, or any request hook through
``intercept``) and read back what each partition holds. Its listeners can be
SSL (optionally mTLS), SASL_PLAINTEXT or SASL_SSL (PLAIN, SCRAM, OAUTHBEARER)
with throw-away test certificates, so security settings can be tested too. It
is a development and test tool, NOT a production broker: use Apache Kafka in
production.
"""

from kprod.cluster.embedded import EmbeddedCluster
from kprod.cluster.exceptions import ClusterError
from kprod.cluster.hooks import DROP, Delay, Error, Hook, HookContext, HookInfo, Throttle
from kprod.cluster.groups import GroupInfo, MemberInfo
from kprod.cluster.info import BrokerInfo, LoggedBatch, PartitionInfo, Record
from kprod.cluster.sasl_server import Authentication

__all__ = [
    "DROP",
    "Authentication",
    "BrokerInfo",
    "ClusterError",
    "Delay",
    "EmbeddedCluster",
    "Error",
    "GroupInfo",
    "Hook",
    "HookContext",
    "HookInfo",
    "LoggedBatch",
    "MemberInfo",
    "PartitionInfo",
    "Record",
    "Throttle",
]
