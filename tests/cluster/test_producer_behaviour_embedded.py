"""The producer behaviour tests of tests/integration, run against the embedded cluster.

One test body, two clusters: the functions below are the very tests of
``tests/integration/test_producer_realkafka.py``; only the ``cluster`` fixture
differs (an adapter giving the embedded cluster the real fixture's names).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from kprod.cluster import EmbeddedCluster  # noqa: E402
from tests.integration import test_producer_realkafka as _shared  # noqa: E402

# Differences of the embedded cluster that these tests would trip over, by test name.
_NOT_HERE: dict[str, str] = {}


class EmbeddedAsKafka:
    """The embedded cluster behind the real-Kafka fixture's method names."""

    controllable = True

    def __init__(self, cluster: EmbeddedCluster) -> None:
        self._cluster = cluster

    @property
    def bootstrap_servers(self) -> str:
        return self._cluster.bootstrap_servers

    @property
    def node_ids(self) -> list[int]:
        return [broker.node_id for broker in self._cluster.brokers]

    def broker_address(self, node_id: int) -> tuple[str, int]:
        broker = next(b for b in self._cluster.brokers if b.node_id == node_id)
        return broker.host, broker.port

    def create_topic(self, name: str, partitions: int, replication_factor: int = 3,
                     config: dict[str, str] | None = None) -> None:
        self._cluster.create_topic(name, partitions=partitions, replication_factor=replication_factor, config=config)

    def leader(self, topic: str, partition: int) -> int:
        return self._cluster.leader(topic, partition)

    def stop_node(self, node_id: int, kill: bool = False) -> None:
        self._cluster.stop_broker(node_id)

    def start_node(self, node_id: int) -> None:
        self._cluster.start_broker(node_id)

    def metadata(self, timeout: float = 10.0) -> Any:
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap_servers}).list_topics(timeout=timeout)


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[EmbeddedAsKafka]:
    reason = _NOT_HERE.get(request.node.originalname)
    if reason:
        pytest.skip(reason)
    # Like the real test cluster: no auto-creation, so unknown topics stay unknown.
    with EmbeddedCluster(brokers=3, config={"auto.create.topics.enable": "false"}) as embedded:
        yield EmbeddedAsKafka(embedded)
        assert embedded.internal_errors() == []


globals().update({name: value for name, value in vars(_shared).items() if name.startswith("test_")})
