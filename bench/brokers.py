"""The cluster a benchmark runs against: real Apache Kafka, kprod's embedded cluster, or one given.

All three offer the same small surface to bench/run.py: a bootstrap string, creating and
deleting a topic, and counting what a topic's partitions hold (the end offsets' sum), which
is how every client's delivery is checked the same way, independently of the client.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

REPO_ROOT = Path(__file__).resolve().parents[1]

__all__ = ["Broker", "BrokerSetupError", "open_broker", "REPO_ROOT"]


class BrokerSetupError(RuntimeError):
    """The requested cluster cannot be started or reached; the message says why and what to do."""


class Broker(Protocol):
    bootstrap: str
    description: str

    def create_topic(self, name: str, partitions: int, replication_factor: int) -> None: ...
    def delete_topic(self, name: str) -> None: ...
    def stored_records(self, name: str, partitions: int) -> int: ...
    def close(self) -> None: ...


def _realkafka() -> Any:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.apache_kafka import realkafka

    return realkafka


class _KafkaProtocolBroker:
    """A real Kafka cluster (started here or external), driven through confluent-kafka's admin API."""

    def __init__(self, cluster: Any, description: str, owned: bool) -> None:
        import confluent_kafka

        self._cluster = cluster
        self._owned = owned
        self.bootstrap: str = cluster.bootstrap_servers
        self.cluster = cluster
        self.description = description
        self._consumer = confluent_kafka.Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": f"kprod-bench-{uuid.uuid4().hex[:8]}",
             "enable.auto.commit": False, "log_level": 2}
        )
        self._topic_partition = confluent_kafka.TopicPartition

    def create_topic(self, name: str, partitions: int, replication_factor: int) -> None:
        # The cluster's min.insync.replicas is 2; a topic with one replica needs 1 for acks=all.
        config = {"min.insync.replicas": str(min(2, replication_factor))}
        self._cluster.create_topic(name, partitions, replication_factor=replication_factor, config=config)

    def delete_topic(self, name: str) -> None:
        futures = self._cluster.admin().delete_topics([name], operation_timeout=30, request_timeout=30)
        futures[name].result(timeout=60)

    def stored_records(self, name: str, partitions: int) -> int:
        total = 0
        for partition in range(partitions):
            low, high = self._consumer.get_watermark_offsets(
                self._topic_partition(name, partition), timeout=10, cached=False
            )
            total += high - low
        return total

    def close(self) -> None:
        self._consumer.close()
        if self._owned:
            self._cluster.close()


class _EmbeddedBroker:
    """kprod's EmbeddedCluster with its brokers in a child process (no GIL shared with the driver)."""

    def __init__(self, brokers: int) -> None:
        try:
            from kprod.cluster import EmbeddedCluster
        except ImportError as exc:
            raise BrokerSetupError(
                f"--broker embedded needs kprod.cluster.EmbeddedCluster, which does not import here: {exc}. "
                "Use --broker real or --bootstrap HOST:PORT."
            ) from exc
        try:
            self._cluster = EmbeddedCluster(brokers=brokers, process=True).start()
        except Exception as exc:
            raise BrokerSetupError(
                f"EmbeddedCluster(brokers={brokers}, process=True) did not start: {exc!r}. "
                "Use --broker real or --bootstrap HOST:PORT."
            ) from exc
        self.bootstrap = self._cluster.bootstrap_servers
        self.description = f"kprod EmbeddedCluster, {brokers} brokers in a child process"

    def create_topic(self, name: str, partitions: int, replication_factor: int) -> None:
        # No retention bound: a run's topic is deleted afterwards, and stored_records must
        # see every record (the default 64 MiB per partition would evict 1 KiB runs).
        config = {"min.insync.replicas": str(min(2, replication_factor)), "retention.bytes": "-1"}
        self._cluster.create_topic(name, partitions, replication_factor, config)

    def delete_topic(self, name: str) -> None:
        self._cluster.delete_topic(name)

    def stored_records(self, name: str, partitions: int) -> int:
        total = 0
        for partition in range(partitions):
            info = self._cluster.partition_info(name, partition)
            total += info.end_offset - info.log_start_offset
        errors = self._cluster.internal_errors()
        if errors:
            raise BrokerSetupError(f"the embedded cluster hit internal errors: {errors[:3]}")
        return total

    def close(self) -> None:
        self._cluster.stop()


def security_settings(broker: Broker, security: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(bootstrap, Java-key settings, librdkafka settings) for a config's ``security`` ("" = PLAINTEXT)."""
    if not security:
        return broker.bootstrap, {}, {}
    cluster = getattr(broker, "cluster", None)
    if cluster is None or getattr(cluster, "security", None) is None:
        raise BrokerSetupError(f"configuration security={security} needs --broker real (a secured cluster)")
    material = cluster.security
    bootstrap = cluster.listener_bootstrap("SASL_SSL")
    java = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "alice", "sasl.password": "alice-secret",
            "ssl.truststore.location": str(material.ca_pem)}
    librdkafka = {**java, "ssl.ca.location": str(material.ca_pem)}
    del librdkafka["ssl.truststore.location"]
    return bootstrap, java, librdkafka


def open_broker(kind: str, bootstrap: str | None = None, brokers: int = 3, *, secured: bool = False) -> Broker:
    """Start (or reach) the cluster: kind is "real", "embedded" or "external" (needs `bootstrap`)."""
    if kind == "external":
        if not bootstrap:
            raise BrokerSetupError("--bootstrap HOST:PORT[,HOST:PORT...] is needed for an existing cluster")
        realkafka = _realkafka()
        cluster = realkafka.ExternalCluster(bootstrap)
        try:
            cluster.check()
        except Exception as exc:
            raise BrokerSetupError(f"the cluster at {bootstrap} does not answer: {exc}") from exc
        return _KafkaProtocolBroker(cluster, f"existing cluster at {bootstrap}", owned=False)
    if kind == "real":
        realkafka = _realkafka()
        begin = time.monotonic()
        try:
            cluster = realkafka.KafkaCluster(secured=secured).start()
        except realkafka.RealKafkaError as exc:
            raise BrokerSetupError(f"the real Kafka cluster did not start: {exc}") from exc
        version = realkafka.kafka_version()
        seconds = time.monotonic() - begin
        return _KafkaProtocolBroker(
            cluster, f"Apache Kafka {version}, 3 KRaft nodes on 127.0.0.1 (started in {seconds:.0f} s)", owned=True
        )
    if kind == "embedded":
        return _EmbeddedBroker(brokers)
    raise BrokerSetupError(f"unknown broker kind {kind!r}: use real, embedded or --bootstrap HOST:PORT")
