"""Kafka's own topic tool against the embedded cluster: ``kafka-topics --describe`` and
``--alter --partitions`` (org.apache.kafka.tools.TopicCommand, run from the jars the test
suite fetches for its real-Kafka tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kprod.cluster import EmbeddedCluster

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.apache_kafka.realkafka import LOG4J_CONFIG, ensure_kafka_jars, find_java  # noqa: E402

_TIMEOUT = 180


@pytest.fixture(scope="module")
def java_classpath() -> tuple[str, str]:
    """(java executable, classpath of Kafka's tools): both required, never skipped."""
    return find_java(), f"{ensure_kafka_jars()}/*"


def _topics(java_classpath: tuple[str, str], cluster: EmbeddedCluster, *args: str) -> str:
    java, classpath = java_classpath
    done = subprocess.run(
        [
            java,
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",  # a short-lived tool: start fast rather than run fast
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            classpath,
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            cluster.bootstrap_servers,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"TopicCommand {' '.join(args)} failed: {done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def _describe_lines(output: str) -> list[list[str]]:
    return [line.strip().split("\t") for line in output.strip().splitlines()]


def test_topic_command_describe_and_alter_partitions(
    cluster: EmbeddedCluster, java_classpath: tuple[str, str]
) -> None:
    cluster.create_topic("orders", partitions=3, replication_factor=2, config={"retention.bytes": "12345"})
    header, *partitions = _describe_lines(_topics(java_classpath, cluster, "--describe", "--topic", "orders"))
    assert header[0] == "Topic: orders"
    assert header[2:] == ["PartitionCount: 3", "ReplicationFactor: 2", "Configs: retention.bytes=12345"]
    expected = []
    for index in range(3):
        info = cluster.partition_info("orders", index)
        replicas = ",".join(map(str, info.replicas))
        isr = ",".join(map(str, info.isr))
        expected.append(
            ["Topic: orders", f"Partition: {index}", f"Leader: {info.leader}", f"Replicas: {replicas}", f"Isr: {isr}"]
        )
    assert [line[:5] for line in partitions] == expected

    _topics(java_classpath, cluster, "--alter", "--topic", "orders", "--partitions", "6")
    assert [cluster.partition_info("orders", p).partition for p in range(6)] == list(range(6))
    header, *partitions = _describe_lines(_topics(java_classpath, cluster, "--describe", "--topic", "orders"))
    assert header[2] == "PartitionCount: 6"
    assert [line[1] for line in partitions] == [f"Partition: {p}" for p in range(6)]
    assert all(len(line[3].split(",")) == 2 for line in partitions)  # replication factor kept
