"""Fixtures for the command-line tests: run ``python -m kprod`` as a real subprocess.

The CLI is tested the way a user meets it: a separate process, its exit status
and its stdout/stderr, with records read back by confluent-kafka
(``tests/helpers.py``) or the embedded cluster's inspection API.

The real Kafka for the ``integration`` tests here is started per module (or
taken from KPROD_BOOTSTRAP) with the same rules as tests/integration: skip when
Kafka cannot be provided, fail under CI=true. It is module-scoped so that it is
closed before tests/integration starts its own session cluster: two 3-JVM
clusters at once would not fit a small CI machine.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))  # for tests.helpers and tests.apache_kafka.realkafka

from kprod.cluster import EmbeddedCluster  # noqa: E402

@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedCluster]:
    """An embedded 3-broker cluster in this process for the CLI subprocess to talk to."""
    with EmbeddedCluster(brokers=3) as embedded:
        yield embedded
        assert embedded.internal_errors() == []


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name unique to the test."""
    return "cli-" + re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:180].strip("-")


# -- real Kafka -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kafka() -> Iterator[object]:
    """A real Apache Kafka cluster: KPROD_BOOTSTRAP's, or 3 local KRaft nodes for this module."""
    from tests.apache_kafka.pytest_support import real_kafka

    yield from real_kafka()


TopicFactory = Callable[..., str]


@pytest.fixture
def kafka_topic(kafka: object, request: pytest.FixtureRequest) -> TopicFactory:
    """Create a fresh topic on the real Kafka; returns its name."""
    from tests.apache_kafka.realkafka import unique_topic

    def create(partitions: int = 1, replication_factor: int = 3, config: Mapping[str, str] | None = None) -> str:
        name = unique_topic(request.node.name)
        kafka.create_topic(name, partitions, replication_factor, config)  # type: ignore[attr-defined]
        return name

    return create
