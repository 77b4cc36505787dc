"""Fixtures giving integration tests a real Apache Kafka cluster.

One 3-node cluster serves the whole session (starting one costs ~15 s). Set
KPROD_BOOTSTRAP=host:port to use a cluster you run instead; tests that stop nodes then skip.
When Kafka cannot be provided, tests skip with the reason, except under CI=true, where a
silently skipped suite would hide the breakage, so they fail.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    # pytest puts only this folder on sys.path; realkafka lives in tests/apache_kafka.
    sys.path.insert(0, str(_REPO_ROOT))

from tests.apache_kafka.pytest_support import real_kafka  # noqa: E402
from tests.apache_kafka.realkafka import (  # noqa: E402
    ExternalCluster,
    KafkaCluster,
    unique_topic,
)

Cluster = KafkaCluster | ExternalCluster
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration `integration` (so `-m "not integration"` works)."""
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka() -> Iterator[Cluster]:
    """The session's Kafka cluster: KPROD_BOOTSTRAP's, or 3 local KRaft nodes."""
    yield from real_kafka()


@pytest.fixture
def kafka_all_up(kafka: Cluster) -> Iterator[Cluster]:
    """The cluster with every node running (stopped ones restarted) before and after the test.

    Restoring afterwards too keeps a test that stopped a node, or failed before restarting
    it, from leaking a degraded cluster into tests that use plain `kafka`.
    """
    if kafka.controllable:
        kafka.restore()
    yield kafka
    if kafka.controllable:
        kafka.restore()


@pytest.fixture
def kafka_control(kafka_all_up: Cluster) -> KafkaCluster:
    """The managed cluster, for tests that stop and start nodes; skips on an external one."""
    if not isinstance(kafka_all_up, KafkaCluster):
        pytest.skip("stops/starts nodes, which KPROD_BOOTSTRAP's external cluster does not allow")
    return kafka_all_up


TopicFactory = Callable[..., str]


@pytest.fixture
def topic_factory(kafka: Cluster, request: pytest.FixtureRequest) -> TopicFactory:
    """Create a fresh topic named after the test; returns its name."""

    def create(
        partitions: int = 1,
        replication_factor: int = 3,
        config: Mapping[str, str] | None = None,
        prefix: str | None = None,
    ) -> str:
        name = unique_topic(prefix or request.node.name)
        kafka.create_topic(name, partitions, replication_factor, config)
        return name

    return create
