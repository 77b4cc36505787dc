"""Fixtures for the embedded-cluster tests: a fresh 3-broker cluster per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kprod.cluster import EmbeddedCluster


@pytest.fixture
def cluster() -> Iterator[EmbeddedCluster]:
    """Three brokers in a thread of this process; fails the test if a broker hit an internal error."""
    with EmbeddedCluster(brokers=3) as embedded:
        yield embedded
        assert embedded.internal_errors() == []


@pytest.fixture
def topic(cluster: EmbeddedCluster) -> str:
    """A topic with 3 partitions, replication factor 3 and min.insync.replicas 2."""
    cluster.create_topic("events", partitions=3, replication_factor=3, config={"min.insync.replicas": "2"})
    return "events"
