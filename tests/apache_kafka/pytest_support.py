"""The real-Kafka fixture body shared by tests/integration and tests/cli.

Kept apart from realkafka.py, which bench scripts import without pytest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tests.apache_kafka.realkafka import ExternalCluster, KafkaCluster, KafkaUnavailableError


def in_ci() -> bool:
    """CI=true: a Kafka that cannot be provided fails the run instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"real Kafka unavailable and CI=true: {reason}", pytrace=False)
    pytest.skip(f"real Kafka unavailable: {reason}")


def real_kafka() -> Iterator[KafkaCluster | ExternalCluster]:
    """Yield KPROD_BOOTSTRAP's cluster, or 3 local KRaft nodes closed afterwards."""
    bootstrap = os.environ.get("KPROD_BOOTSTRAP", "").strip()
    if bootstrap:
        external = ExternalCluster(bootstrap)
        try:
            external.check()
        except KafkaUnavailableError as exc:
            unavailable(str(exc))
        yield external
        return
    cluster = KafkaCluster()
    try:
        cluster.start()
    except KafkaUnavailableError as exc:
        unavailable(str(exc))
    try:
        yield cluster
    finally:
        cluster.close()
