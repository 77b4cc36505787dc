"""pytest fixtures for testing an application against kprod's embedded Kafka cluster.

Installed with kprod (entry point ``pytest11``), so a test suite gets, with no
conftest code:

* ``kafka_cluster``: one 3-broker :class:`~kprod.cluster.EmbeddedCluster` for the
  whole session. After each test that used it, hooks and faults are cleared and
  stopped brokers are started again, so one test's faults do not leak into the next.
* ``kafka_cluster_factory``: ``kafka_cluster_factory(brokers=1, config=..., process=...)``
  starts a fresh cluster for this test only (stopped when the test ends), for tests
  that stop brokers, change broker settings or want a cluster of their own.
* ``@pytest.mark.kafka_topics("orders", "payments", partitions=6, replication_factor=3,
  config={"cleanup.policy": "compact"})``: the named topics are created, empty, before
  the test, on ``kafka_cluster`` (deleted first if an earlier test left them) and on
  every cluster the factory makes. Several markers may be stacked.
* When a test fails, the brokers' log lines of that test (logger ``kprod.cluster``) and
  any internal errors are attached to its report as a "kprod cluster" section.

The embedded cluster is a development and test tool, not a production broker.
The plugin imports :mod:`kprod.cluster` only when a fixture is used, so suites
that do not use it pay nothing at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kprod.cluster import EmbeddedCluster

__all__ = ["kafka_cluster", "kafka_cluster_factory"]

MARKER = "kafka_topics"
_SESSION_BROKERS = 3
_LOG_KEY = pytest.StashKey["_ClusterLog"]()
_REPORT_SECTION = "kprod cluster"
_CLUSTERS_KEY = pytest.StashKey["list[EmbeddedCluster]"]()


class _ClusterLog(logging.Handler):
    """Keeps the ``kprod.cluster`` log lines of the running test."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a log line must never fail a test
            self.handleError(record)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*names, partitions=1, replication_factor=1, config=None): create these topics,"
        " empty, on kafka_cluster and on clusters made by kafka_cluster_factory before the test.",
    )
    handler = _ClusterLog()
    config.stash[_LOG_KEY] = handler
    logger = logging.getLogger("kprod.cluster")
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


def pytest_unconfigure(config: pytest.Config) -> None:
    handler = config.stash.get(_LOG_KEY, None)
    if handler is not None:
        logging.getLogger("kprod.cluster").removeHandler(handler)


# -- topics from markers ------------------------------------------------------------------


def _topic_specs(node: pytest.Item) -> list[tuple[str, int, int, dict[str, Any]]]:
    """(name, partitions, replication factor, config) for every topic the markers name."""
    specs = []
    for mark in node.iter_markers(MARKER):
        unknown = set(mark.kwargs) - {"partitions", "replication_factor", "config"}
        if not mark.args or unknown or not all(isinstance(name, str) for name in mark.args):
            raise pytest.UsageError(
                f"{node.nodeid}: use @pytest.mark.{MARKER}('name', ..., partitions=N, replication_factor=N,"
                f" config={{...}}); got args {mark.args!r} and keywords {sorted(mark.kwargs)!r}."
            )
        for name in mark.args:
            specs.append(
                (
                    name,
                    mark.kwargs.get("partitions", 1),
                    mark.kwargs.get("replication_factor", 1),
                    dict(mark.kwargs.get("config") or {}),
                )
            )
    return specs


def _create_topics(cluster: EmbeddedCluster, specs: list[tuple[str, int, int, dict[str, Any]]]) -> None:
    existing = set(cluster.topics())
    for name, partitions, replication_factor, config in specs:
        if name in existing:
            cluster.delete_topic(name)
        cluster.create_topic(name, partitions, replication_factor, config)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[EmbeddedCluster]:
    """A 3-broker embedded cluster shared by the whole session (bootstrap: ``.bootstrap_servers``)."""
    from kprod.cluster import EmbeddedCluster

    with EmbeddedCluster(brokers=_SESSION_BROKERS) as cluster:
        yield cluster


@pytest.fixture
def kafka_cluster_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., EmbeddedCluster]]:
    """Start fresh clusters for this test: ``kafka_cluster_factory(brokers=1, **options)``.

    Takes :class:`~kprod.cluster.EmbeddedCluster`'s arguments; the marker's topics are
    created in each cluster; every cluster is stopped when the test ends.
    """
    from kprod.cluster import EmbeddedCluster

    made: list[EmbeddedCluster] = []
    specs = _topic_specs(request.node)

    def make(brokers: int = 1, **options: Any) -> EmbeddedCluster:
        cluster = EmbeddedCluster(brokers, **options).start()
        made.append(cluster)
        request.node.stash.setdefault(_CLUSTERS_KEY, []).append(cluster)
        try:
            _create_topics(cluster, specs)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop()


@pytest.fixture(autouse=True)
def _kafka_cluster_per_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Create the marker's topics on ``kafka_cluster``, and reset its faults after the test."""
    if "kafka_cluster" not in request.fixturenames:
        yield
        return
    cluster: EmbeddedCluster = request.getfixturevalue("kafka_cluster")
    _create_topics(cluster, _topic_specs(request.node))
    request.node.stash.setdefault(_CLUSTERS_KEY, []).append(cluster)
    yield
    cluster.clear_faults()
    for broker in cluster.brokers:
        if not broker.running:
            cluster.start_broker(broker.node_id)


# -- logs on failure ----------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    handler = item.config.stash.get(_LOG_KEY, None)
    if handler is not None:
        handler.lines = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not report.failed:
        return report
    handler = item.config.stash.get(_LOG_KEY, None)
    lines = list(handler.lines) if handler is not None else []
    for cluster in item.stash.get(_CLUSTERS_KEY, []):
        try:
            errors = cluster.internal_errors()
        except Exception as exc:  # the cluster may be stopped, or be what failed
            errors = [f"(could not ask {cluster!r}: {exc})"]
        lines += [f"internal error: {error}" for error in errors]
    if lines:
        report.sections.append((_REPORT_SECTION, "\n".join(lines)))
    return report
